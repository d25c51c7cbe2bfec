"""The machine a benchmark ran on, named in its header (timings are only comparable within one machine)."""

from __future__ import annotations

import platform
import subprocess


def cpu_model() -> str:
    """lscpu's "Model name", else what the platform says."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"
