"""`train(config, data_dir, run_dir)`: set up, resume, iterate, log, validate, checkpoint — top to bottom."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import torch
from torch.utils.data import DataLoader

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.files import remove_orphans, write_text_atomic
from realbasicvsr.train import dist
from realbasicvsr.train.config import TrainConfig, config_from_dict, dump_yaml
from realbasicvsr.train.data import Clip, StepSampler, TrainDataset, scan_clips
from realbasicvsr.train.log import RunLog
from realbasicvsr.train.setup import build_trainer, restore, training_state, wrap_ddp
from realbasicvsr.train.state import (
    latest_checkpoint,
    load_checkpoint,
    load_latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from realbasicvsr.train.step import Trainer, train_step
from realbasicvsr.train.validate import load_val_clips, save_strip, validate


@dataclass(frozen=True)
class TrainResult:
    step: int  # completed steps
    losses: dict[str, float]  # of the last step
    interrupted: bool  # stopped by Ctrl-C / SIGTERM (a checkpoint was saved)
    checkpoint: Path | None  # the last checkpoint written
    generator: torch.nn.Module  # the trained generator (unwrapped from DDP)
    generator_ema: torch.nn.Module  # its EMA: the weights to validate and export
    stop_signal: int | None = None  # the signal that stopped it (SIGINT, SIGTERM, SIGHUP) when interrupted


class _StopRequest:
    """SIGINT/SIGTERM/SIGHUP set a flag that the loop reads between steps, so the saved state is always consistent.

    A second Ctrl-C interrupts at once (default handler restored).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopRequest:
        # SIGHUP: the terminal closed (ssh dropped); no SIGHUP on Windows.
        for sig in (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])):
            # signal.signal raises ValueError outside the main thread: then there is no graceful stop.
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        self.signum = self.signum or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(
    config: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    resume: str | None = None,
    device: str | None = None,
    stream: TextIO = sys.stderr,
) -> TrainResult:
    """Train until `max_steps` (default `config.run.steps`) steps are done; returns where it stopped.

    `resume`: None (the run folder must not hold checkpoints yet), "auto" (continue from the newest checkpoint
    in `run_dir`, or start fresh when there is none) or a checkpoint path. Started by torchrun, every process
    calls this and DDP is used; rank 0 alone writes logs, samples and checkpoints.
    """
    info = dist.setup(device, timeout=config.run.dist_timeout)
    try:
        return _train(config, Path(data_dir), Path(run_dir), max_steps, resume, info, stream)
    finally:
        dist.teardown(info)


def _train(
    config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    max_steps: int | None,
    resume: str | None,
    info: dist.DistInfo,
    stream: TextIO,
) -> TrainResult:
    if max_steps is not None:
        config = replace(config, run=replace(config.run, steps=max_steps))
    total = config.run.steps
    checkpoint, saved = _find_resume_checkpoint(run_dir, resume, stream if info.is_main else None)
    clips = scan_clips(data_dir, config.data.num_frames, config.data.gt_size)
    val_clips = load_val_clips(config.data) if info.is_main else []
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Temporary files of runs killed while writing (ours, dead PIDs); save_checkpoint cleans checkpoints/.
        remove_orphans(run_dir)
        write_text_atomic(run_dir / "config.yaml", dump_yaml(config))

    trainer = build_trainer(config, info)
    step, bad_streak = _resume(trainer, saved, info, stream)
    wrap_ddp(trainer, info)

    sampler = StepSampler(len(clips), config.data.batch_size, config.run.seed, step, total, info.rank, info.world_size)
    loader = _loader(clips, config, sampler, info)
    log = RunLog(run_dir, total, config.log.tensorboard, stream) if info.is_main else None
    if log is not None:
        for line in _start_messages(config, checkpoint, step, len(clips), sampler.local_batch, info, run_dir):
            log.message(line)
        log.message(trainer.precision_note + _memory_note(config))

    losses: dict[str, float] = {}
    last_saved: Path | None = None
    interrupted = False
    stop_signal: int | None = None
    trainer.generator.train()
    batches = iter(loader)
    try:
        with _StopRequest() as stop:
            while step < total:
                wait_start = time.perf_counter()
                batch = {k: v.to(info.device, non_blocking=True) for k, v in next(batches).items()}
                data_wait = time.perf_counter() - wait_start
                dist.mark_step(info, step + 1)
                try:
                    losses, ok = train_step(trainer, batch, info.device, info.distributed)
                except torch.cuda.OutOfMemoryError as error:  # a config problem: say which knobs fix it
                    message = _oom_message(config, trainer, sampler.local_batch, step + 1, last_saved)
                    raise UserError(message, option="resume") from error
                except RuntimeError as error:  # a collective that timed out: name the ranks that stalled
                    if dist.is_timeout(error, info):
                        raise dist.stall_error(info, step + 1, config.run.dist_timeout) from error
                    raise
                step += 1
                bad_streak = 0 if ok else bad_streak + 1
                if not ok:
                    _nan_warning(log, step, losses, bad_streak, config.run.max_bad_steps, last_saved)
                if log is not None:
                    log.add_step(data_wait)
                if step % config.log.every == 0 or step == total:
                    logged = dist.mean_over_ranks(losses, info)
                    if log is not None:
                        log.log(step, logged)
                if config.data.val_dir and (step % config.log.val_every == 0 or step == total):
                    if log is not None:
                        _validate(trainer.generator_ema, val_clips, info.device, run_dir, step, log)
                    dist.barrier(info)  # the other ranks wait here, not inside a collective with a timeout
                if step % config.checkpoint.every == 0 or step == total:
                    last_saved = _save(trainer, run_dir, info, step, bad_streak)
                if dist.broadcast_flag(stop.requested, info):
                    interrupted = True
                    stop_signal = stop.signum  # None on a DDP rank that was told to stop by rank 0
                    if step % config.checkpoint.every and step != total:
                        last_saved = _save(trainer, run_dir, info, step, bad_streak)
                    if log is not None:
                        log.message(f"interrupted: saved step {step} to {last_saved}; continue with resume=auto")
                    break
    finally:
        if log is not None:
            log.close()
    return TrainResult(
        step, losses, interrupted, last_saved, trainer.generator_module, trainer.generator_ema, stop_signal
    )


