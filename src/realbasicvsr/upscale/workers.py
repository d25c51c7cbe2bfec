"""Who does what when several processes share a job: torchrun ranks, Slurm array tasks, or one plain process.

torchrun (`torchrun --nproc-per-node N [--nnodes M ...] -m realbasicvsr upscale ...`) sets RANK / WORLD_SIZE /
LOCAL_RANK; a Slurm job array sets SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT; both together (torchrun inside each
array task) multiply. Workers need no collective operations: segments are taken under file locks and finished
segments are files (`realbasicvsr.upscale.workspace`). Under torchrun the one exchange is at the start: rank 0 makes
the plan (one decode of the input) while the others wait at a gloo barrier, then read it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from realbasicvsr.errors import UserError
from realbasicvsr.upscale.config import UpscaleConfig

T = TypeVar("T")
# A barrier waits while rank 0 decodes the whole input to plan it: minutes for a feature film, so no short timeout.
PLAN_TIMEOUT = datetime.timedelta(hours=12)


def worker_share(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(rank, world) of this process among the workers sharing a library: torchrun's RANK/WORLD_SIZE, a Slurm job
    array's task (SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN, in steps of SLURM_ARRAY_TASK_STEP, of
    SLURM_ARRAY_TASK_COUNT), both (torchrun inside each array task: array tasks x processes), or (0, 1)."""
    env = os.environ if environ is None else environ
    rank, world = 0, 1
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        task = _env_int(env, "SLURM_ARRAY_TASK_ID")
        first, step = _env_int(env, "SLURM_ARRAY_TASK_MIN", 0), max(_env_int(env, "SLURM_ARRAY_TASK_STEP", 1), 1)
        rank, world = (task - first) // step, _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        _check_share(rank, world, "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")
    if "RANK" in env or "WORLD_SIZE" in env:
        if "RANK" not in env or "WORLD_SIZE" not in env:
            given, missing = ("RANK", "WORLD_SIZE") if "RANK" in env else ("WORLD_SIZE", "RANK")
            raise UserError(f"{given} is set but {missing} is not; set both (torchrun does) or neither")
        local_rank, local_world = _env_int(env, "RANK"), _env_int(env, "WORLD_SIZE")
        _check_share(local_rank, local_world, "RANK", "WORLD_SIZE")
        rank, world = rank * local_world + local_rank, world * local_world
    return rank, world


def _env_int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    if name not in env and default is not None:
        return default
    try:
        return int(env[name])
    except ValueError:
        raise UserError(f"environment variable {name}={env[name]!r} is not an integer; fix or unset it") from None


def _check_share(rank: int, world: int, rank_name: str, world_name: str) -> None:
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"{rank_name} gives worker {rank} of {world} ({world_name}); it must be in 0..{world_name}-1")


def worker_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """'cuda' means this worker's own GPU (torchrun's LOCAL_RANK) when several processes share a machine."""
    env = os.environ if environ is None else environ
    if device != "cuda" or "LOCAL_RANK" not in env:
        return device
    import torch

    local = _env_int(env, "LOCAL_RANK")
    return f"cuda:{local}" if 0 <= local < torch.cuda.device_count() else device


def in_slurm_array(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env


def under_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True in a process that torchrun started (it sets TORCHELASTIC_RUN_ID, and MASTER_ADDR for the rendezvous)."""
    env = os.environ if environ is None else environ
    return "TORCHELASTIC_RUN_ID" in env and "MASTER_ADDR" in env and "WORLD_SIZE" in env


def restarted_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True when torchrun restarted the workers after a failure (`--max-restarts`): the run then resumes itself."""
    env = os.environ if environ is None else environ
    return int(env.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def plan_once(make: Callable[[], T], load: Callable[[], T], *, collective: bool = True) -> T:
    """`make()` on torchrun's rank 0 while the other ranks wait, then `load()` on them; `make()` everywhere else
    (one process, Slurm array tasks, whose work folder lets the first writer win, or `collective` False: a
    process that works alone although torchrun started it)."""
    if not collective or not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return make()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=PLAN_TIMEOUT)
    rank = dist.get_rank()
    result = None
    planned = [True]
    if rank == 0:
        try:
            result = make()
        except BaseException:
            planned = [False]
            dist.broadcast_object_list(planned, src=0)  # release the others: they stop with one line
            dist.destroy_process_group()
            raise
    dist.broadcast_object_list(planned, src=0)
    dist.destroy_process_group()  # the one exchange is done: the rest is files and locks
    if not planned[0]:
        raise UserError("rank 0 could not plan this run (its message says why); fix that and start the job again")
    return result if rank == 0 else load()


def cpu_threads_per_worker(environ: Mapping[str, str] | None = None) -> int | None:
    """Threads for a CPU worker: this machine's cores shared among the workers on it (torchrun's
    LOCAL_WORLD_SIZE); None for a single process (torch's default). torchrun itself sets OMP_NUM_THREADS=1."""
    env = os.environ if environ is None else environ
    local_world = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local_world <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // local_world)


def worker_options(options: UpscaleConfig) -> UpscaleConfig:
    """`options` for this worker: "auto" or "cuda" mean the worker's own GPU under torchrun (cuda:LOCAL_RANK)."""
    if options.device not in ("auto", "cuda") or "LOCAL_RANK" not in os.environ:
        return options
    import torch

    if not torch.cuda.is_available():
        return options
    return replace(options, device=worker_device("cuda"))
