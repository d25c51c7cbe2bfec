"""Run visibility on rank 0: a progress line, metrics.jsonl and (optionally) TensorBoard scalars."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from realbasicvsr.errors import UserError


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d{hours:02d}h{minutes:02d}m" if days else f"{hours:d}:{minutes:02d}:{secs:02d}"


class RunLog:
    """Accumulates step and data-wait times between log lines; writes JSON lines to `run_dir/metrics.jsonl`."""

    def __init__(self, run_dir: Path, total_steps: int, tensorboard: bool, stream: TextIO = sys.stderr) -> None:
        self.total_steps = total_steps
        self.stream = stream
        self.jsonl = (Path(run_dir) / "metrics.jsonl").open("a", encoding="utf-8")
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
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
