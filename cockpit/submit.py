"""`psa-cockpit --submit PRESET`: validate, estimate, build and push the image, upload data, create the
Vertex AI CustomJob, then follow its logs until it ends.

Exit codes (cockpit.errors): 0 only when the job SUCCEEDED; 1 failed; 3 cancelled; 4 API error at submit;
5 image build/push; 6 estimate over cloud.max_cost_usd without --yes; 7 no credentials; 2 bad input;
8 lost contact with the job while following (its state is unknown); 130 Ctrl-C, at any stage: we print
whether a job was created, its id, and how to follow or cancel it (a followed job keeps running). `--dry-run` prints the CustomJob as the API's JSON on
stdout (everything else goes to stderr) and touches no network; `--detach` prints the job id on stdout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from cockpit.errors import EXIT_COST, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CockpitError, one_line_errors
from core.config import PRESETS_DIR

REPO_ROOT = PRESETS_DIR.parent  # the docker build context: the image holds presets/ from here


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


def _opt(args: Any, name: str, default: Any = None) -> Any:
    value = getattr(args, name, default)
    return default if value is None else value


class _Say:
    """Human progress lines: stdout normally, stderr when stdout carries a machine-readable answer."""

    def __init__(self, quiet_stdout: bool):
        self.stream: TextIO = sys.stderr if quiet_stdout else sys.stdout

    def __call__(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


@one_line_errors
def run_submit(args: Any) -> int:
    """The whole submit; returns the exit code (errors print one line on stderr)."""
    return _submit(args)


def _submit(args: Any) -> int:
    from cockpit.catalog import load_catalog
    from cockpit.estimate import estimate, format_estimate
    from cockpit.presets import validate_cloud, validate_preset
    from cockpit.vertex import build_custom_job, custom_job_json, default_display_name

    preset = _opt(args, "submit") or _opt(args, "preset")
    if not preset:
        raise CockpitError("--submit needs a preset (a name such as cloud, or a .toml path)", EXIT_USAGE)
    overrides = list(_opt(args, "set", []))
    dry_run, detach = bool(_opt(args, "dry_run", False)), bool(_opt(args, "detach", False))
    say = _Say(quiet_stdout=dry_run or detach)

    catalog = load_catalog()
    cfg = validate_preset(preset, overrides, catalog, submitting=True)
    validate_cloud(cfg, catalog, submitting=True)
    preset_path = Path(cfg.source)
    name = preset_path.stem
    _check_baked(preset_path, say)

    est = estimate(cfg, catalog)
    say(format_estimate(est))
    limit = cfg.cloud.max_cost_usd
    if est.exceeds(limit) and not dry_run:
        if not _opt(args, "yes", False):
            raise CockpitError(f"estimated ${est.cost_usd:,.2f} exceeds cloud.max_cost_usd = ${limit:,.2f} "
                               f"in {preset_path.name}; raise the limit or pass --yes", EXIT_COST)
        say(f"note: estimate ${est.cost_usd:,.2f} is over max_cost_usd ${limit:,.2f}; submitting (--yes)")

    from cockpit.image import git_tag, image_uri

    uri = image_uri(cfg, _opt(args, "tag") or git_tag(REPO_ROOT))
    display_name = _opt(args, "display_name") or default_display_name(name)
    job_overrides = list(overrides)
    progress, backend = _Progress(), None
    try:
        if _opt(args, "upload_data", False):
            progress.stage = "uploading the data"
            job_overrides.append(_upload_data(cfg, name, say, dry_run))
        job = build_custom_job(cfg, name, uri, job_overrides, display_name, catalog)
        if dry_run:
            print(custom_job_json(job))
            return EXIT_OK

        from cockpit.vertex import VertexBackend

        backend = VertexBackend(cfg)
        backend.client  # resolve credentials now, not after a ten-minute image build  # noqa: B018
        if not _opt(args, "no_build", False):
            progress.stage = "building and pushing the image"
            _build_and_push(uri, say)
        progress.stage = "creating the job"
        info = backend.create(job, on_request_id=progress.created_with)
    except KeyboardInterrupt:
        return _interrupted(progress, backend)
    try:
        say(f"submitted job {info.id} ({info.name})")
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


class _Progress:
    """Where a submit is, for the Ctrl-C report."""

    def __init__(self) -> None:
        self.stage = "checking the preset"
        self.request_id = ""

    def created_with(self, request_id: str) -> None:
        self.request_id = request_id


def _interrupted(progress: _Progress, backend: Any) -> int:
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


def _check_baked(preset_path: Path, say: _Say) -> None:
    """The job runs `--preset presets/NAME.toml` from the image, which bakes the repo's presets/ dir."""
    try:
        preset_path.resolve().relative_to(PRESETS_DIR.resolve())
    except ValueError:
        say(f"warning: {preset_path} is outside {PRESETS_DIR}; the image only holds presets/"
            f"{preset_path.name} if you copy it there before the build")


def _build_and_push(uri: str, say: _Say) -> None:
    from cockpit.image import build_image, image_exists, push_image

    if image_exists(uri):
        say(f"image {uri} already in the registry; skipping build")
        return
    say(f"building {uri}")
    build_image(uri, REPO_ROOT, say)
    say(f"pushing {uri}")
    push_image(uri, say)


def _upload_data(cfg: Any, name: str, say: _Say, dry_run: bool) -> str:
    """Upload the splits directory; returns the `data.splits=gs://...` override for the job."""
    from cockpit import clients
    from cockpit.gcs import upload_dir
    from cockpit.vertex import bucket_name

    splits = cfg.data.splits
    if splits.startswith("gs://"):
        raise CockpitError(f"--upload-data: data.splits = {splits!r} is already in Cloud Storage", EXIT_USAGE)
    path = Path(splits)
    if not path.is_file():
        raise CockpitError(f"--upload-data: data.splits = {splits!r} does not exist; generate or build the "
                           "data set first (make train, or python -m core.splits)", EXIT_USAGE)
    target = f"gs://{bucket_name(cfg.cloud.bucket)}/data/{path.parent.name or name}/"
    files = referenced_files(path)
    if dry_run:
        say(f"would upload {len(files)} files from {path.parent} -> {target}")
    else:
        say(f"uploading {len(files)} files from {path.parent} -> {target}")
        uploaded, skipped = upload_dir(path.parent, target, client=clients.storage_client(cfg), files=files)
        say(f"uploaded {uploaded} files, {skipped} unchanged")
    return f"data.splits={target}{path.name}"


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
