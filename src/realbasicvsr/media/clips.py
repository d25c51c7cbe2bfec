"""Which files are frames, in which order, and the simple readers the training and scoring journeys use.

One extension table, one natural order and one clip discovery for every journey (upscale, train, evaluate,
degrade, prepare), so a folder of frames is read in the same order everywhere:
- names compare case-folded, with runs of digits as numbers: f1 < f2 < F3 < f10 (REDS's zero-padded names sort
  the same either way; unpadded ones only this way);
- files and folders whose name starts with '.' are skipped (editor, OS and our own temporary files);
- extensions match case-insensitively (F3.PNG is an image).

The readers here are the plain ones: PIL for images (uint8 RGB), and PyAV's default rgb24 conversion for video,
which is what training windows and the published scoring protocols always used. Upscaling and `degrade` read
through `media.read`, which keeps 16-bit depth, alpha and the stream's exact colour matrix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from realbasicvsr.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (
    ".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".flv", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".y4m",
)  # fmt: skip


def natural_key(name: str) -> list[object]:
    """Sort key of a file name: case-folded, digit runs compared as numbers (f1 < f2 < F3 < f10)."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", name)]


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def is_image_file(path: Path) -> bool:
    """A visible file with an image extension (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path) and path.is_file()


def is_video_file(path: Path) -> bool:
    """A visible file with a video extension (any case)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not is_hidden(path) and path.is_file()


def list_frames(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, in natural order (hidden files skipped)."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class ClipSource:
    """Where one clip's frames come from: a folder of images (`frames` in natural order) or a video file."""

    name: str  # the folder's name, or the video file's name without its extension
    path: Path
    frames: tuple[Path, ...] = ()

    @property
    def video(self) -> Path | None:
        return None if self.frames else self.path


def find_clips(root: str | Path) -> list[ClipSource]:
    """The clips of `root`, in natural order of their names.

    - a video file: that one clip;
    - a folder: every visible sub-folder holding images and every video file directly inside it;
    - a folder with neither that holds images itself: that folder as one clip.

    An empty list when a folder holds none of these (the caller says what it expected).
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root} does not exist; give a folder of clip folders, video files or images, or a video")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise UserError(f"{root} is not a video file ({', '.join(VIDEO_EXTENSIONS)}) nor a folder")
        return [ClipSource(root.stem, root)]
    clips = []
    for entry in sorted((p for p in root.iterdir() if not is_hidden(p)), key=lambda p: natural_key(p.name)):
        if entry.is_dir():
            frames = list_frames(entry)
            if frames:
                clips.append(ClipSource(entry.name, entry, tuple(frames)))
        elif is_video_file(entry):
            clips.append(ClipSource(entry.stem, entry))
    if clips:
        return clips
    frames = list_frames(root)
    return [ClipSource(root.name, root, tuple(frames))] if frames else []


def clip_folders(root: str | Path) -> list[ClipSource]:
    """Only the sub-folders of frames of `root` (for jobs that mirror clip folders by name: prepare, validation)."""
    root = Path(root)
    return [clip for clip in find_clips(root) if clip.frames and clip.path != root]


# ---------------------------------------------------------------- images


class UnreadableImage(UserError):
    """An image file PIL cannot decode (garbage, truncated, a broken chunk); `path` says which."""

    def __init__(self, path: str | Path, error: Exception) -> None:
        super().__init__(f"cannot read image {path}: {error}; re-save or remove it")
        self.path = Path(path)


def _pil_errors() -> tuple[type[Exception], ...]:
    """What PIL raises for a damaged file: OSError (truncated, not an image), SyntaxError (a broken PNG chunk or
    CRC), ValueError (impossible header values) and its decompression-bomb refusal."""
    from PIL import Image

    return (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_image(path: str | Path, *, rgb: bool = True) -> np.ndarray:
    """One image file via PIL: (H, W, 3) uint8 RGB (grey and RGBA converted), or with `rgb=False` the array of the
    file's own mode (what re-saving it keeps). A damaged file raises `UnreadableImage`."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB") if rgb else image)
    except _pil_errors() as error:  # UnidentifiedImageError is an OSError
        raise UnreadableImage(path, error) from error


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header (`UnreadableImage` when it has none)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except _pil_errors() as error:
        raise UnreadableImage(path, error) from error


def read_image_window(frames: Sequence[Path], start: int, count: int) -> np.ndarray:
    """Images start..start+count-1 of a clip as uint8 (count, H, W, 3) RGB; they must all have one size."""
    images = [read_image(path) for path in frames[start : start + count]]
    if any(image.shape != images[0].shape for image in images):
        folder = frames[0].parent
        raise UserError(f"frames of {folder} differ in size; every frame of a clip must be the same size")
    return np.stack(images)


# ---------------------------------------------------------------- videos


@dataclass(frozen=True)
class VideoShape:
    """A video's frame count (from the header, else counted packets) and frame size."""

    frames: int
    height: int
    width: int


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), metadata_errors="replace")  # a non-UTF-8 tag must not stop the read
    except av.error.FFmpegError as error:
        raise UserError(f"cannot read video {path}: {error}; check the file or remove it") from error
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        raise UserError(f"{path} has no video stream FFmpeg can decode; check the file or remove it")
    return container


def probe_video_shape(path: str | Path) -> VideoShape:
    """Frame count and size of a video without decoding it."""
    path = Path(path)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        try:
            length = stream.frames
            if length <= 0:  # not stored in the header (e.g. some mkv/webm): count packets, no decoding
                length = sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as error:
            raise UserError(f"cannot read video {path}: {error}; check the file or remove it") from error
        return VideoShape(length, stream.codec_context.height, stream.codec_context.width)


def iter_video_frames(path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
    """The frames of a video's first stream as uint8 (H, W, 3) RGB, one at a time; only indices < `stop`."""
    path = Path(path)
    with _open_video(path) as container:
        try:
            for index, frame in enumerate(container.decode(video=0)):
                if stop is not None and index >= stop:
                    return
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise UserError(f"cannot decode {path}: {error}") from error


def read_video_window(path: str | Path, start: int, count: int) -> np.ndarray:
    """Frames start..start+count-1 of a video as uint8 (count, H, W, 3) RGB, seeking to the key frame before."""
    path = Path(path)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        origin = stream.start_time or 0
        # Frame k is presented at origin + k / rate; seek to the key frame before it and decode forward.
        target = origin + int(Fraction(start) / Fraction(rate) / stream.time_base)
        half_frame = int(Fraction(1, 2) / Fraction(rate) / stream.time_base)
        frames = []
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts < target - half_frame:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
        except av.error.FFmpegError as error:
            raise UserError(f"cannot decode {path} from frame {start}: {error}; check the file or remove it") from error
    if len(frames) < count:
        raise UserError(f"{path}: could only decode {len(frames)} of {count} frames from frame {start}")
    return np.stack(frames)
