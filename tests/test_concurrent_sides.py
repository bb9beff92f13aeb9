"""core.concurrent_sides: a card's two sides through their networks at once on a CPU, each on half the
threads; the same maths as one side after the other, the same random numbers, and a resume still bitwise."""
import threading

import pytest
import torch

from core.concurrent_sides import SideThreads, both_sides, side_threads_for
from core.losses import grading_loss
from core.model import DualBranchGrader
from tests.test_resume import STEPS_PER_EPOCH, smoke_args
from tests.trainer_runs import assert_tensors_equal, load_weights, run_trainer

CROPS_PER_SIDE = 8  # 4 corners + 1 per edge


@pytest.fixture
def threads():
    """Leave the process's intra-op thread count as it was found."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sides():
    s = SideThreads(2)
    yield s
    s.close()


def _model() -> DualBranchGrader:
    """The local preset's kind of model, small: crops, both detail channels, measured centering, criterion
    heads, and dropout high enough that a different random draw would show."""
    torch.manual_seed(0)
    return DualBranchGrader("resnet18", dropout=0.5, criteria=True, crop_size=16, detail=True, edge_crops=1,
                            measure_centering=True, detail_kind="lines_creases").train()


def _batch(b: int = 2):
    g = torch.Generator().manual_seed(1)
    inputs = {side: torch.rand(b, 5, 48, 32, generator=g) for side in ("back", "front")}
    inputs |= {f"{side}_crops": torch.rand(b * CROPS_PER_SIDE, 3, 16, 16, generator=g) for side in ("back", "front")}
    targets = {"grade": torch.tensor([2, 7]), "edge": torch.rand(b, generator=g), "edge_mask": torch.ones(b),
               "centering": torch.rand(b, 4, generator=g), "center_mask": torch.ones(b),
               "subgrades": torch.tensor([[8, 2, 7, 9], [7, 8, 9, 7]])}  # class indices 0-9
    return inputs, targets


def _train_step(side_threads: SideThreads | None):
    """Loss, gradients and BatchNorm statistics of one bf16 training step, dropout drawn from seed 7."""
    model = _model()
    model.side_threads = side_threads
    inputs, targets = _batch()
    torch.manual_seed(7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs)
    loss = grading_loss(out, targets, 0.7, 0.5, 2.0, 1.0)[0]
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}, dict(model.named_buffers())


def test_both_sides_at_once_are_bitwise_the_serial_step_on_one_thread(threads, sides):
    # Each side runs on one of the two threads; one side after the other on one thread does the very same
    # ops in the same order, dropout included: equal to the bit, gradients and BatchNorm statistics too.
    torch.set_num_threads(1)
    serial = _train_step(None)
    torch.set_num_threads(2)
    at_once = _train_step(sides)
    assert torch.equal(serial[0], at_once[0])
    assert_tensors_equal(serial[1], at_once[1], "grad")
    assert_tensors_equal(serial[2], at_once[2], "buffers")
    assert all(g is not None and g.abs().sum() > 0 for n, g in at_once[1].items() if "backbone.conv1" in n)


def test_the_front_runs_on_the_worker_thread_each_side_on_half_the_threads(threads):
    torch.set_num_threads(5)
    sides, seen = SideThreads(5), {}
    model = _model()
    model.side_threads = sides
    for name in ("back", "front"):
        getattr(model, name).backbone.register_forward_hook(
            lambda *_, name=name: seen.__setitem__(name, (threading.get_ident(), torch.get_num_threads())))
    inputs, _ = _batch()
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        sides.close()
    assert seen["back"] == (threading.get_ident(), 3)
    assert seen["front"][0] != threading.get_ident() and seen["front"][1] == 2
    assert torch.get_num_threads() == 5  # the caller's count is given back


def test_phase_one_back_only_runs_on_the_callers_thread(sides):
    model, seen = _model(), []
    model.side_threads = sides
    model.back.backbone.register_forward_hook(lambda *_: seen.append(threading.get_ident()))
    inputs, _ = _batch()
    with torch.no_grad():
        out = model(inputs["back"], back_crops=inputs["back_crops"])
    assert seen == [threading.get_ident()] and out["center_valid"].tolist() == [False, False, True, True]


def test_the_worker_runs_under_the_callers_grad_mode_and_autocast(sides):
    def state():
        return torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    assert sides.both(state, state) == (state(), state())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        back, front = sides.both(state, state)
    assert back == front == (False, True, torch.bfloat16)


def test_an_error_on_either_side_is_raised_once_both_have_finished(threads, sides):
    torch.set_num_threads(2)
    finished = threading.Event()

    def slow_front():
        threading.Event().wait(0.05)
        finished.set()

    def failing_back():
        raise ValueError("back side failed")

    with pytest.raises(ValueError, match="back side failed"):
        sides.both(failing_back, slow_front)
    assert finished.is_set() and torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="front side failed"):
        sides.both(lambda: 1, lambda: (_ for _ in ()).throw(RuntimeError("front side failed")))


def test_without_grad_no_graph_is_kept(sides):
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        a, b = both_sides(sides, lambda: x * 2, lambda: x * 3)
    assert not a.requires_grad and not b.requires_grad
    a, b = both_sides(sides, lambda: x * 2, lambda: x * 3)
    (a.sum() + 10 * b.sum()).backward()
    assert x.grad.tolist() == [32.0, 32.0]


def test_side_threads_apply_only_to_one_cpu_process_with_threads_to_split(threads):
    torch.set_num_threads(2)
    cpu = torch.device("cpu")
    made = side_threads_for(True, cpu, 1, False)
    try:
        assert made is not None and (made.caller_threads, made.worker_threads) == (1, 1)
    finally:
        made.close()
    assert side_threads_for(False, cpu, 1, False) is None  # model.concurrent_sides = false
    assert side_threads_for(True, torch.device("cuda"), 1, False) is None
    assert side_threads_for(True, cpu, 2, False) is None  # DDP
    assert side_threads_for(True, cpu, 1, True) is None  # torch.compile
    torch.set_num_threads(1)
    assert side_threads_for(True, cpu, 1, False) is None
    with pytest.raises(ValueError, match="2 or more threads"):
        SideThreads(1)


@pytest.mark.slow
def test_trainer_runs_the_sides_at_once_and_a_resume_is_still_bitwise(smoke_splits, tmp_path):
    # Two intra-op threads, so phase 2 runs the sides at once; interrupted in phase 2's first epoch and
    # resumed, the run ends on the very weights of the run that was never interrupted.
    two = {"OMP_NUM_THREADS": "2"}
    reference = run_trainer(smoke_args(smoke_splits, tmp_path / "ref"), tmp_path / "logs", env=two)
    assert reference.code == 0, reference.stderr[-2000:]
    (start,) = reference.events("start")
    assert start["concurrent_sides"] is True
    out = tmp_path / "run"
    stopped = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs",
                          signal_at_step=STEPS_PER_EPOCH + 2, env=two)
    assert not stopped.events("done") and stopped.events("preempted"), stopped.stderr[-2000:]
    final = run_trainer(smoke_args(smoke_splits, out, "--resume", "auto"), tmp_path / "logs", env=two)
    assert final.code == 0, final.stderr[-2000:]
    assert_tensors_equal(load_weights(tmp_path / "ref" / "checkpoints" / "last.pth")["model"],
                         load_weights(out / "checkpoints" / "last.pth")["model"], "model")
    assert final.done["test_qwk"] == reference.done["test_qwk"]
