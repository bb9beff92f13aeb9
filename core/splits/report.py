"""One pass over a splits.json: load leniently, probe each image once, run the checks and the stats,
and write the JSON report beside the file (`splits_report.json`) for the cockpit to show."""
from __future__ import annotations

import json
import time
from pathlib import Path

from core import storage
from core.image_checks import probe_images
from core.splits.checks import Check, image_refs, run_checks
from core.splits.raw import RawSplits, load_raw
from core.splits.stats import splits_stats_from

REPORT_NAME = "splits_report.json"


def _probe(data: RawSplits, workers: int | None = None):
    return probe_images([path for _, _, path in image_refs(data)], workers=workers)


def _checks_dict(data: RawSplits, probes, fractions, extra: tuple[Check, ...] = ()) -> dict:
    checks = [*extra, *run_checks(data, probes, fractions)]
    return {
        "splits": data.path,
        "problems": sum(c.count for c in checks),
        "checks": {c.name: c.as_dict() for c in checks},
    }


def check_splits(path: str, fractions: list[float] | None = None) -> dict:
    """{"splits", "problems": total offenders, "checks": {name: {"title", "count", "examples"}}}.

    `fractions`: the val/test shares to judge rare grades against; default: the file's own.
    Raises SplitsInputError only when the file cannot be read as a JSON object at all.
    """
    data = load_raw(path)
    return _checks_dict(data, _probe(data), fractions)


def splits_stats(path: str, power: float = 0.5) -> dict:
    """Grade histograms per split, image sizes, aux-label shares and sampler weights (see stats.py)."""
    data = load_raw(path)
    return splits_stats_from(data, _probe(data), power)


def splits_report(path: str, fractions: list[float] | None = None, power: float = 0.5) -> dict:
    """Checks and stats from one probe of the images: {"splits", "created", "problems", "checks", "stats"}."""
    return report_from(load_raw(path), fractions, power)


def report_from(data: RawSplits, fractions: list[float] | None = None, power: float = 0.5,
                extra: tuple[Check, ...] = ()) -> dict:
    """splits_report for content in memory (what `build` checks before it writes); `extra`: checks the
    caller ran on its input, listed first."""
    probes = _probe(data)
    report = _checks_dict(data, probes, fractions, extra)
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["stats"] = splits_stats_from(data, probes, power)
    return report


def report_path(splits_path: str) -> str:
    if storage.is_gcs(splits_path):
        return splits_path.rsplit("/", 1)[0] + "/" + REPORT_NAME
    return str(Path(splits_path).parent / REPORT_NAME)


def write_report(splits_path: str, report: dict) -> str:
    target = report_path(splits_path)
    storage.write_text_atomic(target, json.dumps(report, indent=1) + "\n")
    return target


def render_checks(report: dict) -> str:
    lines = []
    for name, check in report["checks"].items():
        if check["count"] == 0:
            lines.append(f"  ok    {name}")
            continue
        lines.append(f"  FAIL  {name}: {check['count']} {check['title']}")
        lines.extend(f"          {example}" for example in check["examples"])
        if check["count"] > len(check["examples"]):
            lines.append(f"          ... and {check['count'] - len(check['examples'])} more")
    verdict = "no problems" if report["problems"] == 0 else f"{report['problems']} problem(s)"
    return f"checks for {report['splits']}: {verdict}\n" + "\n".join(lines)
