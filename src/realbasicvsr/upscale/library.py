"""`upscale_library`: upscale every video of a folder into an output folder, one model for the whole job.

A library is a folder whose visible entries include video files (by extension; sub-folders are not searched).
Its videos are taken in natural order (`media.clips.natural_key`); each output keeps the input's stem, in the
container asked for or else the input's own (when we can write it and the codec fits in it, otherwise .mkv, which
holds any codec and any copied audio or subtitle stream). Because `upscale_video` commits an output by renaming a
finished temporary file, an output that exists is a finished one: it is skipped (unless `overwrite`), so running
the same command again after a stop or a failure does only what is left. One file that fails (a corrupt video, an
odd stream) is recorded and the others go on; a full disk, Ctrl-C or a bad setting stops the whole job.

Several processes can share a library (torchrun, a Slurm job array): each takes the files whose index in the
library's natural order is its rank modulo the number of workers (`worker_share`), so they never write the same
output and need no coordination.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import VIDEO_EXTENSIONS, is_hidden, is_image_file, is_video_file, natural_key
from realbasicvsr.media.read import probe
from realbasicvsr.media.write import EncodeConfig, check_codec, container_format
from realbasicvsr.models.realbasicvsr import RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig, resolve_config
from realbasicvsr.upscale.run import ProgressCallback, UpscaleResult, upscale_video
from realbasicvsr.upscale.workers import worker_device, worker_share

CONTAINERS = ("mp4", "mkv", "mov", "webm")  # what `container` may be
FALLBACK_SUFFIX = ".mkv"  # Matroska stores every codec we encode and any audio/subtitle stream we copy
FileStatus = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class FileResult:
    """What happened to one video of a library. `frames` counts the frames written (for a failed file, those
    upscaled before it failed); `reason` says why a file was skipped or failed."""

    source: Path
    output: Path
    status: FileStatus
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    result: UpscaleResult | None = None
    error: UserError | None = field(default=None, compare=False, repr=False)


# on_file(position, count, source, result): position is 1-based in this worker's `count` files; `result` is None
# as the file starts and its FileResult once it is done (a skipped file or one that cannot be probed gets only that).
FileCallback = Callable[[int, int, Path, "FileResult | None"], None]


@dataclass(frozen=True)
class LibraryResult:
    """What `upscale_library` did with this worker's share of the library (`files`, in natural order)."""

    input_dir: Path
    output_dir: Path
    files: tuple[FileResult, ...]
    library_size: int  # videos in the whole library, all workers together
    rank: int = 0
    world: int = 1
    weights: str = ""

    def with_status(self, status: FileStatus) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == status)

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return self.with_status("failed")

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files if f.status == "ok")

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.files)

    @property
    def fp32_fallbacks(self) -> int:
        return sum(f.result.fp32_fallbacks for f in self.files if f.result is not None)

    def table(self) -> str:
        """A per-file summary: name, output name, frames, seconds and status (with the reason), then totals."""
        rows = [("file", "output", "frames", "seconds", "status")]
        for f in self.files:
            done = f.status != "skipped"
            status = f"{f.status}: {f.reason}" if f.reason else f.status
            frames, seconds = (str(f.frames), f"{f.seconds:.1f}") if done else ("-", "-")
            rows.append((f.source.name, f.output.name, frames, seconds, status))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}  {e}" for a, b, c, d, e in rows
        ]
        counts = ", ".join(f"{len(self.with_status(s))} {s}" for s in ("ok", "skipped", "failed"))
        share = (
            f" (worker {self.rank} of {self.world}: {len(self.files)} of {self.library_size})" if self.world > 1 else ""
        )
        lines.append(f"{len(self.files)} videos{share}: {counts}; {self.frames} frames in {self.seconds:.1f} s")
        return "\n".join(lines)


def is_video_library(path: str | Path) -> bool:
    """True when `path` is a folder with at least one visible video file directly inside it (a library; one that
    also holds images is refused by `upscale_library`). A folder of image frames alone is not one."""
    path = Path(path)
    return path.is_dir() and any(is_video_file(entry) for entry in path.iterdir())


