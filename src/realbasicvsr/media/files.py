"""Writing files safely: every file the project writes goes through here.

A file (or a folder of frames) is written under a unique temporary name beside its target, flushed to disk, then
renamed over the target in one step, so a reader sees either the old file or the complete new one: never half a
file after a crash, kill -9 or full disk. The temporary name carries the process id and a random token, so two
processes writing the same target never write into each other's file. `commit(..., replace=False)` refuses to
replace a target that exists (one of two concurrent writers wins, the other gets FileExistsError); with the default
the last rename wins. On an error the temporary file is removed and the target is left as it was. Temporary files of
processes that died (kill -9, power cut) are removed by `remove_orphans` on the next run writing into that folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import sys
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


def commit(tmp: Path, target: Path, *, replace: bool = True) -> None:
    """Make a finished temporary file or folder durable and rename it to `target` (atomic on one file system).

    With `replace=False` an existing `target` (file, folder, link) is never replaced: FileExistsError is raised
    and `tmp` is left for the caller to remove. With `replace=True` a file target is replaced in one step; a folder
    target must not exist (os.replace cannot replace a non-empty folder): the caller decides whether an existing one
    may go, and removes it first.
    """
    fsync_path(tmp)
    if replace:
        os.replace(tmp, target)
    else:
        rename_noreplace(tmp, target)
    _fsync_dir(target.parent)


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, failing with FileExistsError if `dst` exists, atomically where the system can.

    Linux: renameat2(RENAME_NOREPLACE). Elsewhere (or a file system without it): a file is hard-linked to `dst`
    (which fails if it exists) and then unlinked; a folder is renamed after checking `dst` is absent (a rename
    onto a non-empty folder fails anyway, so only an empty folder made in that instant could be replaced).
    """
    if _renameat2_noreplace(src, dst):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    if Path(src).is_dir():
        os.rename(src, dst)
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (e.g. FAT, some network mounts): the checked rename above is all we have
        os.rename(src, dst)
        return
    os.unlink(src)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """True when renameat2(RENAME_NOREPLACE) did the rename; False when it is not available here. Raises
    FileExistsError (or another OSError) when it refused."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a file system without the flag
        return False
    raise OSError(code, os.strerror(code), str(dst))  # EEXIST becomes FileExistsError


@functools.cache
def _renameat2():  # a ctypes function, or None where there is none
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def commit_replacing(tmp: Path, target: Path) -> None:
    """`commit`, first removing an existing `target` that a rename cannot replace (a folder, or a file where a
    folder goes). A file over a file is replaced in one step. The caller has decided that the old target may go."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif tmp.is_dir() and (target.exists() or target.is_symlink()):
        target.unlink()
    commit(tmp, target)


def human_bytes(nbytes: float) -> str:
    """A byte count for messages, in SI units: '900 bytes', '4.0 kB', '229.7 MB', '1.2 GB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def size_of(path: Path) -> int:
    """Bytes of a file, or of the files directly inside a folder (a folder of frames)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def remove_partial(path: Path) -> None:
    """Remove a temporary file or folder left by a failed write (missing is fine)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# Our temporary names: `temporary_path`'s, and those of earlier versions (`.NAME.partial-PID[.SUFFIX]` from
# upscale, `.NAME.tmp-PID[.png]` from training and prepare), so that the orphans they left are cleaned too.
_OURS = (
    re.compile(rf"\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{{8}}{re.escape(PARTIAL_MARK)}(?P<suffix>(\.[^./]*)?)"),
    re.compile(r"\.(?P<name>.+)\.partial-(?P<pid>\d+)(?P<suffix>(\.[^./]*)?)"),
    re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?P<suffix>(\.png)?)"),
)


def remove_orphans(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files and folders that dead processes left in `folder` (for target `name`, or for any
    target); returns what was removed.

    Only ours go: a name made by `temporary_path` (or an earlier version's) whose process id is not alive on this
    machine. A live writer's file, our own, and anything else are kept.
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:  # missing or unreadable: nothing of ours to clean
        return []
    removed = []
    for entry in entries:
        match = _orphan_match(entry.name, name)
        if match is not None and not _pid_alive(int(match)):
            remove_partial(entry)
            removed.append(entry)
    return removed


def _orphan_match(entry: str, name: str | None) -> str | None:
    """The process id in `entry` when it is one of our temporary names (for target `name` if given), else None."""
    for pattern in _OURS:
        match = pattern.fullmatch(entry)
        if match is None or (name is not None and match["name"] != name):
            continue
        suffix = Path(match["name"]).suffix
        if pattern is _OURS[0] and match["suffix"] != suffix:  # temporary_path keeps the target's suffix exactly
            continue
        return match["pid"]
    return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid() or sys.platform == "win32":
        # 0 / negative address process groups; this very process; Windows' os.kill would terminate the process.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):  # another user's live process, or not a valid id: keep
        return True
    return True


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
