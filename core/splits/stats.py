"""What a splits.json holds: grades per split, image sizes, aux-label coverage, and what the
class-balancing sampler (P ∝ 1/freq^0.5, docs/design.md §3) will make of the grade imbalance."""
from __future__ import annotations

import statistics
from collections import Counter

from core.image_checks import ImageInfo
from core.records import NUM_GRADES, SPLIT_NAMES
from core.splits.raw import RawSplits

GRADES = range(1, NUM_GRADES + 1)


def sampler_class_weights(grade_counts: dict[int, int], power: float = 0.5) -> dict[int, float]:
    """Probability mass of each grade under the sampler that draws a card with weight 1/freq(grade)^power.

    A grade with n cards gets total weight n * n^-power = n^(1-power), normalised over grades:
    power 0 keeps the natural shares, power 1 draws every grade equally often. Grades with no cards
    get no mass.
    """
    mass = {g: float(n) ** (1.0 - power) for g, n in grade_counts.items() if n > 0}
    total = sum(mass.values())
    return {g: (m / total if total else 0.0) for g, m in sorted(mass.items())}


def _summary(values: list[float]) -> dict:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def image_size_stats(probes: dict[str, ImageInfo]) -> dict:
    decoded = [p for p in probes.values() if p.ok]
    sizes = Counter(f"{p.width}x{p.height}" for p in decoded)
    return {
        "images": len(decoded),
        "width": _summary([p.width for p in decoded]),
        "height": _summary([p.height for p in decoded]),
        "aspect": _summary([round(p.aspect, 3) for p in decoded]),
        "common": [[size, n] for size, n in sizes.most_common(5)],
    }


def splits_stats_from(data: RawSplits, probes: dict[str, ImageInfo], power: float = 0.5) -> dict:
    grades: dict[str, dict[str, int]] = {}
    invalid: dict[str, int] = {}
    aux: dict[str, dict[str, float]] = {}
    for name in SPLIT_NAMES:
        recs = data.in_split(name)
        counts = Counter(r.grade for r in recs if r.grade is not None)
        grades[name] = {str(g): counts.get(g, 0) for g in GRADES}
        invalid[name] = sum(1 for r in recs if r.grade is None)
        aux[name] = _aux_shares(recs)
    aux["all"] = _aux_shares(data.records)
    totals = {g: sum(grades[s][str(g)] for s in SPLIT_NAMES) for g in GRADES}
    train = {g: grades["train"][str(g)] for g in GRADES}
    train_total = sum(train.values())
    return {
        "records": {**{s: len(data.in_split(s)) for s in SPLIT_NAMES}, "total": len(data.records)},
        "grades": grades,
        "invalid_grades": invalid,
        "absent_grades": [g for g in GRADES if totals[g] == 0],
        "image_sizes": image_size_stats(probes),
        "aux_labels": aux,
        "sampler": {
            "power": power,
            "from": "train",
            "natural": {str(g): (n / train_total) for g, n in train.items() if n > 0},
            "weights": {str(g): m for g, m in sampler_class_weights(train, power).items()},
        },
    }


def _aux_shares(recs) -> dict[str, float]:
    n = len(recs)
    edge = sum(1 for r in recs if r.raw.get("edge") is not None)
    centering = sum(1 for r in recs if r.raw.get("centering") is not None)
    return {"edge": edge / n if n else 0.0, "centering": centering / n if n else 0.0}


def bar(n: int, most: int, width: int = 30) -> str:
    """A text bar; any non-zero count shows at least one mark so rare grades stay visible."""
    if n <= 0 or most <= 0:
        return ""
    return "#" * max(1, round(width * n / most))


def render_stats(stats: dict) -> str:
    lines = []
    rec = stats["records"]
    lines.append(f"records: {rec['total']} (train {rec['train']}, val {rec['val']}, test {rec['test']})")
    for name in SPLIT_NAMES:
        counts = stats["grades"][name]
        most = max(counts.values(), default=0)
        extra = f", {stats['invalid_grades'][name]} with invalid grades" if stats["invalid_grades"][name] else ""
        lines.append(f"\n{name}: grade histogram ({rec[name]} records{extra})")
        for g in GRADES:
            n = counts[str(g)]
            lines.append(f"  {g:>2} | {bar(n, most):<30} {n}")
    if stats["absent_grades"]:
        lines.append(f"\ngrades with no cards at all: {', '.join(map(str, stats['absent_grades']))}")
    sizes = stats["image_sizes"]
    lines.append(f"\nimages decoded: {sizes['images']}")
    if sizes["images"]:
        for key in ("width", "height", "aspect"):
            s = sizes[key]
            lines.append(f"  {key:<6} min {s['min']:g}  median {s['median']:g}  max {s['max']:g}")
        lines.append("  most common: " + ", ".join(f"{size} ({n})" for size, n in sizes["common"]))
    lines.append("\naux labels (share of records):")
    for name in (*SPLIT_NAMES, "all"):
        a = stats["aux_labels"][name]
        lines.append(f"  {name:<5} edge {a['edge']:6.1%}   centering {a['centering']:6.1%}")
    lines.extend(_render_sampler(stats["sampler"]))
    return "\n".join(lines)


def _render_sampler(sampler: dict) -> list[str]:
    lines = [f"\nsampler (P(card) ~ 1/freq^{sampler['power']:g}, on {sampler['from']}): share of draws per grade"]
    if not sampler["weights"]:
        return lines + ["  (no valid training records)"]
    lines.append("  grade  natural  sampler")
    for g, mass in sampler["weights"].items():
        lines.append(f"  {g:>5}  {sampler['natural'][g]:7.1%}  {mass:7.1%}")
    return lines
