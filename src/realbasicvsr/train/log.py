"""Run visibility on rank 0: a progress line, metrics.jsonl and (optionally) TensorBoard scalars."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import write_text_atomic


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d{hours:02d}h{minutes:02d}m" if days else f"{hours:d}:{minutes:02d}:{secs:02d}"


class RunLog:
    """Accumulates step and data-wait times between log lines; writes JSON lines to `run_dir/metrics.jsonl`.

    A resumed run replays the steps after its checkpoint, which the interrupted run may have logged already: the
    first record this run writes first drops every earlier record at or after its step, so each step is in the
    file once, from the run that made the checkpointed weights' future.
    """

    def __init__(self, run_dir: Path, total_steps: int, tensorboard: bool, stream: TextIO = sys.stderr) -> None:
        self.total_steps = total_steps
        self.stream = stream
        self.path = Path(run_dir) / "metrics.jsonl"
        self._trimmed = False
        self.jsonl = self.path.open("a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise UserError(
                    "log.tensorboard needs the tensorboard package: pip install 'realbasicvsr[train]'"
                ) from error
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.window_start = now
        self.window_steps = 0
        self.window_wait = 0.0

    def add_step(self, data_wait: float) -> None:
        self.window_steps += 1
        self.window_wait += data_wait

    def log(self, step: int, losses: dict[str, float], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Print the progress line for `step` (1-based count of finished steps) and append a JSON record."""
        now = time.perf_counter()
        elapsed = max(now - self.window_start, 1e-9)
        rate = self.window_steps / elapsed
        wait_share = self.window_wait / elapsed
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        loss_text = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
        self.stream.write(
            f"step {step}/{self.total_steps}  {rate:.3g} it/s  ETA {format_duration(eta)}  {loss_text}  "
            f"data wait {100 * wait_share:.0f}%\n"
        )
        self.stream.flush()
        record = {"step": step, "time": time.time(), "it_per_s": rate, "data_wait": wait_share, **losses}
        self.write(record | (extra or {}))
        self._reset(now)
        return record

    def write(self, record: dict[str, Any]) -> None:
        if not self._trimmed:
            self._trimmed = True
            self._drop_from(int(record["step"]))
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def _drop_from(self, step: int) -> None:
        """Rewrite metrics.jsonl without the records at or after `step`, and without a last line cut by a kill
        (only when it holds any of these)."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if (line_step := _step_of(line)) is not None and line_step < step]
        if len(kept) == len(lines):
            return
        self.jsonl.close()
        write_text_atomic(self.path, "".join(kept))
        self.jsonl = self.path.open("a", encoding="utf-8")

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


def _step_of(line: str) -> int | None:
    """The step of one metrics.jsonl line; None for a line that is not a whole record (cut by a kill)."""
    if not line.endswith("\n"):
        return None
    try:
        step = json.loads(line).get("step")
    except (json.JSONDecodeError, AttributeError):
        return None
    return step if isinstance(step, int) else None
