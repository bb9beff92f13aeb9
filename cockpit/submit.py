"""Submitting a preset to Vertex AI: one plan (validate, estimate, image URI, the CustomJob), then build and
push, upload the data, create the job. `psa-cockpit --submit PRESET` and the TUI's submit key both call
`plan_submit` and `launch`, so the job the TUI creates is exactly the one `--dry-run` prints.

Exit codes of the CLI (cockpit.errors): 0 only when the job SUCCEEDED; 1 failed; 3 cancelled; 4 API error
at submit; 5 image build/push; 6 estimate over cloud.max_cost_usd without --yes; 7 no credentials; 2 bad
input; 8 lost contact with the job while following (its state is unknown); 130 Ctrl-C, at any stage: we
print whether a job was created, its id, and how to follow or cancel it (a followed job keeps running).
`--dry-run` prints the CustomJob as the API's JSON on stdout (everything else goes to stderr) and touches
no network; `--detach` prints the job id on stdout.
"""
from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from cockpit.errors import EXIT_CANCELLED, EXIT_COST, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CockpitError
from core.config import PRESETS_DIR

LineSink = Callable[[str], None]


def add_submit_options(parser: argparse.ArgumentParser) -> None:
    """The options `--submit` reads (cockpit.cli adds them to its parser)."""
    g = parser.add_argument_group("submit options")
    g.add_argument("--yes", "-y", action="store_true", help="submit even if the estimate exceeds max_cost_usd")
    g.add_argument("--no-build", action="store_true", help="do not build/push the image (it must exist)")
    g.add_argument("--tag", help="image tag (default: git short SHA, plus -dirty for a dirty tree)")
    g.add_argument("--upload-data", action="store_true",
                   help="upload the splits directory to gs://BUCKET/data/NAME/ and train from there")
    g.add_argument("--dry-run", action="store_true", help="print the CustomJob JSON; submit nothing")
    g.add_argument("--detach", action="store_true", help="print the job id right after submit and exit")
    g.add_argument("--display-name", help="job display name (default psa-PRESET-YYYYmmdd-HHMMSS)")


# ----- the service -------------------------------------------------------------------------------------

@dataclass
class SubmitPlan:
    """Everything a submit will do, decided before anything is built, uploaded or created."""
    cfg: Any                         # the validated core.config.Config
    preset_path: Path
    estimate: Any                    # cockpit.estimate.Estimate
    image_uri: str
    display_name: str
    job: Any                         # the aiplatform_v1.CustomJob to create
    upload: tuple[Path, str] | None  # (local splits folder, gs:// target) when the data goes up first
    warnings: list[str] = field(default_factory=list)
    upload_files: list[str] = field(default_factory=list)  # what the upload sends (referenced_files)

    @property
    def tag(self) -> str:
        return self.image_uri.rsplit(":", 1)[-1]

    @property
    def over_budget(self) -> bool:
        return self.estimate.exceeds(self.cfg.cloud.max_cost_usd)

    def budget_error(self, fix: str = "raise the limit or pass --yes") -> CockpitError:
        limit = self.cfg.cloud.max_cost_usd
        return CockpitError(f"estimated ${self.estimate.cost_usd:,.2f} exceeds cloud.max_cost_usd = "
                            f"${limit:,.2f} in {self.preset_path.name}; {fix}", EXIT_COST)

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) rows for a confirmation: what runs, how long, what it costs, which image."""
        c, e = self.cfg.cloud, self.estimate
        gpus = f"{c.accelerator_count} x {c.accelerator_type}" if c.accelerator_type else "none (CPU only)"
        limit = f"${c.max_cost_usd:,.2f}" if c.max_cost_usd > 0 else "no limit"
        rows = [("preset", self.preset_path.name), ("job", self.display_name),
                ("machine", f"{c.machine_type} in {c.region}" + (f", {c.replica_count} replicas"
                                                                  if c.replica_count > 1 else "")),
                ("GPUs", gpus), ("pricing", "spot (may be preempted; resumes)" if c.spot else "on-demand"),
                ("estimate", f"{e.hours:.1f} h, ${e.cost_usd:,.2f} (${e.hourly_spot if c.spot else e.hourly_on_demand:,.2f}/h)"),
                ("max_cost_usd", limit), ("image", self.image_uri)]
        if self.upload:
            rows.append(("data", f"upload {self.upload[0]} -> {self.upload[1]}"))
        return rows


def plan_submit(cfg: Any, *, overrides: list[str] | None = None, catalog: Any = None, tag: str | None = None,
                display_name: str | None = None, upload_data: bool = False) -> SubmitPlan:
    """The plan for a Config validated for submitting (cockpit.presets: `validate_preset(...,
    submitting=True)` or `PresetDocument.validate(submitting=True)`). Touches no network."""
    from cockpit.catalog import load_catalog
    from cockpit.estimate import estimate
    from cockpit.image import REPO_ROOT, git_tag, image_uri
    from cockpit.vertex import build_custom_job, default_display_name

    catalog = catalog or load_catalog()
    preset_path = Path(cfg.source)
    name = preset_path.stem
    uri = image_uri(cfg, tag or git_tag(REPO_ROOT))
    display_name = display_name or default_display_name(name)
    job_overrides = list(overrides or [])
    upload = _upload_target(cfg, name) if upload_data else None
    files = []
    if upload:
        files = referenced_files(Path(cfg.data.splits))  # a bad record is refused now, not after a build
        job_overrides.append(f"data.splits={upload[1]}{Path(cfg.data.splits).name}")
    job = build_custom_job(cfg, name, uri, job_overrides, display_name, catalog)
    return SubmitPlan(cfg, preset_path, estimate(cfg, catalog), uri, display_name, job, upload,
                      _baked_warnings(preset_path), files)


class Progress:
    """Where a launch is, so an interruption can say whether a job exists."""

    def __init__(self) -> None:
        self.stage = "checking the preset"
        self.request_id = ""

    def created_with(self, request_id: str) -> None:
        self.request_id = request_id


def launch(plan: SubmitPlan, backend: Any, on_line: LineSink, *, build: bool = True,
           cancel: threading.Event | None = None, progress: Progress | None = None) -> Any:
    """Credentials first (not after a ten-minute build), then build+push when the tag is missing, the data
    upload, and the job. Returns the created job's JobInfo."""
    from cockpit.image import build_and_push

    progress = progress or Progress()
    progress.stage = "checking credentials"
    backend.client  # resolve credentials now  # noqa: B018
    if build:
        progress.stage = "building and pushing the image"
        build_and_push(plan.image_uri, on_line, cancel)
    if plan.upload:
        progress.stage = "uploading the data"
        upload_data(plan, on_line)
    if cancel is not None and cancel.is_set():
        raise CockpitError("submit cancelled before the job was created", EXIT_CANCELLED)
    progress.stage = "creating the job"
    info = backend.create(plan.job, on_request_id=progress.created_with)
    on_line(f"submitted job {info.id} ({info.name})")
    return info


