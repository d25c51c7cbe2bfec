"""torchrun/DDP plumbing: the process group from torchrun's environment, one process per GPU (or CPU process)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from realbasicvsr.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DEFAULT_TIMEOUT_S = 1800.0  # `run.dist_timeout`'s default
_STORE: dist.Store | None = None  # the rendezvous store, kept for the per-step check-ins (`mark_step`)
HEARTBEAT_S = 1.0  # how often each rank says "alive" on the store; a stopped or dead one falls silent
_HEARTBEAT_STOP = threading.Event()


def _key(name: str) -> str:
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted job must not see old check-ins
    return f"realbasicvsr/{name}/{attempt}/"


def check_device(device: str | None) -> None:
    """Refuse a device training cannot use, before anything starts (an unknown name used to mean the CPU)."""
    if device is None or device == "cpu":
        return
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise UserError(f"unknown training device {device!r}; use cpu, cuda or cuda:N", option="device")
    if not torch.cuda.is_available():
        raise UserError(
            f"device {device!r} was asked for but this PyTorch has no usable CUDA GPU; use cpu", option="device"
        )


def setup(device: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Read RANK/LOCAL_RANK/WORLD_SIZE (set by torchrun, also across nodes) and start the process group.

    NCCL on CUDA, gloo on CPU. Without torchrun's variables this is a single process and nothing is started.
    `timeout` (seconds, `run.dist_timeout`) bounds the wait for the other processes, at the start and in every
    collective: a rank that never joins makes the others stop with a `UserError` naming it, instead of a hang.
    """
    global _STORE
    check_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        store, rank, world = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))
        _wait_for_ranks(store, rank, world, timeout)
        _STORE = store
        _start_heartbeat(store, rank)
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            store=store,
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=timeout),
            device_id=target if use_cuda else None,
        )
    return DistInfo(rank, local_rank, world, target)


def _wait_for_ranks(store: dist.Store, rank: int, world: int, timeout: float) -> None:
    """Check in on the rendezvous store and wait until every rank has; after `timeout` seconds raise a
    `UserError` that names the ranks that did not (torch's own timeout says only that some are missing)."""
    key = _key("joined")
    store.set(key + str(rank), "1")
    deadline = time.monotonic() + timeout
    while True:
        missing = [r for r in range(world) if not store.check([key + str(r)])]
        if not missing:
            return
        if time.monotonic() > deadline:
            ranks = ", ".join(map(str, missing))
            raise UserError(
                f"rank {rank}: process rank(s) {ranks} of {world} did not join within {timeout:g} s "
                "(stopped, crashed or unreachable); check those processes or raise run.dist_timeout"
            )
        time.sleep(min(0.2, timeout / 10))


def _start_heartbeat(store: dist.Store, rank: int) -> None:
    """A daemon thread that writes this rank's wall time to the store every `HEARTBEAT_S`: a SIGSTOPped or dead
    process stops writing, so a rank whose collective timed out can name it (`stall_error`)."""
    key = _key("alive") + str(rank)
    _HEARTBEAT_STOP.clear()

    def beat() -> None:
        while not _HEARTBEAT_STOP.is_set():
            try:
                store.set(key, repr(time.time()))
            except RuntimeError:  # the store is gone (the job is ending): nothing left to report to
                return
            _HEARTBEAT_STOP.wait(HEARTBEAT_S)

    threading.Thread(target=beat, name="realbasicvsr-heartbeat", daemon=True).start()


def mark_step(info: DistInfo, step: int) -> None:
    """Record on the rendezvous store that this rank has started `step` (one small message per step), so that a
    rank whose collective times out can tell which ranks stalled (`stall_error`)."""
    if info.distributed and _STORE is not None:
        _STORE.set(_key("step") + str(info.rank), str(step))


def is_timeout(error: RuntimeError, info: DistInfo) -> bool:
    """Whether `error` is a collective that ran past `run.dist_timeout` (gloo and NCCL say "Timed out"/"timeout")."""
    text = str(error).lower()
    return info.distributed and ("timed out" in text or "watchdog" in text)


def stall_error(info: DistInfo, step: int, timeout: float) -> UserError:
    """The one-line error for a collective of `step` that timed out, naming the ranks that fell silent (no
    heartbeat for 3 beats: stopped or dead) or, failing that, those that never reached `step` (alive but stuck)."""
    silent, behind = [], []
    if _STORE is not None:
        _STORE.set_timeout(timedelta(seconds=5))
        now = time.time()
        for rank in range(info.world_size):
            alive, at = _key("alive") + str(rank), _key("step") + str(rank)
            seen = float(_STORE.get(alive)) if _STORE.check([alive]) else 0.0
            reached = int(_STORE.get(at)) if _STORE.check([at]) else 0
            if now - seen > 3 * HEARTBEAT_S:
                silent.append(f"{rank} (silent for {now - seen:.0f} s)")
            elif reached < step:
                behind.append(f"{rank} (at step {reached})")
    stalled = silent or behind
    who = f"process rank(s) {', '.join(stalled)}" if stalled else "another process"
    return UserError(
        f"rank {info.rank}: step {step} waited over {timeout:g} s for {who} of {info.world_size}: stopped, "
        "crashed or unreachable; check it, or raise run.dist_timeout; resume with --resume auto"
    )


def teardown(info: DistInfo) -> None:
    _HEARTBEAT_STOP.set()
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalars over all ranks (for logging); every rank must call it with the same keys."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return {k: float(v) / info.world_size for k, v in zip(keys, tensor.tolist())}


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, on every rank."""
    if not info.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())
