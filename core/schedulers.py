"""Learning-rate schedules with HuggingFace's names and formulas (docs/design.md §3), as LambdaLR factors.

`lr_lambda` is a pure function of the step, so the trainer can compute the LR of any step (for a log
line, or after a resume) without building or checkpointing a scheduler; `get_scheduler` wraps it in a
`torch.optim.lr_scheduler.LambdaLR` stepped once per optimizer step; `make_optimizer_and_scheduler` builds
a training phase's AdamW and schedule from the preset (core.train and benchmarks/bench_loop.py).

Notation: s = step, W = warm-up steps, T = training steps, p = (s - W) / max(1, T - W) clamped to
[0, 1]. Warm-up factor s / max(1, W) for s < W (every schedule but `constant`). After warm-up:
  linear                1 - p                         (HF: (T - s) / (T - W))
  cosine                0.5 (1 + cos(pi * 2c * p)),  c = num_cycles, default 0.5
  cosine_with_restarts  0.5 (1 + cos(pi * ((c p) % 1))), 0 once p >= 1, c default 1
  polynomial            ((lr0 - lr_end) (1 - p)^power + lr_end) / lr0
  constant, constant_with_warmup   1
Clamping p keeps T <= W (a phase shorter than its warm-up) and steps past T finite and non-negative
instead of dividing by zero or letting cosine climb again; for W < s <= T it is HuggingFace's formula.
"""
from __future__ import annotations

import math

import torch

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
_KWARGS = ("num_cycles", "power", "lr_end", "lr_init")
_DEFAULT_CYCLES = {"cosine": 0.5, "cosine_with_restarts": 1.0}


def _check(name: str, num_warmup_steps: int, num_training_steps: int, kwargs: dict) -> None:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise ValueError(f"scheduler {name!r}: unknown argument {unknown[0]!r}; expected {', '.join(_KWARGS)}")
    if num_warmup_steps < 0 or num_training_steps < 0:
        raise ValueError(f"scheduler {name!r}: num_warmup_steps={num_warmup_steps} and "
                         f"num_training_steps={num_training_steps} must be >= 0")


def lr_lambda(name: str, step: int, num_warmup_steps: int, num_training_steps: int, **kwargs) -> float:
    """The LR multiplier of `name` at optimizer step `step` (0-based), as LambdaLR would apply it.

    kwargs: num_cycles (cosine 0.5, cosine_with_restarts 1; None or 0 means that default, matching the
    preset's `num_cycles = 0`), power (1.0), lr_end (1e-7), and lr_init: the peak LR, needed only by
    `polynomial` (get_scheduler takes it from the optimizer). Names and kwargs are checked on every call.
    """
    _check(name, num_warmup_steps, num_training_steps, kwargs)
    w, t = num_warmup_steps, num_training_steps
    if name == "constant":
        return 1.0
    if step < w:
        return float(step) / float(max(1, w))
    p = min(1.0, max(0.0, (step - w) / max(1, t - w)))
    if name == "constant_with_warmup":
        return 1.0
    if name == "linear":
        return 1.0 - p
    if name == "cosine":
        cycles = kwargs.get("num_cycles") or _DEFAULT_CYCLES[name]
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * cycles * p)))
    if name == "cosine_with_restarts":
        cycles = kwargs.get("num_cycles") or _DEFAULT_CYCLES[name]
        if p >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * p) % 1.0))))
    return _polynomial(p, kwargs)


def _polynomial(p: float, kwargs: dict) -> float:
    lr_init = kwargs.get("lr_init")
    if lr_init is None:
        raise ValueError("scheduler 'polynomial': lr_init (the peak learning rate) is required")
    lr_end = kwargs.get("lr_end", 1e-7)
    power = kwargs.get("power", 1.0)
    if lr_end > lr_init:
        raise ValueError(f"scheduler 'polynomial': lr_end={lr_end} must not exceed the initial lr {lr_init}")
    if lr_init == 0:
        return 1.0  # the LR is 0 whatever the factor; avoid 0/0
    return ((lr_init - lr_end) * (1.0 - p) ** power + lr_end) / lr_init


def get_scheduler(name: str, optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                  num_training_steps: int, **kwargs) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following `lr_lambda(name, ...)`; step it once per optimizer step.

    Like HuggingFace, polynomial decays from the optimizer's default lr (`optimizer.defaults["lr"]`)
    unless lr_init is given. Raises ValueError for an unknown name or argument before building anything.
    """
    _check(name, num_warmup_steps, num_training_steps, kwargs)
    if name == "polynomial":
        kwargs.setdefault("lr_init", optimizer.defaults["lr"])
        _polynomial(0.0, kwargs)  # fail now on lr_end > lr_init, not at the first step

    def factor(step: int) -> float:
        return lr_lambda(name, step, num_warmup_steps, num_training_steps, **kwargs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer_and_scheduler(model: torch.nn.Module, t, lr: float, total_steps: int,
                                 device: torch.device, warmup_steps: int | None = None):
    """(AdamW, LambdaLR) for one training phase, from the preset's [training] table `t`.

    AdamW runs over the model's trainable parameters (requires_grad) at `lr` with t.weight_decay, fused
    (one kernel over all parameters) on CUDA and on the CPU: on the CPU the default per-parameter loop cost
    about 4% of a local-preset training step (benchmarks/bench_step.py). The schedule is t.scheduler (with
    t.power, t.lr_end and t.num_cycles when > 0) over `total_steps` optimizer steps; it warms up for
    `warmup_steps` when given, else for t.warmup_steps, else for t.warmup_ratio of total_steps.
    """
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=t.weight_decay, fused=device.type in ("cuda", "cpu"))
    if warmup_steps is None:
        warmup_steps = t.warmup_steps or int(round(t.warmup_ratio * total_steps))
    extra = {"num_cycles": t.num_cycles} if t.num_cycles > 0 else {}
    scheduler = get_scheduler(t.scheduler, optimizer, warmup_steps, total_steps, power=t.power, lr_end=t.lr_end,
                              **extra)
    return optimizer, scheduler
