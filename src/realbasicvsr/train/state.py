"""Checkpoints of the full training state, written atomically, the newest K kept; `--resume auto` reads them."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import atomic_output, remove_orphans
from realbasicvsr.weights.release import TORCH_LOAD_ERRORS, refused_as_unsafe, unsafe_file_error

CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / CHECKPOINT_DIR
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, numpy's global generator, Python's `random`)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's state holds an ndarray, which weights_only loading refuses: stored as a tensor.
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` to checkpoints/step_XXXXXXXX.pt via a temporary file and a rename, then prune old ones."""
    path = checkpoint_path(Path(run_dir), step)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)  # temporary checkpoints of runs that were killed in a write (ours, dead PIDs)
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(Path(run_dir))[:-keep]:
        old.unlink(missing_ok=True)
    return path


class UnreadableCheckpoint(UserError):
    """A checkpoint file that is truncated, empty or corrupted (e.g. by a power cut during its write)."""


# What torch.load raises for a truncated or foreign file (KeyError: a missing memo entry).


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint's state, loaded without running any pickled code (`weights_only`).

    Raises `UnreadableCheckpoint` for a truncated/corrupt file and `UserError` for a file holding Python objects
    (refused: loading it could run code) or one that is not a training checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:
        if refused_as_unsafe(error):
            raise unsafe_file_error(path) from None
        raise UnreadableCheckpoint(
            f"checkpoint {path} could not be read ({_first_line(error)}); it may be truncated or corrupted: "
            "delete it to resume from the one before"
        ) from error
    if not isinstance(state, dict) or "generator" not in state or "step" not in state:
        raise UserError(f"{path} is not a realbasicvsr training checkpoint")
    return state


def load_latest_checkpoint(run_dir: Path, warn: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of `run_dir` that loads, and its state (None when there are none).

    A truncated or empty newest checkpoint (a power cut during its write) is skipped with a warning naming it, and
    the one before is used. A file refused as unsafe, or a folder where none loads, is an error.
    """
    found = list_checkpoints(Path(run_dir))
    skipped: list[str] = []
    for path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except UnreadableCheckpoint as error:
            warn(f"warning: skipping {path}: {error}")
            skipped.append(path.name)
    if found:
        raise UserError(
            f"none of the {len(found)} checkpoints in {Path(run_dir) / CHECKPOINT_DIR} can be read "
            f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}); start a new run folder, or pass "
            "resume=PATH of a good checkpoint",
            option="resume",
        )
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:200] + "..."


def resolve_checkpoint(path_or_run: str | Path) -> Path:
    """A checkpoint file, or a run folder (its newest checkpoint)."""
    path = Path(path_or_run)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise UserError(f"{path} has no checkpoints (expected {path / CHECKPOINT_DIR}/step_*.pt)")
        return found
    if not path.is_file():
        raise UserError(f"{path} is neither a run folder nor a checkpoint file")
    return path