def _loader(clips: list[Clip], config: TrainConfig, sampler: StepSampler, info: dist.DistInfo) -> DataLoader:
    return DataLoader(
        TrainDataset(clips, config.data, config.run.seed, info.rank),
        batch_size=sampler.local_batch,
        sampler=sampler,
        num_workers=capped_workers(config.data.workers, sys.stderr if info.is_main else None),
        pin_memory=info.device.type == "cuda",
        worker_init_fn=_init_worker,
    )


def capped_workers(requested: int, stream: TextIO | None) -> int:
    """`requested` loader processes, at most the CPU count (more only add memory and context switches; 1000 would
    start 1000 processes); a cut is reported on `stream`."""
    cpus = os.cpu_count() or 1
    if requested <= cpus:
        return requested
    if stream is not None:
        stream.write(f"warning: data.workers={requested} is more than the {cpus} CPUs here; using {cpus}\n")
    return cpus


def _resume(trainer: Trainer, state: dict[str, Any] | None, info: dist.DistInfo, stream: TextIO) -> tuple[int, int]:
    """Restore a checkpoint's `state` into `trainer` (before DDP wrapping), or seed a fresh run; returns the (step,
    NaN streak) to continue from. The data stream needs no restoring: it is a function of (seed, step)."""
    config = trainer.config
    if state is None:
        torch.manual_seed(config.run.seed * 1000 + info.rank)
        return 0, 0
    restore(trainer, state)
    step, bad_streak = int(state["step"]), int(state.get("bad_streak", 0))
    changed = _changed_keys(_as_current(state["config"]), config.to_dict())
    if changed and info.is_main:
        stream.write(f"warning: the config differs from the checkpoint's in {', '.join(changed)}\n")
    if info.is_main:
        set_rng_state(state["rng"])
    else:  # only rank 0's RNG state is stored; no training op draws from it (data has its own seeds)
        torch.manual_seed(config.run.seed * 1000 + info.rank + step)
    return step, bad_streak


