"""`python -m core.splits build|check|stats`: exit 0 when done, 1 when a check fails (build then leaves
splits.json unwritten; --allow-problems writes it anyway and exits 0), 2 for input the tool cannot use
(one line on stderr naming the file or option). The report is written either way."""
from __future__ import annotations

import argparse
import json
import sys

from core import storage
from core.splits.build import build_splits
from core.splits.raw import SplitsInputError
from core.splits.report import render_checks, splits_report, write_report
from core.splits.sources import Columns, column_fields
from core.splits.stats import render_stats


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _common(p: argparse.ArgumentParser, allow_help: str | None) -> None:
    if allow_help:
        p.add_argument("--allow-problems", action="store_true", help=allow_help)
        # build and check exit 1 on problems by default now; --strict (which used to ask for it) stays.
        p.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)
    else:
        p.add_argument("--strict", action="store_true", help="exit 1 if any check finds a problem")
    p.add_argument("--no-report", action="store_true", help="do not write splits_report.json beside the file")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of text")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core.splits", description="Build, check and describe splits.json.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("build", help="write splits.json from a CSV or a <grade>/<id>_front|back folder tree")
    b.add_argument("--layout", default="csv", help="csv (default) or folders")
    b.add_argument("--csv", help="labels CSV (columns id, front, back, grade; optional edge, centering_*)")
    b.add_argument("--images", help="scans directory: CSV paths are relative to it; the folder layout's root")
    b.add_argument("--out", required=True, help="where to write splits.json (local or gs://)")
    b.add_argument("--val", type=float, default=0.1, help="validation fraction (default 0.1)")
    b.add_argument("--test", type=float, default=0.1, help="test fraction (default 0.1)")
    b.add_argument("--seed", type=int, default=0)
    for name in column_fields():
        b.add_argument(Columns.flag(name), dest=f"col_{name}", metavar="NAME",
                       help=f"CSV column for {name} (default {getattr(Columns(), name)})")
    _common(b, "write splits.json (and exit 0) even when checks fail")
    for name, text, allow in (
            ("check", "report problems in a splits.json", "exit 0 even when checks fail"),
            ("stats", "summarise a splits.json", None)):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", help="splits.json (local or gs://)")
        _common(p, allow)
    return parser


def _build(args) -> dict:
    given = {name: getattr(args, f"col_{name}") for name in column_fields() if getattr(args, f"col_{name}")}
    columns = Columns(**given)
    optional_named = tuple(k for k in given if k not in Columns.required())
    return build_splits(args.out, csv_path=args.csv, images=args.images, layout=args.layout,
                        columns=columns, require=optional_named, val=args.val, test=args.test,
                        seed=args.seed, allow_problems=args.allow_problems)


def _build_lines(summary: dict) -> tuple[list[str], list[str]]:
    """What build says after the checks: (stdout lines, stderr lines)."""
    out, err = [], []
    if summary["ignored"]:
        shown = ", ".join(summary["ignored"][:5])
        out.append(f"ignored {len(summary['ignored'])} files not named <grade>/<id>_front|back.<ext>: {shown}")
    rec, problems = summary["records"], summary["report"]["problems"]
    if summary["written"]:
        also = f" despite {problems} problem(s) (--allow-problems)" if problems else ""
        out.append(f"wrote {summary['splits']}{also}: {summary['rows']} rows -> train {rec['train']}, "
                   f"val {rec['val']}, test {rec['test']}")
    else:
        err.append(f"error: {summary['splits']} not written: {problems} problem(s) listed above; fix them, "
                   f"or pass --allow-problems to write it anyway")
    return out, err


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    summary = None
    try:
        if args.command == "build":
            summary = _build(args)
            path, report = args.out, summary["report"]
        else:
            path, report = args.file, splits_report(args.file)
    except (SplitsInputError, OSError) as exc:  # OSError: splits.json could not be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.no_report:
        try:
            report["report"] = write_report(path, report)
        except (storage.StorageError, OSError) as exc:  # a read-only location must not hide the results
            print(f"warning: could not write the report: {exc}", file=sys.stderr)
    out, err = _build_lines(summary) if summary else ([], [])
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        if args.command in ("build", "check"):
            print(render_checks(report))
        if args.command in ("build", "stats"):
            print(render_stats(report["stats"]))
        if report.get("report"):
            print(f"\nreport: {report['report']}")
        print("\n".join(out), end="\n" if out else "")
    if err:
        print("\n".join(err), file=sys.stderr)
    fail_on_problems = args.strict if args.command == "stats" else not args.allow_problems
    return 1 if report["problems"] and fail_on_problems else 0


if __name__ == "__main__":
    sys.exit(main())
