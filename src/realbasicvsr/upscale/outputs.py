"""Where an upscale writes: the kind of output a name means, the checks before any work, and the final rename that
never replaces what a user made (without overwrite), even when it appeared during the run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import IMAGE_EXTENSIONS
from realbasicvsr.media.files import commit, commit_replacing
from realbasicvsr.media.read import MediaKind, VideoInfo
from realbasicvsr.media.write import CONTAINER_FORMATS, container_format
from realbasicvsr.upscale.workspace import work_folder_of


def output_kind(info: VideoInfo, output: Path) -> MediaKind:
    """'video' for a container extension, 'image' for an image extension, else 'folder' of PNG frames."""
    suffix = output.suffix.lower()
    if suffix in CONTAINER_FORMATS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        if info.kind != "image":
            raise UserError(
                f"{output} is an image name but the input has several frames; give a folder (no extension) "
                "or a video name (.mp4, .mkv, .mov, .webm)"
            )
        return "image"
    if suffix and not output.is_dir():
        container_format(output)  # raises the 'unknown extension' error
    return "folder"


def check_paths(info: VideoInfo, output: Path, overwrite: bool) -> None:
    """Refuse to touch the input or an existing output, and check the output folder is there and writable."""
    sources = [info.path, *info.files]
    for source in sources:
        if output.resolve() == source.resolve():
            raise UserError(f"the output {output} is the input; choose another output name")
    if info.kind == "folder" and info.path.resolve() in output.resolve().parents:
        raise UserError(f"the output {output} is inside the input folder; write it somewhere else")
    if output.is_dir():
        entries = list(output.iterdir())
        if entries and not overwrite:
            raise UserError(
                f"folder {output} is not empty; use overwrite=True to replace its frames, or choose another",
                option="overwrite",
            )
        if not _only_png_frames(output):
            # --overwrite replaces the whole folder: never delete anything that is not a frame we could have written.
            raise UserError(f"folder {output} holds files other than PNG frames; choose a new or empty folder")
    elif output.exists() and not overwrite:
        raise UserError(
            f"{output} already exists; use overwrite=True to replace it, or choose another name", option="overwrite"
        )
    parent = output.resolve().parent
    if not parent.is_dir():
        raise UserError(f"the output folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to the output folder {parent}; choose a writable location")


def commit_output(tmp: Path, output: Path, overwrite: bool, existed_empty: bool) -> None:
    """Rename the finished output into place. Without `overwrite` nothing that appeared at `output` during the run
    is replaced (a concurrent run on the same target, a user's file or folder): one run wins, the other fails here.
    With it, the target is replaced, but a folder only while it holds nothing but PNG frames."""
    try:
        if overwrite:
            if output.is_dir() and not output.is_symlink():
                _check_frames_only(output)
            commit_replacing(tmp, output)
            return
        if existed_empty:
            output.rmdir()  # the empty folder check_paths accepted; fails if something was put in it since
        commit(tmp, output, replace=False)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
        raise _appeared(output) from error
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _appeared(output) from error
        raise


def _appeared(output: Path) -> UserError:
    return UserError(
        f"{output} appeared while upscaling (another run or program wrote it); it was kept, and this run's frames "
        f"are kept in {work_folder_of(output)}: free the name and resume to write them without recomputing, or use "
        "overwrite=True to replace it",
        option="overwrite",
    )


def _only_png_frames(folder: Path) -> bool:
    """True when `folder` holds nothing but PNG files: the only folder an overwrite may delete."""
    return all(p.is_file() and p.suffix.lower() == ".png" for p in folder.iterdir())


def _check_frames_only(folder: Path) -> None:
    """Refuse to delete a folder that holds anything but PNG frames (checked again at the end: it may have changed)."""
    if not _only_png_frames(folder):
        raise UserError(f"folder {folder} now holds files other than PNG frames; it was kept and this result discarded")
