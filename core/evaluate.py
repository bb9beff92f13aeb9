"""`python -m core.evaluate --model DIR|--checkpoint FILE --splits FILE [--split test]`.

Prints the grading report (QWK, MAE, exact and within-one accuracy, macro and weighted F1, per-grade
accuracy, confusion matrix, each criterion's sub-grade accuracy when the model has criterion heads, and
the inference time per card) and writes it as JSON (default: report_<split>.json beside the model or
checkpoint, in the bucket when that is gs://). The model, the checkpoint and the splits may each be
local or gs://, as in the Vertex guide (`--checkpoint gs://.../phase2_best.pth`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from core import distributed, latency, storage
from core.checkpoint import CheckpointError
from core.data import CardDataset, ImageError, model_input_settings, model_inputs
from core.export import ExportError, load_exported, load_from_checkpoint
from core.grade_rule import expected_class
from core.metrics import format_report, report_from_confusion
from core.reads import MAX_READS, ReadsError, pooled_reading, read_shifts, reads_of
from core.records import CRITERIA, SplitsError, load_splits


def read_loaders(dataset: CardDataset, reads: int, batch_size: int):
    """Batches of the same cards, one per read (core/reads.py): each step yields a tuple of `reads` batches,
    the first of the scans as they are, the others moved (CardDataset.with_shift). confusion_counts reads
    them as one."""
    return zip(*(DataLoader(dataset.with_shift(shift), batch_size=batch_size, shuffle=False)
                 for shift in read_shifts(reads)))


@torch.no_grad()
def predict_records(model, records, image_size, sides, batch_size: int = 64, device="cpu",
                    reads: int = 1) -> np.ndarray:
    """Predicted grades (1..10) for records, in order (with the model's crops when it reads them), each card
    read `reads` times (core/reads.py)."""
    crops, detail = model_input_settings(model.config())
    dataset = CardDataset(records, tuple(image_size), tuple(sides), crops=crops, detail=detail)
    preds = []
    for batches in read_loaders(dataset, reads, batch_size):
        reading = pooled_reading([model(**model_inputs(b, sides, torch.device(device), False)) for b in batches])
        preds.append(expected_class(reading["grade"]).cpu() + 1)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def confusion_counts(model, batches, autocast=contextlib.nullcontext, to_inputs=None, loss_fn=None) -> dict:
    """Run `model` in eval mode over loader batches, each a batch or a tuple of batches of the same cards,
    one per read (read_loaders; the grade is read from the reads' pooled_reading, the loss from the first).
    -> {"grade": [10, 10] float64 counts (rows: true grade), "criteria": [4, 10, 10] the same per criterion
    over labelled sub-grades, "loss_sum": summed loss_fn(outputs, batch) x batch size}, on the model's
    device, so a trainer can all-reduce them across ranks before turning them into a report
    (core.metrics.report_from_confusion)."""
    device = next(model.parameters()).device
    model.eval()
    confusion = torch.zeros(10, 10, dtype=torch.float64, device=device)
    criteria = torch.zeros(len(CRITERIA), 10, 10, dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for item in batches:
        reads = (item,) if isinstance(item, dict) else tuple(item)
        batch = reads[0]
        with autocast():
            outputs = [model(**to_inputs(b)) for b in reads]
        if loss_fn is not None:
            loss_sum += loss_fn(outputs[0], batch).double() * len(batch["grade"])
        reading = pooled_reading(outputs)
        pred = expected_class(reading["grade"])
        confusion.index_put_((batch["grade"].to(device), pred), torch.ones_like(pred, dtype=torch.float64),
                             accumulate=True)
        if reading["criteria"] is not None:
            # Unlabelled sub-grades (-1) add a weight of 0: no boolean indexing, so no host sync on a GPU.
            true = batch["subgrades"].to(device)
            which = torch.arange(len(CRITERIA), device=device).expand_as(true)
            criteria.index_put_((which.flatten(), true.clamp(min=0).flatten(),
                                 expected_class(reading["criteria"]).flatten()),
                                (true >= 0).flatten().double(), accumulate=True)
    return {"grade": confusion, "criteria": criteria, "loss_sum": loss_sum}


def evaluate_shards(model, batches, autocast, to_inputs, loss_fn) -> dict:
    """Evaluate each rank's shard of a split and combine them; every rank must call it.

    confusion_counts over this rank's `batches`, summed across ranks (all-reduces of the grade
    confusion, the criteria confusion and the loss sum, in that order) -> {"val_loss": mean loss_fn per
    card, "val_qwk", "val_mae", "val_acc", "report": the full report_from_confusion} (the same on every
    rank)."""
    counts = confusion_counts(model, batches, autocast, to_inputs, loss_fn)
    confusion, criteria, loss_sum = (distributed.all_reduce_sum(counts[k]) for k in ("grade", "criteria",
                                                                                    "loss_sum"))
    report = report_from_confusion(*(c.round().long().cpu().numpy() for c in (confusion, criteria)))
    return {"val_loss": float(loss_sum) / max(1, report["n"]), "val_qwk": report["qwk"],
            "val_mae": report["mae"], "val_acc": report["accuracy"], "report": report}


EVAL_BATCH_SIZE = 128  # the optimisations guide's evaluation batch (training.eval_batch_size)


def evaluate(model_dir: str | None, checkpoint: str | None, splits_path: str, split: str = "test",
             batch_size: int = EVAL_BATCH_SIZE, reads: int | None = None) -> dict:
    """The report of a split; each card read as many times as the model's config says (core/reads.py), or
    `reads` times."""
    model, config = (load_exported(model_dir) if model_dir else load_from_checkpoint(checkpoint))
    reads = reads_of(config, reads)
    records = load_splits(splits_path).split(split)
    sides = tuple(config.get("sides", ["front", "back"]))
    crops, detail = model_input_settings(config["model"])
    dataset = CardDataset(records, tuple(config["image_size"]), sides, crops=crops, detail=detail)
    counts = confusion_counts(model, read_loaders(dataset, reads, batch_size),
                              to_inputs=lambda b: model_inputs(b, sides, torch.device("cpu"), False))
    report = report_from_confusion(counts["grade"].round().long().numpy(), counts["criteria"].round().long().numpy())
    if records:
        cards = latency.sample_cards(CardDataset(records[:16], tuple(config["image_size"]), sides, crops=crops,
                                                 detail=detail), sides)
        report["inference"] = latency.measure(model, cards, batch_size, reads)
    report.update({"split": split, "splits": splits_path, "model": model_dir or checkpoint, "reads": reads})
    return report


def default_output(model_dir: str | None, checkpoint: str | None, split: str) -> str:
    """report_<split>.json beside the model directory or the checkpoint file: in the same bucket folder
    for gs:// (os.path would turn gs://b/x into a local folder named 'gs:')."""
    if model_dir:
        return storage.join(model_dir, f"report_{split}.json")
    if storage.is_gcs(checkpoint):
        return storage.join(checkpoint.rsplit("/", 1)[0], f"report_{split}.json")
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f"report_{split}.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.evaluate", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="exported model directory (psa_dual_branch_*.{pth,json})")
    src.add_argument("--checkpoint", help="training checkpoint (.pth), local or gs://")
    p.add_argument("--splits", "--splits_path", "--splits-path", dest="splits", required=True,
                   help="splits.json, local or gs:// (--splits_path as in the Vertex guide)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--output", help="report JSON path, local or gs:// (default: report_<split>.json beside "
                                    "the model or checkpoint)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=EVAL_BATCH_SIZE,
                   help=f"cards per forward pass (default {EVAL_BATCH_SIZE})")
    p.add_argument("--reads", type=int, default=None,
                   help=f"read each card this many times, its scans moved by a pixel between reads, and grade "
                        f"the mean (1 - {MAX_READS}; default: what the model was exported with)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size {args.batch_size}: expected at least 1")
    try:
        report = evaluate(args.model, args.checkpoint, args.splits, args.split, args.batch_size, args.reads)
    except (ExportError, CheckpointError, SplitsError, ImageError, storage.StorageError, ReadsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    out = args.output or default_output(args.model, args.checkpoint, args.split)
    try:
        storage.write_text_atomic(out, json.dumps(report, indent=2))
    except (storage.StorageError, OSError) as exc:
        print(f"error: {out}: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
