"""training.precision on the device at hand: auto picks bf16 only on CPUs with native bf16, fp16 without
CUDA falls back to fp32 with one warning (the optimisations guide's behaviour)."""
import pytest
import torch

from core import device as precision
from core.config import load_preset
from core.device import cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_on_a_cpu_is_bf16_only_where_bf16_is_native(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == (expected, False)


def test_explicit_choices_are_kept_on_a_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("bf16", CPU) == (torch.bfloat16, False)
    assert resolve_precision("fp32", CPU) == (None, False)


def test_fp16_without_cuda_falls_back_to_fp32_with_one_warning():
    warnings = []
    assert resolve_precision("fp16", CPU, warn=warnings.append) == (None, False)
    assert warnings == ["training.precision = 'fp16' needs a CUDA GPU; this run has cpu only: training in fp32 "
                        "instead"]


@pytest.mark.parametrize("flags, expected", [("fpu sse avx2 avx512f avx512_bf16", True),
                                             ("fpu sse amx_bf16 amx_tile", True), ("fpu sse avx2 avx512f", False)])
def test_cpuinfo_flags_decide_where_torch_has_no_probe(tmp_path, monkeypatch, flags, expected):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n")
    assert cpu_has_native_bf16(info) is expected


def test_torchs_own_probe_answers_when_present(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_native_bf16()


def test_the_local_preset_lets_auto_decide():
    assert load_preset("local").training.precision == "auto"
