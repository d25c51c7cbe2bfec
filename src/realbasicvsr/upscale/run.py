"""`upscale_video`: probe -> decode -> windows through the model -> encode, with safe output handling.

The output is written under a temporary name next to the target and renamed only when every frame is written, so
a failure or Ctrl-C leaves no half-written file. Encoding runs in a background thread so that it overlaps with
the model (on this 2-core CPU the model dominates; on a GPU the encoder would otherwise stall it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import torch

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import IMAGE_EXTENSIONS
from realbasicvsr.media.files import commit, commit_replacing, remove_orphans, remove_partial, temporary_path
from realbasicvsr.media.read import MediaKind, VideoInfo, probe, read_frames
from realbasicvsr.media.write import (
    CONTAINER_FORMATS,
    WRITE_ERRORS,
    EncodeConfig,
    FrameWriter,
    ImageFolderWriter,
    ImageWriter,
    VideoWriter,
    check_codec,
    container_format,
)
from realbasicvsr.models.realbasicvsr import RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig, output_size, resolve_config
from realbasicvsr.upscale.windows import Upscaler

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class UpscaleResult:
    """What a finished run produced."""

    output: Path
    kind: MediaKind
    frames: int
    seconds: float
    width: int
    height: int
    output_bytes: int
    fp32_fallbacks: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Which weights made the output: the name or path given, the default choice's note (`default_weights`), or
    # "the model given" when the caller passed a loaded model.
    weights: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        return (
            f"upscaled {self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} fps) -> {self.output} "
            f"({self.width}x{self.height}, {_human_bytes(self.output_bytes)})"
        )


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


def upscale_video(
    input_path: str | Path,
    output_path: str | Path,
    *,
    model: RealBasicVSR | None = None,
    weights: str | Path | None = None,
    options: UpscaleConfig | None = None,
    encode: EncodeConfig | None = None,
    overwrite: bool = False,
    fps: Fraction | None = None,
    copy_streams: bool = True,
    progress: ProgressCallback | None = None,
    cleaning_threshold: float = 255.0,
) -> UpscaleResult:
    """Upscale a video, image folder or image to `output_path` (video, PNG folder or image by its extension).

    Give `model` or `weights` (a path or known name for `realbasicvsr.weights.load_generator`); with neither, the
    default weights run (`realbasicvsr.weights.default_weights`: the cached official release, else the bundled
    compact model), and `UpscaleResult.weights` says which. `options.device` / `options.dtype` "auto" are resolved
    here (`resolve_config`). `fps` sets the frame rate of a video made from images (default 25). Audio/subtitle
    streams are copied when `copy_streams`.
    Input and output are checked before the weights are loaded, so mistakes are reported fast.
    """
    options = resolve_config(options or UpscaleConfig())
    encode = encode or EncodeConfig()
    output = Path(output_path)
    info = probe(input_path)
    kind = output_kind(info, output)
    check_paths(info, output, overwrite)
    existed_empty = output.is_dir() and not output.is_symlink()  # an empty folder (check_paths): ours to fill
    remove_orphans(output.parent, output.name)  # partial outputs of earlier runs on this target that were killed
    if kind == "video":
        check_codec(encode, container_format(output), output, info.bit_depth)
    if model is None:
        model, used = _load_model(weights, cleaning_threshold)
    else:
        used = "the model given"
    width, height = output_size(info.width, info.height, options)
    subsampled = encode.resolved_pix_fmt(info.bit_depth).startswith(("yuv420", "yuv422", "nv12"))
    if kind == "video" and subsampled and options.out_size is None and (width % 2 or height % 2):
        # 4:2:0 needs even sizes; round a scale-derived size down to even (as ffmpeg's scale=-2 does).
        width, height = width - width % 2, height - height % 2
        options = replace(options, out_size=(width, height))
    tmp = temporary_path(output)
    start = time.perf_counter()
    upscaler = Upscaler(model, options)
    writer = _make_writer(kind, tmp, output, info, encode, width, height, fps, copy_streams)
    try:
        with _cpu_threads(1 if upscaler.device.type != "cpu" else None):
            written = _run(upscaler, info, writer, progress)
    except BaseException:
        writer.abort()
        remove_partial(tmp)
        raise
    try:
        _commit_output(tmp, output, overwrite, existed_empty)
    except BaseException:
        remove_partial(tmp)
        raise
    seconds = time.perf_counter() - start
    return UpscaleResult(
        output, kind, written, seconds, width, height, _size_of(output), upscaler.fallbacks, weights=used
    )


def _commit_output(tmp: Path, output: Path, overwrite: bool, existed_empty: bool) -> None:
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
        f"{output} appeared while upscaling (another run or program wrote it); it was kept and this result was "
        "discarded; use overwrite=True to replace it, or choose another name",
        option="overwrite",
    )


def _only_png_frames(folder: Path) -> bool:
    """True when `folder` holds nothing but PNG files: the only folder an overwrite may delete."""
    return all(p.is_file() and p.suffix.lower() == ".png" for p in folder.iterdir())


def _check_frames_only(folder: Path) -> None:
    """Refuse to delete a folder that holds anything but PNG frames (checked again at the end: it may have changed)."""
    if not _only_png_frames(folder):
        raise UserError(f"folder {folder} now holds files other than PNG frames; it was kept and this result discarded")


def _load_model(weights: str | Path | None, cleaning_threshold: float) -> tuple[RealBasicVSR, str]:
    """The generator of `weights` (or of the default weights) and a line saying which weights those are."""
    from realbasicvsr.weights import default_weights, load_generator

    if weights is None:
        choice = default_weights()
        return load_generator(choice.path, cleaning_threshold=cleaning_threshold), choice.note
    return load_generator(weights, cleaning_threshold=cleaning_threshold), str(weights)


@contextlib.contextmanager
def _cpu_threads(count: int | None) -> Iterator[None]:
    """Limit torch's CPU threads while a GPU runs the model. Measured on an H200 machine (16 vCPUs,
    benchmarks/bench_gpu.py pipeline): 34 -> 53 frames/s at 320x180 -> 720p, because idle intra-op threads
    kept spinning on the cores the encoder threads need. None leaves the setting alone (CPU inference)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _make_writer(
    kind: MediaKind,
    tmp: Path,
    output: Path,
    info: VideoInfo,
    encode: EncodeConfig,
    width: int,
    height: int,
    fps: Fraction | None,
    copy_streams: bool,
) -> FrameWriter:
    """The writer of `kind` that writes to the temporary path `tmp` (the final `output` names the format)."""
    if kind == "folder":
        return ImageFolderWriter(tmp)
    if kind == "image":
        return ImageWriter(tmp, output.suffix)
    rate = info.fps if info.kind == "video" and info.fps else (fps or Fraction(25))
    try:
        return VideoWriter(
            tmp,
            fmt=container_format(output),
            width=width,
            height=height,
            source=info,
            settings=encode,
            fps=Fraction(rate).limit_denominator(1_000_000),
            copy_streams=copy_streams,
        )
    except BaseException:
        remove_partial(tmp)
        raise