def upload_data(plan: SubmitPlan, on_line: LineSink) -> None:
    from cockpit import clients
    from cockpit.gcs import upload_dir

    assert plan.upload is not None
    source, target = plan.upload
    files = plan.upload_files
    on_line(f"uploading {len(files)} files from {source} -> {target}")
    uploaded, skipped = upload_dir(source, target, client=clients.storage_client(plan.cfg), files=files)
    on_line(f"uploaded {uploaded} files, {skipped} unchanged")


def _upload_target(cfg: Any, name: str) -> tuple[Path, str]:
    """(the splits folder, gs://BUCKET/data/NAME/) for `--upload-data`."""
    from cockpit.vertex import bucket_name

    splits = cfg.data.splits
    if splits.startswith("gs://"):
        raise CockpitError(f"--upload-data: data.splits = {splits!r} is already in Cloud Storage", EXIT_USAGE)
    path = Path(splits)
    if not path.is_file():
        raise CockpitError(f"--upload-data: data.splits = {splits!r} does not exist; generate or build the "
                           "data set first (make train, or python -m core.splits)", EXIT_USAGE)
    return path.parent, f"gs://{bucket_name(cfg.cloud.bucket)}/data/{path.parent.name or name}/"


def referenced_files(splits_path: Path) -> list[str]:
    """The splits file plus every image it names, relative to its folder: what --upload-data sends.

    Never the whole folder: it may be a project root holding .git, .venv or .env. Images named by
    gs:// already live in a bucket; an absolute or `..` path could not be found by the job under the
    uploaded prefix, so it is refused (one line, naming the record).
    """
    import json

    from core.records import SPLIT_NAMES

    try:
        raw = json.loads(splits_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CockpitError(f"--upload-data: {splits_path}: cannot read it as JSON ({exc})", EXIT_USAGE) from None
    names = {splits_path.name}
    for split in SPLIT_NAMES:
        for record in raw.get(split, []) if isinstance(raw, dict) else []:
            for side in ("front", "back"):
                value = record.get(side) if isinstance(record, dict) else None
                if not isinstance(value, str) or value.startswith("gs://"):
                    continue
                rel = Path(value)
                if rel.is_absolute() or ".." in rel.parts:
                    raise CockpitError(f"--upload-data: {splits_path}: record {record.get('id')!r} {side} = "
                                       f"{value!r} is outside the splits folder; use paths relative to it",
                                       EXIT_USAGE)
                names.add(rel.as_posix())
    return sorted(names)


def _baked_warnings(preset_path: Path) -> list[str]:
    """The job runs `--preset presets/NAME.toml` from the image, which bakes the repo's presets/ dir."""
    try:
        preset_path.resolve().relative_to(PRESETS_DIR.resolve())
    except ValueError:
        return [f"{preset_path} is outside {PRESETS_DIR}; the image only holds presets/{preset_path.name} "
                "if you copy it there before the build"]
    return []


# ----- the command line --------------------------------------------------------------------------------

def _opt(args: Any, name: str, default: Any = None) -> Any:
    value = getattr(args, name, default)
    return default if value is None else value


class _Say:
    """Human progress lines: stdout normally, stderr when stdout carries a machine-readable answer."""

    def __init__(self, quiet_stdout: bool):
        self.stream: TextIO = sys.stderr if quiet_stdout else sys.stdout

    def __call__(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def run_submit(args: Any) -> int:
    """The whole submit; returns the exit code (a CockpitError raised here becomes cockpit.cli's one line)."""
    from cockpit.catalog import load_catalog
    from cockpit.estimate import format_estimate
    from cockpit.presets import validate_preset
    from cockpit.vertex import custom_job_json

    preset = _opt(args, "submit") or _opt(args, "preset")
    if not preset:
        raise CockpitError("--submit needs a preset (a name such as cloud, or a .toml path)", EXIT_USAGE)
    overrides = list(_opt(args, "set", []))
    dry_run, detach = bool(_opt(args, "dry_run", False)), bool(_opt(args, "detach", False))
    say = _Say(quiet_stdout=dry_run or detach)

    catalog = load_catalog()
    cfg = validate_preset(preset, overrides, catalog, submitting=True)
    plan = plan_submit(cfg, overrides=overrides, catalog=catalog, tag=_opt(args, "tag"),
                       display_name=_opt(args, "display_name"), upload_data=bool(_opt(args, "upload_data")))
    for warning in plan.warnings:
        say(f"warning: {warning}")
    say(format_estimate(plan.estimate))
    if plan.over_budget and not dry_run:
        if not _opt(args, "yes", False):
            raise plan.budget_error()
        say(f"note: estimate ${plan.estimate.cost_usd:,.2f} is over max_cost_usd "
            f"${cfg.cloud.max_cost_usd:,.2f}; submitting (--yes)")
    if dry_run:
        if plan.upload:
            say(f"would upload {len(plan.upload_files)} files from {plan.upload[0]} -> {plan.upload[1]}")
        print(custom_job_json(plan.job))
        return EXIT_OK

    from cockpit.jobs import Backends

    progress, backend = Progress(), None
    try:
        backend = Backends().require_vertex(cfg)
        info = launch(plan, backend, say, build=not _opt(args, "no_build", False), progress=progress)
    except KeyboardInterrupt:
        return _interrupted(progress, backend)
    try:
        say(f"console: https://console.cloud.google.com/vertex-ai/locations/{backend.region}/training/"
            f"{info.id}/cpu?project={backend.project}")
        if detach:
            print(info.id, flush=True)
            say(f"follow it with: psa-cockpit logs {info.id} --follow")
            return EXIT_OK
        from cockpit.cli_cloud import follow_job

        return follow_job(backend, info.id)  # it reports a Ctrl-C while following itself
    except KeyboardInterrupt:
        print(f"\ninterrupted: job {info.id} was created and keeps running; follow it with: psa-cockpit logs "
              f"{info.id} --follow; cancel it with: psa-cockpit cancel {info.id}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _interrupted(progress: Progress, backend: Any) -> int:
    """Ctrl-C before the job id was known: say whether a job exists, and how to follow or cancel it."""
    where = f"interrupted while {progress.stage}"
    if not progress.request_id or backend is None:
        print(f"\n{where}; no job was created", file=sys.stderr)
        return EXIT_INTERRUPTED
    from cockpit.vertex import REQUEST_LABEL

    try:
        found = backend.find_by_request_id(progress.request_id)
    except (CockpitError, KeyboardInterrupt):
        print(f"\n{where}; could not check whether it was created: look for the label "
              f"{REQUEST_LABEL}={progress.request_id} with psa-cockpit jobs", file=sys.stderr)
        return EXIT_INTERRUPTED
    if found is None:
        print(f"\n{where}; no job was created", file=sys.stderr)
    else:
        print(f"\n{where}: job {found.id} was created ({found.state}); follow it with: psa-cockpit logs "
              f"{found.id} --follow; cancel it with: psa-cockpit cancel {found.id}", file=sys.stderr)
    return EXIT_INTERRUPTED

