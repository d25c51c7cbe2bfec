"""The worker process of a web-app job: `python -m realbasicvsr.webapp.worker JOB.json [--resume]`.

It runs `upscale_video` with the job's settings and writes what its progress callbacks say (the planning pass,
then frames done of the total, as the CLI's bar is told) into the job's JSON, at most a few times a second, with
frames/s and the ETA counted as the CLI's bar counts them (frames done before a resume are not in the rate).
SIGTERM (Cancel, or the app stopping) ends it as the command ends: partial files removed, finished segments kept.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.webapp.jobs import Job, read_job, write_job
from realbasicvsr.webapp.settings import Settings, page_error

UPDATE_SECONDS = 0.5


class Cancelled(BaseException):
    """SIGTERM arrived: raised in the main thread like KeyboardInterrupt, so `upscale_video` cleans up."""


class Reporter:
    """Writes a job's progress into its JSON: `planning` and `progress` are `upscale_video`'s two callbacks."""

    def __init__(self, path: Path, job: Job) -> None:
        self.path = path
        self.job = job
        self.first: tuple[int, float] | None = None  # (frames done, time) at the first progress call
        self.written = 0.0

    def update(self, force: bool = False, **changes) -> None:
        self.job = replace(self.job, updated=time.time(), **changes)
        if force or time.monotonic() - self.written >= UPDATE_SECONDS:
            write_job(self.path, self.job)
            self.written = time.monotonic()

    def planning(self, done: int, total: int | None) -> None:
        self.update(state="planning", done=done, total=total)

    def progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (done, now)
            self.update(force=True, state="running", done=done, total=total, fps=None, eta_seconds=None)
            return
        rate = (done - self.first[0]) / (now - self.first[1]) if now > self.first[1] else 0.0
        eta = (total - done) / rate if rate > 0 and total is not None else None
        self.update(force=total is not None and done >= total, state="running", done=done, total=total,
                    fps=rate or None, eta_seconds=eta)  # fmt: skip


def _raise_cancelled(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM stops at once
    raise Cancelled


def run_job(path: Path, resume: bool) -> int:
    """Run the job of `path`; its end state goes into the JSON. Returns the process's exit status."""
    from realbasicvsr.upscale.run import upscale_video
    from realbasicvsr.upscale.workspace import work_folder_of

    reporter = Reporter(path, read_job(path))
    reporter.update(force=True, state="planning", pid=os.getpid(), done=0, total=None, message="")
    job = reporter.job
    try:
        settings = Settings.from_dict(job.settings)
        options, encode, segments = settings.configs()
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)  # into the job's log, as the CLI shows them
            result = upscale_video(
                job.input, job.output, weights=settings.weights, options=options, encode=encode,
                segments=segments, resume=resume, progress=reporter.progress, on_plan=reporter.planning,
            )  # fmt: skip
    except Cancelled:
        work = work_folder_of(Path(job.output))
        kept = len(list(work.glob("*.done.json"))) if work.is_dir() else 0
        note = f"{kept} finished segment(s) kept; Resume continues from them" if kept else "nothing was kept"
        reporter.update(force=True, state="cancelled", message=f"cancelled: {note}")
        return 143
    except UserError as error:
        reporter.update(force=True, state="failed", message=page_error(error))
        return 1
    except BaseException as error:
        reporter.update(force=True, state="failed", message=f"failed: {error} (details in {path.with_suffix('.log')})")
        raise  # the traceback goes to the job's log
    note = "; ".join(result.notes)
    total = reporter.job.total or result.frames
    reporter.update(force=True, state="done", done=total, total=total, summary=result.summary(), message=note)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _raise_cancelled)
    return run_job(Path(argv[0]), "--resume" in argv[1:])


if __name__ == "__main__":
    sys.exit(main())
