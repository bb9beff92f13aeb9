"""The one prediction path: `core.predict` (one card from the command line) and `core.serve` (HTTP) both
grade through `predict_cards`, so a served grade is exactly the grade the command line prints.

Images go through `core.data.load_card_reads` (one decode, then the view, detail map and crops that training
and evaluation cut, for each read) and `normalize_on_device`, the normalisation they use; an image may be a
local path, a gs:// path or the encoded file's bytes (an upload).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence, Union

import torch

from core.data import ImageError, load_card_reads, model_input_settings, model_inputs
from core.export import load_exported
from core.grade_rule import expected_class, expected_index, nearest_class
from core.reads import pooled_reading, read_shifts, reads_of, split_reads
from core.records import CRITERIA

ImageSource = Union[str, bytes, os.PathLike]
SIDES = ("front", "back")


def load_model(model_dir: str, device: str | torch.device = "cpu"):
    """(model in eval mode, config) from an export directory, local or gs:// (see core/export.py)."""
    return load_exported(str(model_dir), device)


def model_sides(config: dict) -> list[str]:
    """The scans the model reads: ["front", "back"], or ["back"] for a back-only (phase 1) model."""
    return list(config.get("sides", list(SIDES)))


def preprocess(config: dict, card: Mapping[str, ImageSource | None],
               sides: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """{side: uint8 Rx3xHxW (Rx4xHxW or Rx5xHxW with the detail map)} for the sides the model reads (or
    `sides`), plus {side}_crops RxNx3xSxS (N = 4 + 4 x edge crops) when the model reads crops, made by the
    same core.data code as in training; R is the model's reads (core/reads.py: the scans as they are, then
    moved a pixel; 1 for a model exported before reads existed). ImageError names a bad image."""
    size = tuple(config["image_size"])
    crops, detail = model_input_settings(config["model"])
    shifts = read_shifts(reads_of(config))
    out = {}
    for side in sides or model_sides(config):
        src = card.get(side)
        if src is None:
            raise ImageError(f"missing the {side} scan (this model reads: {', '.join(model_sides(config))})")
        views, cut = load_card_reads(src if isinstance(src, bytes) else os.fspath(src), size, shifts, detail, crops)
        out[side] = torch.from_numpy(views).permute(0, 3, 1, 2)
        if crops:
            out[f"{side}_crops"] = torch.from_numpy(cut).permute(0, 1, 4, 2, 3)
    return out


@torch.no_grad()
def grade_batch(model, config: dict, cards: Sequence[Mapping[str, torch.Tensor]]) -> list[dict]:
    """Grade preprocessed cards (`preprocess` outputs) in one forward pass over all their reads; one field
    dict per card, read from the mean of its reads (core/reads.py: as many as the config says).

    The fields are what `python -m core.predict --json` prints and core.serve returns (the response of
    the Vertex AI prediction contract, README "Serve the grader"): grade (expected_grade rounded to the
    nearest grade, core/grade_rule.py), expected_grade (the mean of probabilities), probabilities
    (10 floats, grades 1..10 in order; with criterion heads pooled with the distribution they imply),
    edge (edge/corner damage, 0 = pristine), centering (front/back: left-right and top-bottom shares),
    and for a model with criterion heads subgrades (criterion -> 1..10) and held_back_by (the lowest
    criteria: the grade is the minimum of the criteria, docs/design.md §2; empty when every criterion is
    a 10). This is the only place they are computed.
    """
    sides = model_sides(config)
    device = next(model.parameters()).device
    reads = next(iter(cards[0].values())).shape[0]  # preprocess: every card's reads, in READ_SHIFTS' order
    out = model(**model_inputs({k: torch.cat([c[k] for c in cards]) for k in cards[0]}, sides, device, False))
    reading = pooled_reading(split_reads(out, reads))
    probs = reading["grade"].cpu()  # criteria pooled in, measured centering read through PSA's bands
    mean = expected_index(probs)  # once, for both fields: the grade is expected_grade rounded
    decided = nearest_class(mean, probs.shape[1])
    edge, centering = reading["edge"].cpu(), reading["centering"].cpu()
    sub_probs = reading["criteria"]
    results = []
    for i in range(len(cards)):
        p, c = probs[i], centering[i].tolist()
        results.append({
            "grade": int(decided[i]) + 1,
            "expected_grade": float(mean[i]) + 1.0,
            "probabilities": [round(float(q), 4) for q in p],
            "edge": round(float(edge[i]), 4),
            "centering": {"front": [round(c[0], 4), round(c[1], 4)], "back": [round(c[2], 4), round(c[3], 4)]},
        })
        if sub_probs is not None:
            results[-1].update(criterion_grades(sub_probs[i]))
    return results


def criterion_grades(probs: torch.Tensor) -> dict:
    """[4, 10] sub-grade distributions -> {"subgrades": {criterion: 1..10}, "held_back_by": [criteria]}."""
    subgrades = {name: int(g) + 1 for name, g in zip(CRITERIA, expected_class(probs))}
    lowest = min(subgrades.values())
    return {"subgrades": subgrades,
            "held_back_by": [n for n, g in subgrades.items() if g == lowest] if lowest < 10 else []}


def predict_cards(model, config: dict, cards: Sequence[Mapping[str, ImageSource | None]]) -> list[dict]:
    """Grade cards given as {"front": path|bytes, "back": path|bytes}: preprocess, then one batch."""
    return grade_batch(model, config, [preprocess(config, card) for card in cards])


def predict_card(model, config: dict, front: ImageSource | None, back: ImageSource) -> dict:
    """One card: `predict_cards` with a batch of one."""
    return predict_cards(model, config, [{"front": front, "back": back}])[0]
