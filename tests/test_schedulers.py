"""core.schedulers against HuggingFace's formulas (docs/design.md §3), written out by hand here."""
import math

import pytest
import torch

from core.schedulers import SCHEDULERS, get_scheduler, lr_lambda

W, T, LR0 = 10, 110, 1e-3
# step 0, mid-warm-up, warm-up end, middle of the decay, three quarters, the last step
STEPS = [0, 5, 10, 60, 85, 110]


def _p(s):
    return (s - W) / (T - W)


def _warm(s):
    return s / W


EXPECTED = {
    "constant": lambda s: 1.0,
    "constant_with_warmup": lambda s: _warm(s) if s < W else 1.0,
    "linear": lambda s: _warm(s) if s < W else (T - s) / (T - W),
    "cosine": lambda s: _warm(s) if s < W else 0.5 * (1 + math.cos(math.pi * 2 * 0.5 * _p(s))),
    "cosine_with_restarts": lambda s: _warm(s) if s < W else (
        0.0 if _p(s) >= 1 else 0.5 * (1 + math.cos(math.pi * ((1.0 * _p(s)) % 1)))),
    "polynomial": lambda s: _warm(s) if s < W else ((LR0 - 1e-7) * (1 - _p(s)) ** 1.0 + 1e-7) / LR0,
}


def _lrs(name, **kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR0)
    sched = get_scheduler(name, opt, W, T, **kwargs)
    seen = []
    for _ in range(T + 1):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_follows_formula_at_key_steps(name):
    lrs = _lrs(name)
    for s in STEPS:
        assert lrs[s] == pytest.approx(LR0 * EXPECTED[name](s), rel=1e-9, abs=1e-15), f"{name} step {s}"


@pytest.mark.parametrize("name", SCHEDULERS)
def test_lr_lambda_equals_the_scheduler_factor(name):
    lrs = _lrs(name)
    for s in STEPS:
        assert LR0 * lr_lambda(name, s, W, T, lr_init=LR0) == pytest.approx(lrs[s], rel=1e-12, abs=1e-18)


def test_warmup_is_linear_from_zero():
    assert lr_lambda("linear", 0, W, T) == 0.0
    assert lr_lambda("linear", 5, W, T) == pytest.approx(0.5)
    assert lr_lambda("linear", W, W, T) == pytest.approx(1.0)


def test_cosine_with_one_full_cycle_bottoms_out_halfway_and_ends_at_peak():
    assert lr_lambda("cosine", W + (T - W) // 2, W, T, num_cycles=1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_lambda("cosine", T, W, T, num_cycles=1.0) == pytest.approx(1.0)


def test_num_cycles_zero_means_the_default():
    assert lr_lambda("cosine", 60, W, T, num_cycles=0) == pytest.approx(EXPECTED["cosine"](60))
    assert lr_lambda("cosine_with_restarts", 60, W, T, num_cycles=0) == pytest.approx(
        EXPECTED["cosine_with_restarts"](60))


def test_cosine_with_restarts_restarts_each_cycle():
    # 2 cycles over 100 decay steps: the factor jumps back to 1 at p = 0.5.
    assert lr_lambda("cosine_with_restarts", W + 49, W, T, num_cycles=2) < 0.01
    assert lr_lambda("cosine_with_restarts", W + 50, W, T, num_cycles=2) == pytest.approx(1.0)


def test_polynomial_power_two_and_lr_end():
    s = 60
    expected = ((LR0 - 1e-5) * (1 - _p(s)) ** 2 + 1e-5) / LR0
    assert lr_lambda("polynomial", s, W, T, lr_init=LR0, power=2.0, lr_end=1e-5) == pytest.approx(expected)
    assert _lrs("polynomial", power=2.0, lr_end=1e-5)[T] == pytest.approx(1e-5)


def test_polynomial_lr_end_above_initial_lr_is_rejected():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-6)
    with pytest.raises(ValueError, match="lr_end=0.001"):
        get_scheduler("polynomial", opt, W, T, lr_end=1e-3)


def test_unknown_name_error_names_value_and_choices():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR0)
    with pytest.raises(ValueError, match=r"'cosinus'.*linear, cosine, cosine_with_restarts"):
        get_scheduler("cosinus", opt, W, T)


def test_unknown_keyword_is_rejected():
    with pytest.raises(ValueError, match="'cycles'"):
        lr_lambda("cosine", 3, W, T, cycles=2)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_training_shorter_than_warmup_stays_finite_and_non_negative(name):
    for total in (0, 3, 10):
        for s in range(0, 15):
            f = lr_lambda(name, s, 10, total, lr_init=LR0)
            assert math.isfinite(f) and 0.0 <= f <= 1.0, (name, total, s, f)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_steps_past_the_end_do_not_climb_back(name):
    end = lr_lambda(name, T, W, T, lr_init=LR0)
    assert lr_lambda(name, T + 30, W, T, lr_init=LR0) == pytest.approx(end)


def test_the_phase_optimizer_is_adamw_fused_on_the_cpu_and_steps_like_the_per_parameter_loop():
    from core.config import TrainingConfig
    from core.schedulers import make_optimizer_and_scheduler

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    twin.load_state_dict(model.state_dict())
    t = TrainingConfig()
    fused, _ = make_optimizer_and_scheduler(model, t, 1e-2, 10, torch.device("cpu"))
    assert fused.param_groups[0]["fused"] is True  # one kernel, not a Python loop over ~200 tensors
    loop = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=t.weight_decay, foreach=False)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    for _ in range(5):
        for net, opt in ((model, fused), (twin, loop)):
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the same AdamW, rounded in another order
