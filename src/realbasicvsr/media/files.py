"""Writing files safely: every file the project writes goes through here.

A file (or a folder of frames) is written under a unique temporary name beside its target, flushed to disk, then
renamed over the target in one step, so a reader sees either the old file or the complete new one: never half a
file after a crash, kill -9 or full disk. The temporary name carries the process id and a random token, so two
processes writing the same target never write into each other's file (the last rename wins, and both results are
complete). On an error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

PARTIAL_MARK = ".partial"


def temporary_path(target: str | Path) -> Path:
    """A unique, hidden name beside `target` that keeps its suffix (so writers that look at it still can):
    `dir/.NAME.PID-TOKEN.partial.SUFFIX`."""
    target = Path(target)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return target.with_name(f".{target.name}.{token}{PARTIAL_MARK}{target.suffix}")


def fsync_path(path: Path) -> None:
    """Flush a file, or every file of a folder (sub-folders included) and the folders themselves, to disk."""
    if path.is_dir():
        for folder, _, names in os.walk(path):
            for name in names:
                if os.path.isfile(os.path.join(folder, name)):
                    _fsync_file(Path(folder, name))
            _fsync_dir(Path(folder))
    else:
        _fsync_file(path)
    _fsync_dir(path if path.is_dir() else path.parent)


def commit(tmp: Path, target: Path) -> None:
    """Make a finished temporary file or folder durable and rename it to `target` (atomic on one file system).

    A folder target must not exist (os.replace cannot replace a non-empty folder): the caller decides whether an
    existing one may go, and removes it first.
    """
    fsync_path(tmp)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def commit_replacing(tmp: Path, target: Path) -> None:
    """`commit`, first removing an existing `target` that a rename cannot replace (a folder, or a file where a
    folder goes). A file over a file is replaced in one step. The caller has decided that the old target may go."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif tmp.is_dir() and (target.exists() or target.is_symlink()):
        target.unlink()
    commit(tmp, target)


def remove_partial(path: Path) -> None:
    """Remove a temporary file or folder left by a failed write (missing is fine)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path for `target`; the caller writes a file or folder there. On success it is committed
    to `target`; on any error (or Ctrl-C) it is removed and the error goes on."""
    target = Path(target)
    tmp = temporary_path(target)
    try:
        yield tmp
    except BaseException:  # cleans up, then re-raises: nothing is swallowed
        remove_partial(tmp)
        raise
    try:
        commit(tmp, target)
    except BaseException:
        remove_partial(tmp)
        raise


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: Literal["w", "wb"] = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open `target` for writing through a temporary file: `with atomic_write(path, "w") as f: f.write(text)`."""
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_output(target) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle
        handle.flush()


def write_bytes_atomic(target: str | Path, data: bytes) -> Path:
    """Write `data` to `target` atomically; returns the target path."""
    with atomic_write(target, "wb") as handle:
        handle.write(data)
    return Path(target)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically; returns the target path."""
    with atomic_write(target, "w") as handle:
        handle.write(text)
    return Path(target)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable. Not every platform can open a folder (Windows cannot): then the rename
    # is as durable as the file system makes it.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (e.g. certain network mounts) refuse fsync on a folder
        pass
    finally:
        os.close(fd)