def library_videos(input_dir: str | Path) -> list[Path]:
    """The videos of a library in natural order; a `UserError` when the folder is not one, or mixes videos and
    images (which would otherwise be half of a library and half of a frame folder)."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give a folder of videos")
    entries = [entry for entry in folder.iterdir() if not is_hidden(entry)]
    videos = sorted((e for e in entries if is_video_file(e)), key=lambda p: natural_key(p.name))
    images = [e for e in entries if is_image_file(e)]
    if videos and images:
        raise UserError(
            f"folder {folder} holds both videos ({len(videos)}) and images ({len(images)}); move the videos or the "
            "images into a folder of their own (a folder is either a library of videos or the frames of one video)"
        )
    if not videos:
        raise UserError(
            f"folder {folder} contains no video files ({', '.join(VIDEO_EXTENSIONS)}); give a folder of videos"
        )
    return videos


def output_names(
    videos: list[Path], output_dir: Path, container: str | None = None, encode: EncodeConfig | None = None
) -> list[Path]:
    """The output of each video: `output_dir/<stem>.<container>`, or the input's own extension when we can write it
    and `encode.codec` can be stored in it, else .mkv. Two videos that would get one name are refused (also names
    that differ only in case: they are one file on macOS and Windows)."""
    encode = encode or EncodeConfig()
    if container is not None and container.lower().lstrip(".") not in CONTAINERS:
        raise UserError(f"unknown container {container!r}; choose one of {', '.join(CONTAINERS)}", option="container")
    chosen: dict[str, str] = {}  # input suffix -> output suffix, each checked once against the codec
    outputs = []
    for video in videos:
        suffix = video.suffix.lower()
        if suffix not in chosen:
            chosen[suffix] = "." + container.lower().lstrip(".") if container else _own_suffix(suffix, encode)
            _check_codec(encode, chosen[suffix], output_dir)  # a setting no output can take: refused before any work
        outputs.append(output_dir / f"{video.stem}{chosen[suffix]}")
    seen: dict[str, Path] = {}
    for video, output in zip(videos, outputs, strict=True):
        other = seen.setdefault(output.name.casefold(), video)
        if other != video:
            raise UserError(
                f"{other.name} and {video.name} would both be written as {output}; rename one of them, "
                "or choose a container that keeps them apart",
                option="container",
            )
    return outputs


def _check_codec(encode: EncodeConfig, suffix: str, output_dir: Path) -> None:
    check_codec(encode, container_format(Path(f"x{suffix}")), output_dir / f"*{suffix}")


def _own_suffix(suffix: str, encode: EncodeConfig) -> str:
    """The input's extension when it is a container we write and the codec fits in it (libx264 does not fit in
    .webm), else the fallback; a codec or pixel format that fits nowhere is reported by the caller's check."""
    if suffix not in {f".{c}" for c in CONTAINERS}:
        return FALLBACK_SUFFIX
    try:
        _check_codec(encode, suffix, Path())
    except UserError:
        return FALLBACK_SUFFIX
    return suffix


def check_output_dir(input_dir: Path, output_dir: Path) -> None:
    """The output folder must not be the library nor inside it (its outputs would join the library) nor a file."""
    source, target = input_dir.resolve(), output_dir.resolve()
    if target == source:
        raise UserError(f"the output folder {output_dir} is the input folder; choose another output folder")
    if source in target.parents:
        raise UserError(f"the output folder {output_dir} is inside the input folder {input_dir}; write it elsewhere")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir} is a file, not a folder; give a folder for the outputs of a library")
    if not output_dir.exists() and output_dir.suffix.lower() in VIDEO_EXTENSIONS:
        # `upscale clips/ all.mp4` is a mistake (one video per input is written), not a folder named all.mp4.
        raise UserError(
            f"{output_dir} is a video file name, but a folder of videos is upscaled into a folder (one video per "
            "input); give a folder name"
        )


