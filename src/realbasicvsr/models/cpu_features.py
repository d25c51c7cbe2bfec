"""What this CPU computes natively, detected at run time: it decides what `dtype="auto"` means on a CPU.

bf16 autocast pays off only where the CPU has bf16 arithmetic: AMX (Sapphire Rapids and later Xeons) or
AVX512-BF16 (Cooper Lake, Zen 4). Elsewhere oneDNN emulates it and a bf16 run is slower than fp32 (measured on an
AVX2-only AMD EPYC VM: about 3x slower), so "auto" stays fp32 there.

PyTorch answers through `torch.cpu._is_amx_tile_supported` and `_is_avx512_bf16_supported`, which also check that
the operating system enabled the AMX tiles. They are private, so where a PyTorch lacks them the kernel's
/proc/cpuinfo flags answer instead. `REALBASICVSR_CPU_BF16=1` (or 0) overrides the detection: for a CPU that
detection gets wrong, and for running the tests as a native-bf16 machine would.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from realbasicvsr.errors import UserError, brief

OVERRIDE_VARIABLE = "REALBASICVSR_CPU_BF16"


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's name and the instruction sets that matter for speed here."""

    model: str
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool
    forced: bool | None = None  # the value of REALBASICVSR_CPU_BF16 when it was set

    @property
    def native_bf16(self) -> bool:
        """Whether bf16 convolutions run natively (AMX or AVX512-BF16), or the override says so."""
        if self.forced is not None:
            return self.forced
        return self.amx or self.avx512_bf16

    def isa(self) -> str:
        """The instruction sets found, e.g. "AVX2, AVX-512, AVX512-BF16, AMX"."""
        names = [("AVX2", self.avx2), ("AVX-512", self.avx512), ("AVX512-BF16", self.avx512_bf16), ("AMX", self.amx)]
        found = [name for name, present in names if present]
        text = ", ".join(found) if found else "no AVX2"
        if self.forced is not None:
            text += f"; native bf16 forced {'on' if self.forced else 'off'} by {OVERRIDE_VARIABLE}"
        return text

    def line(self) -> str:
        """One line naming the CPU and its features, for benchmark headers and logs."""
        return f"{self.model} ({self.isa()})"


def _cpuinfo_field(name: str) -> str | None:
    """The first `name : value` line of /proc/cpuinfo (None off Linux or without it)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def _cpuinfo_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


def _model_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def _torch_says(name: str, fallback: bool) -> bool:
    probe = getattr(torch.cpu, name, None)
    return bool(probe()) if callable(probe) else fallback


def _override() -> bool | None:
    raw = os.environ.get(OVERRIDE_VARIABLE)
    value = (raw or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:
        raise UserError(
            f"{OVERRIDE_VARIABLE}={brief(raw)} is not a switch; set it to 1 (native bf16) or 0 (none), or unset it "
            "to detect the CPU"
        )
    return None


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's `CpuFeatures` (detected once per process)."""
    flags = _cpuinfo_flags()
    return CpuFeatures(
        model=_model_name(),
        avx2=_torch_says("_is_avx2_supported", "avx2" in flags),
        avx512=_torch_says("_is_avx512_supported", "avx512f" in flags),
        avx512_bf16=_torch_says("_is_avx512_bf16_supported", "avx512_bf16" in flags),
        amx=_torch_says("_is_amx_tile_supported", "amx_bf16" in flags and "amx_tile" in flags),
        forced=_override(),
    )


def cpu_native_bf16() -> bool:
    """Whether "auto" should pick bf16 autocast on this CPU."""
    return cpu_features().native_bf16
