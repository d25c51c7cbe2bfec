"""The work folder of a segmented upscale, `OUTPUT.parts/` beside the output: what makes a run resumable.

It holds the manifest (`manifest.json`, the plan; written once), one finished piece per segment (`00012.mp4`, or a
folder of PNG frames `00012/`), and one marker per finished segment (`00012.done.json`), written only after its
piece is flushed to disk and renamed into place. A segment is finished when its marker names the piece's size, so
a kill -9 at any moment leaves each segment either finished or to be redone; nothing half-written is ever used.
Markers are separate files (no shared file to update), so processes on several machines can finish segments side
by side. A segment is worked on under an exclusive `flock` of its `00012.lock` file: two processes never do the
same segment at once, and a lock dies with its process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import (
    PARTIAL_MARK,
    commit,
    remove_orphans,
    remove_partial,
    size_of,
    temporary_path,
    write_text_atomic,
)
from realbasicvsr.upscale.plan import Plan, Segment, check_same_run

WORK_SUFFIX = ".parts"
MANIFEST = "manifest.json"
# Everything a work folder may hold that is ours to delete at the end: pieces, markers, locks, the manifest.
_OURS = re.compile(r"(\d{5,}(\.done\.json|\.lock|\.[a-z0-9]+)?|stitch\.lock|run\.lock|manifest\.json)")


def work_folder_of(output: Path) -> Path:
    return output.with_name(output.name + WORK_SUFFIX)


class WorkFolder:
    """The work folder of one output; see the module docstring."""

    def __init__(self, output: Path, piece_suffix: str) -> None:
        self.output = output
        self.path = work_folder_of(output)
        self.piece_suffix = piece_suffix  # ".mp4" etc. for video pieces, "" for folders of PNG frames
        self.manifest = self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest.exists()

    def piece(self, segment: Segment) -> Path:
        return self.path / f"{segment.index:05d}{self.piece_suffix}"

    def marker(self, segment: Segment) -> Path:
        return self.path / f"{segment.index:05d}.done.json"

    # ------------------------------------------------------------------ the plan
    def start(self, plan: Plan, *, clean: bool = True) -> Plan:
        """Write the plan as this run's manifest, or, when another process wrote one first, check it is the same
        run and return the saved plan (the first writer wins; it is never replaced)."""
        self.path.mkdir(exist_ok=True)
        tmp = temporary_path(self.manifest)
        tmp.write_text(plan.to_json(), encoding="utf-8")
        try:
            commit(tmp, self.manifest, replace=False)
            return plan
        except FileExistsError:
            remove_partial(tmp)
            return self.resume(plan.identity, clean=clean)
        except BaseException:
            remove_partial(tmp)
            raise

    def resume(self, identity: dict[str, Any] | None = None, *, clean: bool = True) -> Plan:
        """The saved plan; with `identity`, checked to be the same run (input, settings, weights) first. `clean`
        removes temporary files of dead processes (not in a job shared among machines: a process id says nothing
        about another machine's processes)."""
        try:
            saved = Plan.from_json(self.manifest.read_text(encoding="utf-8"), self.manifest)
        except FileNotFoundError as error:
            raise UserError(f"{self.path} has no manifest; use --overwrite to start the run again") from error
        if identity is not None:
            check_same_run(saved.identity, identity, self.manifest)
        if clean:
            remove_orphans(self.path)  # pieces and markers of processes that were killed mid-write
        return saved

    # ------------------------------------------------------------------ segments
    def is_done(self, segment: Segment) -> bool:
        """True when the segment's marker and piece are both there and agree on the piece's size."""
        try:
            marker = json.loads(self.marker(segment).read_text(encoding="utf-8"))
            return marker.get("bytes") == size_of(self.piece(segment)) and marker.get("frames") == segment.frames
        except (OSError, ValueError):
            return False

    def finish(self, segment: Segment, tmp_piece: Path) -> None:
        """Make a written piece durable, rename it into place, then write its marker (in that order)."""
        piece = self.piece(segment)
        if piece.is_dir():  # a folder piece of an earlier, unfinished attempt (no marker): ours to replace
            remove_partial(piece)
        commit(tmp_piece, piece)
        marker = {"segment": segment.index, "frames": segment.frames, "bytes": size_of(piece)}
        write_text_atomic(self.marker(segment), json.dumps(marker) + "\n")

    def done_frames(self, plan: Plan) -> int:
        return sum(s.frames for s in plan.segments if self.is_done(s))

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        """An exclusive lock of `name` in this folder: yields True when taken, False when another process has it
        (with `wait`, waits for it instead)."""
        path = self.path / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    yield False
                    return
                raise
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def in_use(self) -> bool:
        """True while a single run holds this folder (`hold`)."""
        if not self.path.is_dir():
            return False
        with self.lock("run") as taken:
            return not taken

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """The whole folder for this process (a single run): a second run on the same output fails at once with one
        line instead of sharing or undoing the first one's work. Workers of one distributed job do not hold it."""
        self.path.mkdir(exist_ok=True)
        with self.lock("run") as taken:
            if not taken:
                raise self.busy()
            yield

    def busy(self) -> UserError:
        return UserError(
            f"another run is writing {self.output} right now (it holds {self.path}); wait for it to finish, or write "
            "to another name"
        )

    # ------------------------------------------------------------------ cleanup
    def finished_segments(self) -> int:
        """How many segment markers the folder holds (whatever the plan)."""
        if not self.path.is_dir():
            return 0
        return sum(1 for entry in self.path.iterdir() if entry.name.endswith(".done.json"))

    def remove(self, *, keep_lock: bool = False, finished: bool = False) -> None:
        """Delete the folder after a finished run (or on --overwrite): only what is ours; anything else is kept,
        and so is the folder then. `keep_lock` keeps the run lock (and the folder) of the run that holds it.
        `finished` (the output is written, every segment was done) also removes every temporary file left in it:
        whoever wrote one is no longer working on this run, even on another machine."""
        if not self.path.is_dir():
            return
        remove_orphans(self.path)
        for entry in self.path.iterdir():
            ours = _OURS.fullmatch(entry.name) or (finished and PARTIAL_MARK in entry.name and entry.name[0] == ".")
            if ours and not (keep_lock and entry.name == "run.lock"):
                remove_partial(entry)
        if not keep_lock:
            with contextlib.suppress(OSError):
                self.path.rmdir()