def upscale_library(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    container: str | None = None,
    overwrite: bool = False,
    model: RealBasicVSR | None = None,
    weights: str | Path | None = None,
    fidelity_weights: str | Path | None = None,
    encode: EncodeConfig | None = None,
    options: UpscaleConfig | None = None,
    progress: ProgressCallback | None = None,
    on_file: FileCallback | None = None,
    **upscale_kwargs: object,
) -> LibraryResult:
    """Upscale this worker's share of the videos of `input_dir` into `output_dir` (created when missing).

    `container` ("mp4", "mkv", "mov", "webm") sets every output's container (default: see `output_names`).
    Outputs that exist are finished ones and are skipped unless `overwrite`. The model (`model`, else `weights`,
    else the default weights; blended with `fidelity_weights` at `options.strength`) is loaded once, only when some
    file needs it. `progress(done, total)` counts frames
    over the whole share (the total is the sum of the probed frame counts and grows if they were short);
    `on_file` is told as each file starts and ends. `upscale_kwargs` go to `upscale_video` unchanged (fps,
    copy_streams, ...). A `UserError` about one file is recorded in its `FileResult` and the job goes on; bad
    folders or settings raise `UserError` before any work; a full disk and KeyboardInterrupt stop the job.
    Under torchrun or a Slurm job array each process does its share (`worker_share`).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    videos = library_videos(input_dir)
    check_output_dir(input_dir, output_dir)
    encode = encode or EncodeConfig()
    outputs = output_names(videos, output_dir, container, encode)
    rank, world = worker_share()
    options = resolve_config(options or UpscaleConfig())
    options = replace(options, device=worker_device(options.device))
    mine = [
        (video, output)
        for index, (video, output) in enumerate(zip(videos, outputs, strict=True))
        if index % world == rank
    ]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the output folder {output_dir} ({error.strerror or error}); choose a writable location"
        ) from error

    results: dict[int, FileResult] = {}
    estimates: dict[int, int] = {}  # position -> probed frame count of the files still to do
    for position, (video, output) in enumerate(mine, 1):
        if output.is_file() and not overwrite:
            results[position] = FileResult(video, output, "skipped", reason=f"{output.name} exists (finished earlier)")
            continue
        try:
            estimates[position] = probe(video).num_frames or 0
        except UserError as error:
            results[position] = _failed(video, output, error)
    if estimates and model is None:
        from realbasicvsr.weights.strength import load_upscale_model

        model, used = load_upscale_model(weights, strength=options.strength, fidelity_weights=fidelity_weights)
    else:
        used = "the model given" if model is not None else ""

    bar = _Progress(progress, estimates)
    for position, (video, output) in enumerate(mine, 1):
        if position in results:
            if on_file is not None:
                on_file(position, len(mine), video, results[position])
            continue
        if on_file is not None:
            on_file(position, len(mine), video, None)
        file_progress = bar.for_file(position)
        results[position] = _upscale_one(
            video, output, file_progress, model, options, encode, overwrite, upscale_kwargs
        )
        bar.finish(position, max(results[position].frames, file_progress.done))
        if on_file is not None:
            on_file(position, len(mine), video, results[position])
    files = tuple(results[position] for position in range(1, len(mine) + 1))
    return LibraryResult(input_dir, output_dir, files, len(videos), rank, world, used)


def _upscale_one(
    video: Path,
    output: Path,
    progress: _FileProgress,
    model: RealBasicVSR,
    options: UpscaleConfig,
    encode: EncodeConfig,
    overwrite: bool,
    upscale_kwargs: dict[str, object],
) -> FileResult:
    try:
        result = upscale_video(
            video,
            output,
            model=model,
            options=options,
            encode=encode,
            overwrite=overwrite,
            progress=progress,
            # Files are shared among the workers, so each file is one worker's alone; an interrupted file goes on
            # where it stopped (its work folder), unless --overwrite.
            **{"workers": (0, 1), "resume": not overwrite, **upscale_kwargs},
        )
    except UserError as error:
        if _disk_full(error):
            raise  # every later file would fail the same way: stop, and let the caller say so
        return _failed(video, output, error, progress.done)
    if not getattr(result, "complete", True):  # another process (a second run on this folder) holds part of it
        reason = "another process is finishing it"
        return FileResult(video, output, "skipped", result.frames, result.seconds, reason, result)
    return FileResult(video, output, "ok", result.frames, result.seconds, result=result)


def _failed(video: Path, output: Path, error: UserError, frames: int = 0) -> FileResult:
    return FileResult(video, output, "failed", frames, reason=" ".join(str(error).split()), error=error)


def _disk_full(error: BaseException) -> bool:
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return True
        current = current.__cause__ or current.__context__
    return False


class _Progress:
    """Frames over the whole share: files finished count what they wrote, the file running its count so far (or
    the larger of its estimate and that), files to come their probed estimate."""

    def __init__(self, callback: ProgressCallback | None, estimates: dict[int, int]) -> None:
        self.callback = callback
        self.estimates = dict(estimates)
        self.finished = 0  # frames of the files done

    def for_file(self, position: int) -> _FileProgress:
        return _FileProgress(self, position)

    def report(self, position: int, done: int, total: int | None) -> None:
        if total is not None:
            self.estimates[position] = max(total, done)
        self.estimates[position] = max(self.estimates[position], done)
        if self.callback is not None:
            self.callback(self.finished + done, self.finished + sum(self.estimates.values()))

    def finish(self, position: int, frames: int) -> None:
        # What the file did replaces its estimate; a failed one counts the frames it got through, so the bar never
        # goes back.
        self.estimates.pop(position, None)
        self.finished += frames
        if self.callback is not None:
            self.callback(self.finished, self.finished + sum(self.estimates.values()))


@dataclass
class _FileProgress:
    """The `upscale_video` progress callback of one file, forwarding to the share's `_Progress`."""

    share: _Progress
    position: int
    done: int = 0

    def __call__(self, done: int, total: int | None) -> None:
        self.done = done
        self.share.report(self.position, done, total)
