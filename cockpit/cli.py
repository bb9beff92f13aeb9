"""`psa-cockpit`: the TUI (no command, or a preset path) and the headless commands.

    psa-cockpit [PRESET]                  open the TUI
    psa-cockpit --submit PRESET [...]     validate, estimate, build/push, submit to Vertex AI, follow logs
    psa-cockpit jobs | logs JOB [--follow] | cancel JOB | pull JOB [--to DIR]
    psa-cockpit estimate PRESET [--benchmark] | run PRESET [--set ...] | validate PRESET
    psa-cockpit deploy JOB|gs://... | endpoints | undeploy ENDPOINT | predict (--endpoint ID|--local URL) F B

Plain argparse: no extra dependency and nothing to import before `--help` answers. Every module beyond
argparse (torch, google.cloud, textual, even the cockpit's own) is imported inside the command that
needs it, so `--help` and a mistyped flag stay fast.

Errors: a CockpitError or ConfigError prints `error: <one line>` on stderr and exits with its code
(cockpit.errors: 2 bad input, 1 job failed, 3 cancelled, 4 submit, 5 build, 6 cost, 7 credentials);
`--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys

COMMANDS = ("jobs", "logs", "cancel", "pull", "estimate", "run", "validate",
            "deploy", "endpoints", "undeploy", "predict")
EXIT_USAGE = 2  # the same value as cockpit.errors.EXIT_USAGE, without importing it for --help


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one preset key (repeatable), e.g. --set training.phase2_epochs=5")


def _add_cloud_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="preset whose [cloud] section names project and region (default: cloud)")
    p.add_argument("--project", help="Google Cloud project (default: the preset's, then GOOGLE_CLOUD_PROJECT)")
    p.add_argument("--region", help="Vertex AI region (default: the preset's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psa-cockpit",
        usage="psa-cockpit [PRESET] | --submit PRESET [options] | COMMAND ...",
        description="Train the PSA card grader locally or on Vertex AI. Without a command, opens the "
                    "terminal UI on PRESET (default presets/local.toml).",
        epilog="Exit codes: 0 ok, 1 job failed, 2 bad input, 3 cancelled, 4 submit/API error, "
               "5 image build/push error, 6 estimate over max_cost_usd (use --yes), 7 no credentials, "
               "8 lost contact with a job while following it (it may still run), 130 Ctrl-C.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--submit", metavar="PRESET",
                        help="submit PRESET to Vertex AI and follow its logs until the job ends")
    _add_set(parser)
    from cockpit.submit import add_submit_options  # light: argparse and cockpit.errors only

    add_submit_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("jobs", help="table of Vertex AI jobs and local runs")
    _add_cloud_target(p)
    _add_set(p)
    p = sub.add_parser("logs", help="print a job's logs (local- ids are local runs)")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    _add_cloud_target(p)
    _add_set(p)
    p = sub.add_parser("cancel", help="cancel a job or local run")
    p.add_argument("job")
    _add_cloud_target(p)
    _add_set(p)
    p = sub.add_parser("pull", help="download a job's exported model")
    p.add_argument("job")
    p.add_argument("--to", metavar="DIR", help="target directory (default models/JOB)")
    _add_cloud_target(p)
    _add_set(p)

    p = sub.add_parser("estimate", help="time and cost of PRESET on its [cloud] machine")
    p.add_argument("preset")
    p.add_argument("--benchmark", action="store_true",
                   help="without a previous local run, time a few model steps on this CPU (a few seconds)")
    _add_set(p)
    p = sub.add_parser("run", help="train PRESET here as a subprocess, printing its progress")
    p.add_argument("preset")
    p.add_argument("--runs-dir", default="outputs/runs", help="where local runs live (default outputs/runs)")
    _add_set(p)
    p = sub.add_parser("validate", help="check PRESET (schema, inheritance, machine/GPU) and exit")
    p.add_argument("preset")
    p.add_argument("--for-submit", action="store_true", help="also require what a submit needs (project, bucket)")
    _add_set(p)
    from cockpit.cli_serving import add_parsers  # light: argparse only

    add_parsers(sub, _add_cloud_target, _add_set)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        # `psa-cockpit presets/x.toml` opens the TUI: a first word that is neither a flag nor a command.
        rest = [a for a in argv if a != "--debug"]
        if not rest or (rest[0] not in COMMANDS and not rest[0].startswith("-")):
            return _tui(rest)
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or argparse's own usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        return _dispatch(args)
    except KeyboardInterrupt:  # commands that know more (submit, follow) say where things stand first
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `psa-cockpit jobs | head`: the reader left; stop quietly like SIGPIPE would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        return _report(exc, debug)


def _report(exc: BaseException, debug: bool) -> int:
    from core.config import ConfigError
    from cockpit.errors import EXIT_FAILED, CockpitError

    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, CockpitError):
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, ConfigError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not debug:
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
    return EXIT_FAILED


def _tui(args: list[str]) -> int:
    if len(args) > 1:
        print(f"error: unexpected arguments {' '.join(args[1:])!r}; see psa-cockpit --help", file=sys.stderr)
        return EXIT_USAGE
    preset = args[0] if args else "presets/local.toml"
    from cockpit.tui.startup import pause_gc, resume_gc

    pause_gc()  # Textual's import is part of start-up too (cockpit/tui/startup.py); run_tui resumes it
    try:
        from cockpit.tui.app import run_tui
    except ImportError as exc:
        resume_gc()
        print(f"error: the terminal UI is not available ({exc}); use the headless commands "
              f"(psa-cockpit --help)", file=sys.stderr)
        return EXIT_USAGE
    return run_tui(preset)


def _dispatch(args: argparse.Namespace) -> int:
    if args.submit:
        if args.command:
            raise _usage(f"--submit cannot be combined with the '{args.command}' command")
        from cockpit.submit import run_submit

        return run_submit(args)
    if args.command in ("jobs", "logs", "cancel", "pull"):
        from cockpit import cli_cloud

        return getattr(cli_cloud, f"cmd_{args.command}")(args)
    if args.command in ("deploy", "endpoints", "undeploy", "predict"):
        from cockpit import cli_serving

        return cli_serving.dispatch(args)
    if args.command == "estimate":
        return cmd_estimate(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "validate":
        return cmd_validate(args)
    raise _usage("no command given; see psa-cockpit --help")


def _usage(message: str) -> Exception:
    from cockpit.errors import CockpitError

    return CockpitError(message, EXIT_USAGE)


# ---------------------------------------------------------------------------------------------------------
# Offline commands


def cmd_validate(args: argparse.Namespace) -> int:
    """Print a one-line summary of a valid preset; errors raise (one line, exit 2)."""
    from cockpit.presets import validate_preset

    cfg = validate_preset(args.preset, args.set, submitting=args.for_submit)
    c, t = cfg.cloud, cfg.training
    gpu = f"{c.accelerator_count} x {c.accelerator_type}" if c.accelerator_type else "no GPU"
    print(f"ok: {cfg.source}: {cfg.model.backbone} {cfg.data.image_size[0]}x{cfg.data.image_size[1]}, "
          f"{t.phase1_epochs}+{t.phase2_epochs} epochs, batch {t.batch_size}; cloud: {c.machine_type} + {gpu} "
          f"in {c.region}")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """Print the estimate; says when it is over the preset's max_cost_usd."""
    from cockpit.catalog import load_catalog
    from cockpit.estimate import estimate, format_estimate
    from cockpit.presets import validate_preset

    catalog = load_catalog()
    cfg = validate_preset(args.preset, args.set, catalog)
    est = estimate(cfg, catalog, benchmark=args.benchmark)
    print(format_estimate(est))
    limit = cfg.cloud.max_cost_usd
    if est.exceeds(limit):
        print(f"over limit: ${est.cost_usd:,.2f} > cloud.max_cost_usd ${limit:,.2f}; --submit would need --yes")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Train locally: validate, start the trainer subprocess, print its lines until it ends.

    Exit code: 0 succeeded, 2 the trainer rejected its input, 1 other failure, 3 cancelled (Ctrl-C
    asks the trainer to save a checkpoint and stop).
    """
    from pathlib import Path

    from cockpit.cli_cloud import format_line
    from cockpit.backend import JobState
    from cockpit.errors import EXIT_CANCELLED, EXIT_FAILED, exit_code_for_state
    from cockpit.local_runs import LocalBackend
    from cockpit.presets import validate_preset

    cfg = validate_preset(args.preset, args.set)  # one-line errors before anything starts
    backend = LocalBackend(Path(args.runs_dir))
    info = backend.submit(Path(cfg.source), args.set)
    print(f"local run {info.id}: {info.output_dir}", flush=True)
    try:
        for line in backend.logs(info.id, follow=True):
            print(format_line(line), flush=True)
    except KeyboardInterrupt:
        print(f"\ncancelling {info.id} (the trainer saves a checkpoint first)...", file=sys.stderr, flush=True)
        info = backend.cancel(info.id)
        print(f"run {info.id} {info.state}", flush=True)
        return EXIT_CANCELLED
    info = backend.wait(info.id)
    print(f"run {info.id} {info.state}", flush=True)
    if info.state == JobState.FAILED:
        if info.error:
            print(f"error: {info.error}", file=sys.stderr)
        return EXIT_USAGE if backend.exit_code(info.id) == EXIT_USAGE else EXIT_FAILED
    return exit_code_for_state(info.state)
