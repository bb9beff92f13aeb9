"""Grading metrics on PSA grades 1..10: QWK, MAE, accuracies, confusion matrix, and a text report.

Every metric uses the fixed label set 1..10 (docs/design.md §3), so a split that happens to lack some grades
is scored on the same scale as one that has them all. Inputs may be lists, numpy arrays or torch tensors
of integer grades (1-based); numpy does the arithmetic so `core` needs no scikit-learn at run time.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.records import CRITERIA

GRADES = tuple(range(1, 11))


def _as_grades(values: Any, name: str, num_classes: int = 10) -> np.ndarray:
    # torch tensors expose .numpy() only on CPU and without grad; .detach().cpu() handles both.
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name}: grades must be integers 1..{num_classes}, got {arr[:5].tolist()}")
    arr = arr.astype(np.int64)
    bad = (arr < 1) | (arr > num_classes)
    if bad.any():
        raise ValueError(f"{name}: grades must be in 1..{num_classes}, got {int(arr[bad][0])}")
    return arr


def _pair(y_true: Any, y_pred: Any, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    t = _as_grades(y_true, "y_true", num_classes)
    p = _as_grades(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} grades but y_pred has {p.size}; expected the same length")
    return t, p


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int = 10) -> list[list[int]]:
    """Counts [true grade - 1][predicted grade - 1] over the full label set 1..num_classes."""
    t, p = _pair(y_true, y_pred, num_classes)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t - 1, p - 1), 1)
    return cm.tolist()


def qwk(y_true: Any, y_pred: Any, num_classes: int = 10) -> float:
    """Quadratic weighted kappa over the fixed label set (docs/design.md §3).

    O is the confusion matrix, E = outer(row sums, col sums) / N, w_ij = (i - j)^2 and
    kappa = 1 - sum(w*O) / sum(w*E). When sum(w*E) == 0 (every true and predicted grade is one and the
    same value) kappa is undefined (scikit-learn gives NaN); we return 1.0 if every prediction equals its
    truth (perfect agreement) and 0.0 otherwise, so a degenerate split never yields NaN. No samples: 0.0.
    """
    t, p = _pair(y_true, y_pred, num_classes)
    if t.size == 0:
        return 0.0
    o = np.asarray(confusion_matrix(t, p, num_classes), dtype=np.float64)
    e = np.outer(o.sum(axis=1), o.sum(axis=0)) / t.size
    idx = np.arange(num_classes)
    w = (idx[:, None] - idx[None, :]) ** 2
    denom = float((w * e).sum())
    if denom == 0.0:
        return 1.0 if bool(np.all(t == p)) else 0.0
    return float(1.0 - (w * o).sum() / denom)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error in grade points (0.0 for no samples)."""
    t, p = _pair(y_true, y_pred)
    return float(np.abs(t - p).mean()) if t.size else 0.0


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of exact grade matches (0.0 for no samples)."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean()) if t.size else 0.0


