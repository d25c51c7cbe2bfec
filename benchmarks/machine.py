"""The machine a benchmark ran on, named in its header (timings are only comparable within one machine)."""

from __future__ import annotations

import os

import torch

from realbasicvsr.models.cpu_features import cpu_features


def cpu_model() -> str:
    """The CPU's model name and the instruction sets that decide speed here, e.g. "AMD EPYC (AVX2)" or
    "Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, AVX512-BF16, AMX)"."""
    return cpu_features().line()


def machine_line() -> str:
    """One header line: CPU and ISA, logical CPUs, torch, and whether "auto" picks native bf16 here."""
    features = cpu_features()
    bf16 = "native bf16: yes (dtype auto = bf16)" if features.native_bf16 else "native bf16: no (dtype auto = fp32)"
    return f"CPU: {features.line()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}; {bf16}"
