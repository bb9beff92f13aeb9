"""The grading loss: squared EMD + cross-entropy on the grade, plus masked edge and centering regressions.

total = alpha_emd * mean(EMD^2) + (1 - alpha_emd) * CE + beta_edge * edge + beta_center * center
        + beta_criteria * criteria

`criteria` is the same EMD/CE mix on each criterion's sub-grade (centering, corners, edges, surface),
averaged over the labelled (record, criterion) pairs only.

EMD^2 respects the order of grades (predicting 9 for a 10 costs less than predicting 3); CE keeps the
probability mass sharp. The auxiliary terms use MSE: targets and predictions are both in [0, 1] (sigmoid
heads), so errors are never outliers and smooth L1 with its default beta = 1 would be just half of MSE
there. Each auxiliary term is a mean over the labelled entries only and is exactly 0 (not NaN) when a
batch has none, so records without edge/centering labels still train the grade.

Everything is computed in float32 with autocast disabled: bf16/fp16 softmax and cumsum lose the small
CDF differences EMD depends on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def squared_emd(logits: Tensor, target: Tensor) -> Tensor:
    """Per-sample squared EMD [B] between softmax(logits) [B, C] and one-hot class indices [B] (0-based).

    sum_k (CDF_k(p) - 1[k >= y])^2 (docs/design.md §3); the caller reduces.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        cdf = torch.cumsum(torch.softmax(logits.float(), dim=-1), dim=-1)
        k = torch.arange(logits.shape[-1], device=logits.device)
        target_cdf = (k.unsqueeze(0) >= target.long().unsqueeze(1)).float()
        return ((cdf - target_cdf) ** 2).sum(dim=-1)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over entries where `mask` is True; 0 when none are.

    Unlabelled targets may hold anything (NaN included): they are replaced before the subtraction, so
    neither the value nor the gradient of a masked entry can turn into NaN.
    """
    mask = mask.to(device=pred.device, dtype=torch.bool).expand_as(pred)
    pred = pred.float()
    target = torch.where(mask, target.to(pred.device).float(), torch.zeros_like(pred))
    sq = (pred - target) ** 2 * mask.float()
    return sq.sum() / mask.sum().clamp(min=1).float()


def criteria_loss(logits: Tensor, target: Tensor, alpha_emd: float) -> Tensor:
    """logits [B, K, C], target [B, K] class indices with -1 where unlabelled -> mean over labelled; 0 if none."""
    # Masked by multiplication, not boolean indexing: indexing would sync the host with the GPU each step.
    mask = (target >= 0).flatten().float()
    flat, y = logits.float().flatten(0, 1), target.clamp(min=0).long().flatten()
    per = alpha_emd * squared_emd(flat, y) + (1.0 - alpha_emd) * F.cross_entropy(flat, y, reduction="none")
    return (per * mask).sum() / mask.sum().clamp(min=1.0)


def grading_loss(outputs: dict, targets: dict, alpha_emd: float, beta_edge: float,
                 beta_center: float, beta_criteria: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Scalar total loss and its detached parts {"emd", "ce", "edge", "center", "criteria"}.

    outputs: "logits" [B, 10], "edge" [B], "centering" [B, 4], optional "center_valid" [4] bool (which
    centering columns are real predictions; DualBranchGrader's back-only mode marks the front half
    invalid). targets: "grade" [B] class index 0..9, "edge" [B], "edge_mask" [B] bool, "centering"
    [B, 4], "center_mask" [B] bool; with criterion heads, outputs "criteria" [B, 4, 10] and targets
    "subgrades" [B, 4] (-1 = unlabelled).
    """
    logits = outputs["logits"]
    with torch.autocast(device_type=logits.device.type, enabled=False):
        grade = targets["grade"].long()
        emd = squared_emd(logits, grade).mean()
        ce = F.cross_entropy(logits.float(), grade)
        edge = masked_mse(outputs["edge"], targets["edge"], targets["edge_mask"])
        center_mask = targets["center_mask"].to(torch.bool).unsqueeze(1)  # [B, 1]
        valid = outputs.get("center_valid")
        if valid is not None:
            center_mask = center_mask & valid.to(device=center_mask.device, dtype=torch.bool).unsqueeze(0)
        center = masked_mse(outputs["centering"], targets["centering"], center_mask)
        total = alpha_emd * emd + (1.0 - alpha_emd) * ce + beta_edge * edge + beta_center * center
        criteria = torch.zeros((), device=logits.device)
        if "criteria" in outputs and "subgrades" in targets:
            criteria = criteria_loss(outputs["criteria"], targets["subgrades"], alpha_emd)
            total = total + beta_criteria * criteria
    parts = {"emd": emd.detach(), "ce": ce.detach(), "edge": edge.detach(), "center": center.detach(),
             "criteria": criteria.detach()}
    return total, parts


class GradingLoss(nn.Module):
    """`grading_loss` with its weights bound: `loss, parts = GradingLoss(0.7, 0.05, 0.1)(outputs, targets)`."""

    def __init__(self, alpha_emd: float = 0.7, beta_edge: float = 0.05, beta_center: float = 0.1):
        super().__init__()
        if not 0.0 <= alpha_emd <= 1.0:
            raise ValueError(f"loss.alpha_emd={alpha_emd}: expected a value in [0, 1]")
        if beta_edge < 0 or beta_center < 0:
            raise ValueError(f"loss.beta_edge={beta_edge}, loss.beta_center={beta_center}: expected >= 0")
        self.alpha_emd, self.beta_edge, self.beta_center = alpha_emd, beta_edge, beta_center

    def forward(self, outputs: dict, targets: dict) -> tuple[Tensor, dict[str, Tensor]]:
        return grading_loss(outputs, targets, self.alpha_emd, self.beta_edge, self.beta_center)
