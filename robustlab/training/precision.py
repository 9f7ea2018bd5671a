"""Which precision a training step runs in: bf16 autocast only where the hardware has it.

bf16 autocast is 2-4x faster than fp32 on CPUs with native bf16 instructions (AVX512-BF16 or
AMX) and on CUDA devices that support it, but emulated elsewhere: on a CPU without them a
WRN-10-2 training step was measured about 12x slower in bf16 than in fp32. ``amp: auto`` picks
bf16 where it is native and fp32 otherwise; reported accuracies are fp32 either way.
"""

from __future__ import annotations

from pathlib import Path

import torch

AMP_CHOICES = ("auto", "bf16", "none")
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (empty where it is unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool:
    """True where bf16 arithmetic is native on ``device`` (CUDA: the driver says so; CPU: an
    AVX512-BF16 or AMX flag in ``flags``, read from /proc/cpuinfo by default)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    found = cpu_flags() if flags is None else flags
    return any(flag in found for flag in NATIVE_BF16_CPU_FLAGS)


def resolve_amp(amp: str, device: torch.device, flags: set[str] | None = None) -> str:
    """``bf16`` or ``none``: the precision a training step with setting ``amp`` runs in."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    if amp == "auto":
        return "bf16" if native_bf16(device, flags) else "none"
    return amp
