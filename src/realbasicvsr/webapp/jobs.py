"""The jobs of an output folder: one small JSON per job in `FOLDER/jobs/`, a worker process per running job.

A job is a full `upscale_video` run of one input into `FOLDER/<name>_x4.<ext>` with the page's `Settings`. It
runs in its own process (`python -m realbasicvsr.webapp.worker JOB.json`), so the page stays responsive and a
closed browser tab does not stop it. While a worker lives it alone writes the job's JSON (state, frames, frames/s,
ETA, from `upscale_video`'s progress callback); the app only reads it, and writes it only when no worker is on it.

Cancel sends the worker SIGTERM: it stops as the command does on SIGTERM (partial files removed, finished
segments kept in `OUTPUT.parts/`), and Resume starts a worker with `resume=True` on the same output, which
continues from those segments (the library refuses a resume of another input, other settings or weights).
A worker that died without a word (kill -9, a reboot) shows as "interrupted", and can be resumed the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import write_text_atomic
from realbasicvsr.upscale.workspace import work_folder_of
from realbasicvsr.webapp.settings import Settings

JOBS = "jobs"
ACTIVE = ("starting", "planning", "running")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm")


@dataclass(frozen=True)
class Job:
    """One job as its JSON says (`state`: starting, planning, running, done, failed, cancelled, interrupted)."""

    id: str
    input: str
    output: str
    settings: dict[str, Any]
    created: float
    state: str = "starting"
    done: int = 0
    total: int | None = None
    fps: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    summary: str = ""
    pid: int | None = None
    attempts: int = 1
    updated: float = field(default_factory=time.time)

    @property
    def percent(self) -> float:
        if self.state == "done":
            return 100.0
        return 100.0 * self.done / self.total if self.total else 0.0

    @property
    def resumable(self) -> bool:
        return self.state in ("cancelled", "failed", "interrupted") and work_folder_of(Path(self.output)).is_dir()

    def progress_text(self) -> str:
        """'120 / 400 frames (30 %), 2.31 frames/s, about 2 min left' (the CLI bar's numbers)."""
        if self.state == "planning":
            return f"planning: {self.done} frames read" + (f" of about {self.total}" if self.total else "")
        text = f"{self.done} / {self.total if self.total is not None else '?'} frames ({self.percent:.0f} %)"
        if self.fps:
            text += f", {self.fps:.2f} frames/s"
        if self.state == "running" and self.eta_seconds is not None:
            text += f", about {clock(self.eta_seconds)} left"
        return text


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def read_job(path: Path) -> Job:
    data = json.loads(path.read_text(encoding="utf-8"))
    known = Job.__dataclass_fields__
    return Job(**{k: v for k, v in data.items() if k in known})


def write_job(path: Path, job: Job) -> None:
    write_text_atomic(path, json.dumps(asdict(job), indent=1) + "\n")


class JobStore:
    """The jobs of `folder` (created): start, cancel, resume, list. Processes started here are reaped here; jobs
    of an earlier app on the same folder are recognised by their process id."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.jobs_dir = self.folder / JOBS
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._processes: dict[str, subprocess.Popen] = {}

    def path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def jobs(self) -> list[Job]:
        """Every job of the folder, newest first, each with its live state."""
        found = []
        for path in self.jobs_dir.glob("*.json"):
            try:
                found.append(self._live(read_job(path)))
            except (OSError, ValueError, TypeError):
                continue  # a JSON being replaced right now, or not ours: the next refresh reads it
        return sorted(found, key=lambda j: j.created, reverse=True)

    def get(self, job_id: str) -> Job:
        path = self.path(job_id)
        if not job_id or not path.is_file():
            raise UserError(f"there is no job {job_id!r} in {self.jobs_dir}; choose one of the list")
        return self._live(read_job(path))

    def start(self, input_path: str | Path, settings: Settings) -> Job:
        """A new job of `input_path` with `settings`, its worker started. The settings and the input are checked
        first (a bad value is refused here, in the page); what needs the weights is checked by the worker."""
        from realbasicvsr.media.read import probe

        settings.configs()
        info = probe(input_path)
        if info.kind != "video":
            raise UserError(f"{info.path} is not a video; the web app upscales videos", option="input")
        job = Job(
            id=time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2),
            input=str(Path(input_path).resolve()),
            output=str(self._free_output(Path(input_path), settings)),
            settings=settings.to_dict(),
            created=time.time(),
        )
        write_job(self.path(job.id), job)
        self._spawn(job.id, resume=False)
        return job

    def resume(self, job_id: str, input_path: str | Path | None = None) -> Job:
        """Continue a cancelled, failed or interrupted job from its finished segments. `input_path` stands in for
        a recorded input that is gone (an upload of an earlier session); the library checks it is the same file."""
        job = self.get(job_id)
        if job.state in ACTIVE:
            raise UserError(f"job {job_id} is still {job.state}; wait for it or cancel it first")
        if not job.resumable:
            raise UserError(f"job {job_id} has no finished segments to resume from; start a new job instead")
        source = job.input
        if not Path(source).exists():
            if input_path is None:
                raise UserError(f"the input of job {job_id} ({source}) is gone; choose the same video again")
            source = str(Path(input_path).resolve())
        job = replace(job, input=source, state="starting", message="", attempts=job.attempts + 1, pid=None,
                      updated=time.time())  # fmt: skip
        write_job(self.path(job_id), job)
        self._spawn(job_id, resume=True)
        return job

    def cancel(self, job_id: str) -> str:
        """Stop a running job (SIGTERM); its worker keeps the finished segments for Resume."""
        job = self.get(job_id)
        process = self._processes.get(job_id)
        if job.state not in ACTIVE:
            return f"job {job_id} is not running ({job.state})"
        if process is not None and process.poll() is None:
            process.terminate()
        elif job.pid is not None and _is_worker(job.pid, job_id):
            os.kill(job.pid, signal.SIGTERM)
        return f"cancelling job {job_id}: its finished segments are kept, and Resume continues from them"

    def stop_all(self, timeout: float = 20.0) -> None:
        """Cancel the workers this app started (when the app stops) and wait for them to exit."""
        running = [p for p in self._processes.values() if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, job_id: str, resume: bool) -> None:
        command = [sys.executable, "-m", "realbasicvsr.webapp.worker", str(self.path(job_id))]
        log = (self.jobs_dir / f"{job_id}.log").open("ab")
        with log:  # the worker's warnings and, for a bug, its traceback
            self._processes[job_id] = subprocess.Popen(
                [*command, "--resume"] if resume else command,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def _live(self, job: Job) -> Job:
        """The job with "interrupted" for an active state whose worker is gone."""
        if job.state not in ACTIVE:
            return job
        process = self._processes.get(job.id)
        # poll() reaps an exited child of ours, so that its pid is not taken for alive
        alive = process.poll() is None if process is not None else job.pid is not None and _is_worker(job.pid, job.id)
        if alive:
            return job
        if job.state == "starting" and process is None and time.time() - job.updated < 10:
            return job  # a resume of another app on this folder, whose worker has not written its pid yet
        return replace(job, state="interrupted", message="the worker stopped without finishing; Resume continues")

    def _free_output(self, source: Path, settings: Settings) -> Path:
        """`FOLDER/<stem>_x4.<ext>` (the size or scale in the name), numbered when that name, its work folder or
        another job already has it: a job never replaces a file."""
        if settings.out_size is not None:
            tag = f"{settings.out_size[0]}x{settings.out_size[1]}"
        else:
            tag = f"x{settings.outscale:g}" if settings.outscale is not None else "x4"
        if settings.container:
            suffix = "." + settings.container
        else:
            suffix = source.suffix.lower() if source.suffix.lower() in VIDEO_SUFFIXES else ".mkv"
        taken = {Path(j.output).name for j in self.jobs()}
        for number in range(1, 10_000):
            name = f"{source.stem}_{tag}{'' if number == 1 else f'-{number}'}{suffix}"
            target = self.folder / name
            if name not in taken and not target.exists() and not work_folder_of(target).exists():
                return target
        raise UserError(f"{self.folder} holds 9999 outputs of {source.name} already; choose another output folder")


def _is_worker(pid: int, job_id: str) -> bool:
    """Whether process `pid` is alive and is the worker of `job_id` (a reused pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not our worker
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return job_id in cmdline.read_text(errors="replace")
        except OSError:
            return False
    return True  # no /proc (macOS): the pid alone
