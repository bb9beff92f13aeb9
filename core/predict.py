"""`python -m core.predict --model DIR FRONT BACK`: grade one card from its two scans.

It also says how long that took (the whole grade: decode, resize, model; and loading the model), on
which device, so a user can compare with the report's inference time and the Vertex guide's figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from core import latency, storage
from core.data import ImageError
from core.export import ExportError
from core.inference import load_model, predict_card  # the one prediction path, shared with core.serve
from core.reads import MAX_READS, ReadsError, reads_of


def _ratio(share: float) -> str:
    big = max(share, 1 - share) * 100
    return f"{big:.0f}/{100 - big:.0f}"


def format_prediction(p: dict) -> str:
    held = f", held back by {' and '.join(p['held_back_by'])}" if p.get("held_back_by") else ""
    lines = [f"PSA grade: {p['grade']}{held}   (expected {p['expected_grade']:.2f})"]
    if "subgrades" in p:
        lines.append("sub-grades: " + ", ".join(f"{name} {g}" for name, g in p["subgrades"].items()))
    lines.append("probabilities:")
    for g, prob in enumerate(p["probabilities"], start=1):
        lines.append(f"  {g:>2} {prob:6.1%} {'#' * int(round(prob * 40))}")
    lines.append(f"edge/corner damage: {p['edge']:.2f} (0 = pristine)")
    for side in ("front", "back"):
        lr, tb = p["centering"][side]
        lines.append(f"centering {side}: left/right {_ratio(lr)}, top/bottom {_ratio(tb)}")
    if "timing" in p:
        t = p["timing"]
        lines.append(f"time: {t['grade_ms']:.1f} ms to grade this card (decode, resize, model) on {t['device']}; "
                     f"model loaded in {t['load_s']:.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.predict", description=__doc__)
    p.add_argument("--model", required=True, help="exported model directory (local or gs://)")
    p.add_argument("front", help="front scan (local path or gs://)")
    p.add_argument("back", help="back scan (local path or gs://)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--reads", type=int, default=None,
                   help=f"read the card this many times, its scans moved by a pixel between reads, and grade the "
                        f"mean (1 - {MAX_READS}; default: what the model was exported with)")
    args = p.parse_args(argv)
    try:
        start = time.perf_counter()
        model, config = load_model(args.model)
        config = {**config, "reads": reads_of(config, args.reads)}
        loaded = time.perf_counter()
        result = predict_card(model, config, args.front, args.back)
        graded = time.perf_counter()
        result["timing"] = {"grade_ms": round((graded - loaded) * 1000, 3), "load_s": round(loaded - start, 3),
                            "device": latency.device_name(next(model.parameters()).device)}
    except (ExportError, ImageError, storage.StorageError, ReadsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