def _run(upscaler: Upscaler, info: VideoInfo, writer: FrameWriter, progress: ProgressCallback | None) -> int:
    """Feed frames through the model and into a writer thread; returns the number of frames written."""
    frames_in = 0

    def counted():
        nonlocal frames_in
        for frame in read_frames(info):
            frames_in += 1
            yield frame

    pending: queue.Queue = queue.Queue(maxsize=8)
    failure: list[BaseException] = []
    finish, abort = object(), object()

    def encode_loop() -> None:
        item = None
        try:
            while (item := pending.get()) not in (finish, abort):
                writer.write(item)
            if item is finish:
                writer.close()
        except BaseException as error:  # handed to the main thread, which re-raises it
            if isinstance(error, WRITE_ERRORS):
                cause = error
                error = UserError(f"writing the output failed: {error}; check the disk space and the encoder options")
                error.__cause__ = cause  # raised in another thread: keep the OSError (the CLI reports a full disk)
            failure.append(error)
            while item not in (finish, abort):  # keep consuming so the producer never blocks
                item = pending.get()

    thread = threading.Thread(target=encode_loop, name="realbasicvsr-encoder", daemon=True)
    thread.start()
    done = 0
    completed = False
    try:
        for frame in upscaler.upscale(counted()):
            if failure:
                break
            pending.put(frame)
            done += 1
            if progress is not None:
                # An estimate for containers without a frame count (e.g. MKV); the bar grows if it is short.
                progress(done, None if info.num_frames is None else max(info.num_frames, done))
        completed = not failure
    finally:
        pending.put(finish if completed else abort)
        thread.join()
    if failure:
        raise failure[0]
    if writer.frames_written != frames_in:  # pragma: no cover - a bug guard: never ship a short output silently
        raise RuntimeError(f"wrote {writer.frames_written} frames for {frames_in} input frames")
    return writer.frames_written


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
