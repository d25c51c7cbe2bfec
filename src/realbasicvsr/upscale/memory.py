"""What memory the process holds and what is free: the readings the memory budget (`upscale.budget`) plans from.

On Linux the numbers come from /proc and the cgroup (a container's limit is what the kernel enforces, often far
below the machine's RAM); elsewhere from `resource` and `os.sysconf`. Every reading is cheap and never raises for a
missing file: a machine without /proc gets the portable fallback.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import torch

_CGROUP = Path("/sys/fs/cgroup")


def resident_bytes() -> int:
    """The process's resident memory now (VmRSS); where /proc is missing, its peak so far."""
    status = _read("/proc/self/status")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return peak_resident_bytes()


def peak_resident_bytes() -> int:
    """The process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def available_bytes() -> int:
    """RAM a new allocation can get without swapping: MemAvailable, capped by the cgroup's limit minus its use."""
    available = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    if available is None:
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        available = pages * os.sysconf("SC_PAGE_SIZE") if pages else 0
    limit = _cgroup_room()
    return available if limit is None else min(available, limit)


def cuda_used_and_free(device: str) -> tuple[int, int]:
    """(bytes this process has allocated on the GPU now, bytes free on it)."""
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return torch.cuda.memory_allocated(torch.device(device)), free


def _cgroup_room() -> int | None:
    """Bytes left under the cgroup's memory limit (v2 memory.max, or v1 limit_in_bytes); None without a limit."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read(_CGROUP / limit_file).strip(), _read(_CGROUP / usage_file).strip()
        if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:  # v1 writes ~2**63 for "no limit"
            return max(0, int(limit) - int(usage))
    return None


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # no /proc or no cgroup here: the caller falls back
        return ""
