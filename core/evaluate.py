"""`python -m core.evaluate --model DIR|--checkpoint FILE --splits FILE [--split test]`.

Prints the grading report (QWK, MAE, exact and within-one accuracy, per-grade accuracy, confusion
matrix) and writes it as JSON (default: report_<split>.json beside the model or checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from core import storage
from core.checkpoint import CheckpointError
from core.data import CardDataset, ImageError, normalize_on_device
from core.export import ExportError, load_exported, load_from_checkpoint
from core.metrics import format_report, grading_report
from core.records import SplitsError, load_splits


@torch.no_grad()
def predict_records(model, records, image_size, sides, batch_size: int = 64, device="cpu") -> np.ndarray:
    """Predicted grades (1..10) for records, in order."""
    dataset = CardDataset(records, tuple(image_size), tuple(sides))
    preds = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        inputs = {s: normalize_on_device(batch[s].to(device), False) for s in sides}
        preds.append(model(**inputs)["logits"].argmax(dim=1).cpu() + 1)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def evaluate(model_dir: str | None, checkpoint: str | None, splits_path: str, split: str = "test",
             batch_size: int = 64) -> dict:
    model, config = (load_exported(model_dir) if model_dir else load_from_checkpoint(checkpoint))
    records = load_splits(splits_path).split(split)
    sides = config.get("sides", ["front", "back"])
    y_pred = predict_records(model, records, config["image_size"], sides, batch_size)
    y_true = np.array([r.grade for r in records])
    report = grading_report(y_true, y_pred)
    report.update({"split": split, "splits": splits_path, "model": model_dir or checkpoint})
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.evaluate", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="exported model directory (psa_dual_branch_*.{pth,json})")
    src.add_argument("--checkpoint", help="training checkpoint (.pth)")
    p.add_argument("--splits", required=True, help="splits.json")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--output", help="report JSON path (default: report_<split>.json beside the model)")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    try:
        report = evaluate(args.model, args.checkpoint, args.splits, args.split, args.batch_size)
    except (ExportError, CheckpointError, SplitsError, ImageError, storage.StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    out = args.output or storage.join(args.model or os.path.dirname(os.path.abspath(args.checkpoint)),
                                      f"report_{args.split}.json")
    storage.write_text_atomic(out, json.dumps(report, indent=2))
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
