"""Early stopping per phase: an improvement counts only past `min_delta` (HuggingFace semantics)."""
from __future__ import annotations

import math


class EarlyStopping:
    def __init__(self, mode: str = "max", patience: int = 5, min_delta: float = 0.0, enabled: bool = True):
        if mode not in ("max", "min"):
            raise ValueError(f"early_stopping.mode = {mode!r} must be 'max' or 'min'")
        self.mode, self.patience, self.min_delta, self.enabled = mode, patience, min_delta, enabled
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def is_improvement(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's metric; True when it is the new best."""
        if self.is_improvement(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