def within_one_accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of predictions at most one grade away from the truth (0.0 for no samples)."""
    t, p = _pair(y_true, y_pred)
    return float((np.abs(t - p) <= 1).mean()) if t.size else 0.0


def f1_scores(y_true: Any, y_pred: Any) -> tuple[float, float]:
    """(macro F1, weighted F1), as scikit-learn's f1_score(average="macro" / "weighted") computes them.

    Per grade F1 = 2 TP / (2 TP + FP + FN). Macro averages it over the grades that occur in y_true or
    y_pred (scikit-learn's default label set), weighted averages it by each grade's true count; a grade
    never predicted scores 0 (scikit-learn's zero_division default). No samples: (0.0, 0.0).
    """
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return 0.0, 0.0
    cm = np.asarray(confusion_matrix(t, p), dtype=np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    denom = support + predicted  # = 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = denom > 0
    return float(f1[present].mean()), float((f1 * support).sum() / support.sum())


def per_grade_accuracy(y_true: Any, y_pred: Any) -> dict[int, float | None]:
    """Exact accuracy per true grade 1..10; None where the grade does not occur in y_true."""
    t, p = _pair(y_true, y_pred)
    out: dict[int, float | None] = {}
    for g in GRADES:
        sel = t == g
        out[g] = float((p[sel] == g).mean()) if sel.any() else None
    return out


def grading_report(y_true: Any, y_pred: Any) -> dict:
    """All metrics in one JSON-ready dict (per-grade keys are strings "1".."10" for JSON round trips)."""
    t, p = _pair(y_true, y_pred)
    macro_f1, weighted_f1 = f1_scores(t, p)
    return {
        "qwk": qwk(t, p),
        "mae": mae(t, p),
        "accuracy": accuracy(t, p),
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
        "within_one": within_one_accuracy(t, p),
        "per_grade_accuracy": {str(g): v for g, v in per_grade_accuracy(t, p).items()},
        "confusion": confusion_matrix(t, p),
        "n": int(t.size),
    }


def _pairs(confusion: Any) -> tuple[np.ndarray, np.ndarray]:
    cm = np.asarray(confusion, dtype=np.int64)
    y_true = np.repeat(np.arange(1, 11), cm.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(1, 11), row) for row in cm])
    return y_true, y_pred


def report_from_confusion(confusion: Any, criteria: Any = None) -> dict:
    """`grading_report` from a 10x10 count matrix (rows: true grade, columns: predicted), e.g. one summed
    across ranks; with `criteria` ([4, 10, 10], one matrix per CRITERIA entry) it adds "criteria":
    {name: {"accuracy", "within_one", "mae", "n"}} for the criteria that have labelled records."""
    report = grading_report(*_pairs(confusion))
    if criteria is not None:
        report["criteria"] = {}
        for name, cm in zip(CRITERIA, np.asarray(criteria)):
            t, p = _pairs(cm)
            if t.size:
                report["criteria"][name] = {"accuracy": accuracy(t, p), "within_one": within_one_accuracy(t, p),
                                            "mae": mae(t, p), "n": int(t.size)}
    return report


def format_inference_time(t: dict) -> str:
    """One line: latency per card at batch 1 and throughput at the eval batch size, on the named device."""
    return (f"inference on {t['device']}: {t['batch1_median_ms']:.1f} ms per card median, "
            f"{t['batch1_p95_ms']:.1f} ms p95 (batch 1); {t['cards_per_s']:,.1f} cards/s at batch "
            f"{t['batch_size']}{_reads_note(t.get('reads', 1))}")


def _reads_note(reads: int) -> str:
    return f", each card read {reads} times" if reads > 1 else ""


def format_report(report: dict) -> str:
    """A readable text version of `grading_report`: headline numbers, per-grade accuracy, confusion."""
    lines = [
        f"samples {report['n']}   QWK {report['qwk']:.4f}   MAE {report['mae']:.3f}   "
        f"exact {report['accuracy']:.1%}   within one {report['within_one']:.1%}"
        f"{_reads_note(report.get('reads', 1))}",
        f"accuracy {report['accuracy']:.4f}   macro F1 {report['macro_f1']:.4f}   "
        f"weighted F1 {report['weighted_f1']:.4f}",
        *([format_inference_time(report["inference"])] if report.get("inference") else []),
        "",
        "per-grade accuracy (true grade: exact, count)",
    ]
    confusion = report["confusion"]
    for g in GRADES:
        acc = report["per_grade_accuracy"].get(str(g))
        count = sum(confusion[g - 1])
        shown = "   -  " if acc is None else f"{acc:6.1%}"
        lines.append(f"  grade {g:>2}: {shown}  (n={count})")
    width = max(4, max(len(str(v)) for row in confusion for v in row) + 1)
    lines += ["", "confusion matrix (rows: true grade, columns: predicted grade)",
              "true\\pred" + "".join(f"{g:>{width}}" for g in GRADES)]
    for g, row in zip(GRADES, confusion):
        lines.append(f"{g:>9}" + "".join(f"{v:>{width}}" for v in row))
    if report.get("criteria"):
        lines += ["", "criterion sub-grades (exact, within one, MAE, count)"]
        for name, c in report["criteria"].items():
            lines.append(f"  {name:<10} {c['accuracy']:6.1%} {c['within_one']:6.1%} {c['mae']:6.3f}  (n={c['n']})")
    return "\n".join(lines)