def _as_current(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config as this version writes it, so that old spellings (data.degradation: realworld) are not
    reported as changes; as saved when this version cannot read it (then its differences are all listed)."""
    try:
        return config_from_dict(saved).to_dict()
    except ConfigError:
        return saved


def _save(trainer: Trainer, run_dir: Path, info: dist.DistInfo, step: int, bad_streak: int) -> Path | None:
    """Checkpoint the full training state: rank 0 writes it, every rank waits until it is written."""
    saved = None
    if info.is_main:
        state = training_state(trainer) | {"step": step, "bad_streak": bad_streak, "rng": rng_state()}
        saved = save_checkpoint(run_dir, step, state, trainer.config.checkpoint.keep)
    dist.barrier(info)
    return saved


def _start_messages(
    config: TrainConfig,
    checkpoint: Path | None,
    step: int,
    num_clips: int,
    local_batch: int,
    info: dist.DistInfo,
    run_dir: Path,
) -> list[str]:
    """The log lines that open a run: what is trained where, and a warning for a GAN stage without init weights."""
    where = f"resumed from {checkpoint} at step {step}" if checkpoint else "started"
    lines = [
        f"training {where}: {num_clips} clips, {info.world_size} process(es) on {info.device.type}, "
        f"batch {config.data.batch_size} ({local_batch} per process), {config.run.steps} steps -> {run_dir}"
    ]
    if config.adversarial and not config.run.init_from and checkpoint is None:
        lines.append("warning: stage 2 normally starts from stage-1 weights (set run.init_from=RUN_DIR)")
    return lines


def _memory_note(config: TrainConfig) -> str:
    return "; activation checkpointing on" if config.run.checkpoint_activations else ""


def _validate(model: torch.nn.Module, clips: list, device: torch.device, run_dir: Path, step: int, log: RunLog) -> None:
    metrics, strip = validate(model, clips, device)
    save_strip(strip, run_dir / "samples" / f"step_{step:08d}.png")
    log.write({"step": step, "time": time.time(), **metrics})
    log.message(f"validation at step {step}: PSNR {metrics['val_psnr']:.2f} dB, SSIM {metrics['val_ssim']:.4f}")


def _oom_message(config: TrainConfig, trainer, local_batch: int, step: int, last_saved: Path | None) -> str:
    dtype = trainer.autocast_dtype
    precision = "fp32" if dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
    data = config.data
    frames = data.num_frames * (2 if data.mirror else 1)
    advice = "lower data.batch_size (the total over all GPUs) or data.gt_size, or train on more GPUs"
    if precision == "fp32":
        advice += ", or use run.precision=bf16 (about half the activation memory)"
    return (
        f"out of GPU memory at step {step}: {local_batch} sequences per GPU of {frames} frames, GT {data.gt_size}x"
        f"{data.gt_size}, {precision}{' + GAN' if config.adversarial else ''}. To fit, {advice}; then continue "
        f"with resume=auto (last checkpoint: {last_saved or 'none'})"
    )


def _nan_warning(
    log: RunLog | None, step: int, losses: dict[str, float], streak: int, limit: int, last_saved: Path | None
) -> None:
    text = ", ".join(f"{k}={v}" for k, v in losses.items())
    if streak >= limit:
        raise UserError(
            f"{streak} steps in a row had NaN/Inf losses (last at step {step}: {text}); the run stopped. "
            f"Last checkpoint: {last_saved or 'none'}. Lower optim.lr_g / optim.lr_d, set optim.grad_clip, "
            "use run.precision=fp32, or check the data, then continue with resume=auto",
            option="resume",
        )
    if log is not None:
        log.message(f"warning: step {step} skipped, non-finite loss ({text}); {streak} of {limit} allowed in a row")


def _changed_keys(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (run.steps aside: max_steps changes it on purpose)."""
    keys = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b and f"{prefix}{key}" != "run.steps":
            keys.append(f"{prefix}{key}")
    return keys


def _find_resume_checkpoint(
    run_dir: Path, resume: str | None, stream: TextIO | None
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint to resume from and its state ((None, None) for a fresh run). "auto" takes the newest one that
    loads, warning on `stream` (rank 0's) about each newer one skipped as truncated or corrupt."""
    existing = latest_checkpoint(run_dir)
    if resume is None:
        if existing is not None:
            raise UserError(
                f"{run_dir} already holds checkpoints (newest {existing.name}); set resume=auto to continue that "
                "run, or choose a new run folder",
                option="resume",
            )
        return None, None
    if resume == "auto":
        found = load_latest_checkpoint(run_dir, lambda line: stream.write(line + "\n") if stream else None)
        return found if found is not None else (None, None)
    path = Path(resume)
    if not path.is_file():
        raise UserError(
            f"resume={resume}: no such checkpoint; use 'auto' or the path of a step_XXXXXXXX.pt file", option="resume"
        )
    return path, load_checkpoint(path)


def _init_worker(worker_id: int) -> None:
    # Each DataLoader worker is one process: one thread each, or workers x threads oversubscribe the CPU.
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group; the main process saves and stops, so workers must keep serving
    # (a worker that died on SIGINT would make a pending batch fetch fail before the checkpoint is written).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM/SIGHUP handlers (the loop's stop flag, the CLI's) were inherited by the fork. A worker
    # that the DataLoader (or multiprocessing at exit) terminates leaves quietly: raising can leave it hanging on
    # its queue, and a death by signal is reported by torch as a worker failure (a traceback at exit).
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _worker_stop)


def _worker_stop(signum: int, frame: object) -> None:
    os._exit(0)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
