"""amp: auto picks bf16 autocast only where bf16 is native (robustlab.training.precision)."""

from __future__ import annotations

import pytest
import torch

from robustlab.training.config import TrainConfig
from robustlab.training.precision import cpu_flags, native_bf16, resolve_amp

CPU = torch.device("cpu")


def test_auto_follows_the_cpu_flags() -> None:
    assert resolve_amp("auto", CPU, flags={"avx2", "avx512f", "avx512_bf16"}) == "bf16"
    assert resolve_amp("auto", CPU, flags={"avx2", "amx_bf16", "amx_tile"}) == "bf16"
    assert resolve_amp("auto", CPU, flags={"avx2", "avx512f"}) == "none"
    assert resolve_amp("auto", CPU, flags=set()) == "none"


def test_explicit_settings_are_kept() -> None:
    assert resolve_amp("bf16", CPU, flags=set()) == "bf16"
    assert resolve_amp("none", CPU, flags={"amx_bf16"}) == "none"


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, none, not 'fp16'"):
        resolve_amp("fp16", CPU)
    with pytest.raises(ValueError, match="amp must be auto, bf16 or none"):
        TrainConfig(amp="fp16")
    assert TrainConfig(amp="auto").amp == "auto"


def test_cpu_flags_read_the_first_flags_line(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n\nflags\t\t: other\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    assert native_bf16(CPU, cpu_flags(info))
