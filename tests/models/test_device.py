"""Device and precision: the CPU's prediction precision is measured, not assumed."""
from __future__ import annotations

import pytest
import torch

from bids_amyloid.models import device as device_mod
from bids_amyloid.models.device import prediction_precision, probe_cpu_matmul

CPU = torch.device("cpu")


def test_probe_times_both_precisions():
    timings = probe_cpu_matmul(repeats=1)
    assert set(timings) == {"float32_s", "bf16_s"} and all(0 < t < 10 for t in timings.values())


@pytest.mark.parametrize(("float32_s", "bf16_s", "expected"), [
    (0.010, 0.002, "bf16"),     # AMX-like: the matmul 5x faster in bf16
    (0.010, 0.020, "float32"),  # AVX512-BF16 without AMX: bf16 slower (148 vs 308 GFLOP/s, measured)
    (0.010, 0.008, "float32"),  # a small gain on the matmul is lost on the rest of the pass
])
def test_auto_takes_the_faster_precision(monkeypatch, float32_s, bf16_s, expected):
    monkeypatch.setattr(device_mod, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(device_mod, "probe_cpu_matmul", lambda: {"float32_s": float32_s, "bf16_s": bf16_s})
    chosen, how = prediction_precision(CPU, "auto")
    assert chosen == expected
    assert how["ProbeSpeedup"] == pytest.approx(float32_s / bf16_s, rel=1e-3) and how["Setting"] == "auto"


def test_no_native_bf16_means_float32_without_a_probe(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(device_mod, "probe_cpu_matmul", lambda: pytest.fail("probe run without native bf16"))
    assert prediction_precision(CPU, "auto")[0] == "float32"


def test_explicit_settings_and_cuda(monkeypatch, caplog):
    assert prediction_precision(CPU, "float32") == ("float32", {"Setting": "float32", "Rule": "as asked (--cpu-precision)"})
    monkeypatch.setattr(device_mod, "cpu_has_bf16", lambda: False)
    assert prediction_precision(CPU, "bf16")[0] == "bf16"
    assert "emulated" in caplog.text
    assert prediction_precision(torch.device("cuda"), "float32")[0] == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        prediction_precision(CPU, "fp16")



def test_freed_memory_is_returned_where_glibc_is():
    from bids_amyloid.models.device import _malloc_trim, return_freed_memory

    return_freed_memory(torch.device("cpu"))
    return_freed_memory(torch.device("cuda"))  # a no-op without touching CUDA
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
