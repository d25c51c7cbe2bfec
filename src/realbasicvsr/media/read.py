"""Streaming input: videos (anything FFmpeg decodes), folders of images and single images -> RGB frames.

Every input goes through PyAV/FFmpeg, images included, so PNG/JPEG/BMP/TIFF/WebP in 8 or 16 bits, grey, RGB and
RGBA all take the same path. Frames come out one at a time as `Frame` objects (HWC RGB numpy, uint8 for 8-bit
sources, uint16 for deeper ones) with the source timestamp, so nothing ever holds the whole video.

YUV -> RGB uses the matrix and range the stream declares. When a stream declares no matrix we do what players do:
BT.709 for frames 720 lines or taller, BT.601 below. The official script instead relies on OpenCV's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import IMAGE_EXTENSIONS, UnreadableImage, image_size, list_frames
from realbasicvsr.media.color import (
    ColorInfo,
    HdrMetadata,
    bit_depth_of,
    color_of,
    frame_to_rgb,
    has_alpha_channel,
    hdr_of,
)
from realbasicvsr.media.decode_errors import ON_ERROR_CHOICES, DamageReport, OnError, decode_with_damage

# What an input (VideoInfo.kind) or an output (UpscaleResult.kind) is.
MediaKind = Literal["video", "folder", "image"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame. `image` is (h, w, 3) RGB, uint8 or uint16; `alpha` (h, w) of the same dtype or None.

    `pts` is in the source's `VideoInfo.time_base` (None for image inputs); `name` is the source file name for
    image folders (used to name output frames).
    """

    index: int
    image: np.ndarray
    pts: int | None = None
    alpha: np.ndarray | None = None
    name: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about an input before any frame is decoded."""

    path: Path
    kind: MediaKind
    width: int
    height: int
    num_frames: int | None  # exact for images and folders; the container's count (or an estimate) for videos
    fps: Fraction | None  # average frame rate of a video; None for images
    time_base: Fraction | None
    bit_depth: int  # 8 or 16 (10/12-bit video is read as 16-bit)
    has_alpha: bool
    codec: str | None
    color: ColorInfo = field(default_factory=ColorInfo)
    frames_exact: bool = True
    files: tuple[Path, ...] = ()  # the image files of a folder, in natural order
    # What a player needs besides the pixels, carried to the output: the pixel aspect (None: square or unknown),
    # the transfer and primaries as declared (AVColorTransferCharacteristic / AVColorPrimaries; 2 = unspecified),
    # and the display rotation in degrees (the stream's display matrix, e.g. a phone held upright).
    sar: Fraction | None = None
    color_trc: int = 2
    color_primaries: int = 2
    rotation: int = 0
    hdr: HdrMetadata | None = None  # mastering display and content light level of an HDR10 source
    # What a read does with damaged frames (`realbasicvsr.media.decode_errors`): "stop" raises at the first one,
    # "conceal" keeps FFmpeg's concealment and repeats the previous frame for one that does not decode.
    on_error: OnError = "stop"

    @property
    def duration(self) -> float | None:
        if self.num_frames is None or not self.fps:
            return None
        return float(self.num_frames / self.fps)


def _open(path: Path) -> av.container.InputContainer:
    try:
        # Tags that are not UTF-8 (old or damaged files) must not make a readable video unreadable.
        return av.open(str(path), metadata_errors="replace")
    except av.error.PermissionError as error:
        raise UserError(f"cannot read {path}: permission denied; check the file's permissions") from error
    except av.error.EOFError as error:
        raise UserError(
            f"{path} ends before its first frame (an empty or truncated file); check or re-export it"
        ) from error
    except av.error.FFmpegError as error:
        raise UserError(
            f"{path} is not a video or image that FFmpeg can read ({error.strerror or error}); "
            "check the file, or convert it with ffmpeg first"
        ) from error


def main_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The video stream that is upscaled: the first one FFmpeg has a decoder for (a damaged header can leave a
    stream without one) that is not an attached picture (cover art may be listed first); None when there is none."""
    for stream in container.streams.video:
        if stream.codec_context is not None and not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise UserError(f"{path} has no video stream (it contains: {', '.join(kinds)}); give a video file instead")
    stream = main_video_stream(container)
    if stream is not None:
        _check_frame_size(path, stream.codec_context.width, stream.codec_context.height)
        return stream
    if all(s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video):
        raise UserError(f"{path} has no video stream, only cover art; give a video file instead")
    raise UserError(
        f"{path}: its video stream has no codec FFmpeg can decode (the file is damaged or uses an unknown codec); "
        "check or re-export it"
    )


# The largest frame we decode: 2^27 pixels (16 times 4K UHD; 11585x11585), about 0.8 GB as 16-bit RGB. A header is
# checked before decoding, so an 824-byte PNG claiming 16000x16000 no longer allocates 779 MB first.
MAX_FRAME_PIXELS = 1 << 27


def _check_frame_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise UserError(
            f"{path} claims {width}x{height} pixels per frame, over the {MAX_FRAME_PIXELS:,} this tool decodes; "
            "the file is damaged, or split the picture into tiles first"
        )


def probe(path: str | Path, on_error: OnError = "stop") -> VideoInfo:
    """Inspect an input (video file, image folder or image file) without decoding the whole of it. `on_error`
    is what reading its frames does with damaged ones ("stop" or "conceal", see `VideoInfo.on_error`)."""
    if on_error not in ON_ERROR_CHOICES:
        raise UserError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}", option="on_error")
    return replace(_probe(Path(path)), on_error=on_error)


def _probe(path: Path) -> VideoInfo:
    if not path.exists():
        raise UserError(f"input {path} does not exist; check the path")
    if path.is_dir():
        return _probe_folder(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        info = _probe_image(path)
        return VideoInfo(**{**info.__dict__, "kind": "image", "files": (path,)})
    return _probe_video(path)


def _probe_image(path: Path) -> VideoInfo:
    frame, codec = _decode_image(path, "is not a readable image", "re-save it as PNG")
    return VideoInfo(
        path=path,
        kind="image",
        width=frame.width,
        height=frame.height,
        num_frames=1,
        fps=None,
        time_base=None,
        bit_depth=bit_depth_of(frame.format),
        has_alpha=has_alpha_channel(frame.format),
        codec=codec,
        color=color_of(frame.colorspace, frame.color_range, frame.format.name, frame.height),
    )


def _decode_image(path: Path, unreadable: str, fix: str) -> tuple[av.VideoFrame, str]:
    """The one frame of an image file and its codec name; a `UserError` ending in `fix` when it has none."""
    try:  # the header first (PIL reads only it): FFmpeg's probe would already decode a frame of the claimed size
        width, height = image_size(path)
    except UnreadableImage as error:
        raise UserError(f"{path} {unreadable} ({error.__cause__}); {fix}") from error
    _check_frame_size(path, width, height)
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            frame = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise UserError(f"{path} {unreadable} ({error}); {fix}") from error
        if frame is None:
            raise UserError(f"{path} contains no image; {fix}")
        return frame, stream.codec_context.name


def _probe_folder(path: Path) -> VideoInfo:
    files = list_frames(path)
    if not files:
        raise UserError(
            f"folder {path} contains no images ({', '.join(IMAGE_EXTENSIONS)}); point to a folder of frames or a video"
        )
    first = _probe_image(files[0])
    return VideoInfo(
        **{**first.__dict__, "path": path, "kind": "folder", "num_frames": len(files), "files": tuple(files)}
    )


def _probe_video(path: Path) -> VideoInfo:
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height or ctx.format is None:
            raise UserError(f"{path}: the video stream has no size or pixel format; the file is damaged or unsupported")
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = Fraction(fps) if fps else None
        num_frames, exact = (stream.frames, True) if stream.frames > 0 else (None, False)
        rotation, hdr = _first_frame_tags(container, stream)
        if num_frames is None and fps is not None:
            seconds = float(stream.duration * stream.time_base) if stream.duration else None
            if seconds is None and container.duration:
                seconds = container.duration / av.time_base
            num_frames = round(seconds * fps) if seconds else None
        return VideoInfo(
            path=path,
            kind="video",
            width=ctx.width,
            height=ctx.height,
            num_frames=num_frames,
            fps=fps,
            time_base=Fraction(stream.time_base) if stream.time_base else None,
            bit_depth=bit_depth_of(ctx.format),
            has_alpha=has_alpha_channel(ctx.format),
            codec=ctx.name,
            color=color_of(ctx.colorspace, ctx.color_range, ctx.format.name, ctx.height),
            frames_exact=exact,
            sar=Fraction(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else None,
            color_trc=int(ctx.color_trc),
            color_primaries=int(ctx.color_primaries),
            rotation=rotation,
            hdr=hdr,
        )


def _first_frame_tags(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[int, HdrMetadata | None]:
    """The display rotation (degrees, from the stream's display matrix) and the HDR mastering metadata FFmpeg
    reports with the first frame; 0 and None when there are none or the first frame does not decode (the real
    decode reports that, with its own message)."""
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return 0, None
    return (round(frame.rotation) % 360, hdr_of(frame)) if frame is not None else (0, None)


def read_frames(
    info: VideoInfo, start: int = 0, stop: int | None = None, frame_pts: Sequence[int | None] | None = None
) -> Iterator[Frame]:
    """Yield the frames `start` .. `stop` (default: to the end) of a probed input in order, one at a time.

    `frame_pts` (the timestamps `scan` reported for every frame) lets a video start at `start` by seeking instead
    of decoding from the beginning; each frame's timestamp is then checked against it. Raises `UserError` when a
    folder's images change size, when a video has no decodable frame, or at a damaged frame under
    `info.on_error` "stop": the caller then discards its partial output. Under "conceal" a whole read (from 0 to
    the end) warns once about the damaged frames it kept or replaced (`DamagedInputWarning`).
    """
    if info.kind == "video":
        if start > 0 and frame_pts is not None and frame_pts[start] is not None:
            try:
                yield from _read_video(info, start, stop, frame_pts)
                return
            except _SeekMissed:  # before any frame was yielded: decode from the beginning instead
                pass
        yield from _read_video(info, start, stop, frame_pts, seek=False)
        return
    for index in range(start, len(info.files) if stop is None else min(stop, len(info.files))):
        file = info.files[index]
        frame, _ = _decode_image(file, "cannot be decoded as an image", "re-save or remove it")
        if (frame.width, frame.height) != (info.width, info.height):
            raise UserError(
                f"{file} is {frame.width}x{frame.height} but the first frame is {info.width}x{info.height}; "
                "all frames of a folder must have the same size (resize them or split the folder)"
            )
        rgb, alpha = frame_to_rgb(frame, info)
        yield Frame(index=index, image=rgb, alpha=alpha, name=file.name)


class _SeekMissed(Exception):
    """A seek did not land on a frame with the expected timestamp (raised before any frame is yielded)."""


def scan(info: VideoInfo, thumb_width: int) -> Iterator[tuple[int | None, np.ndarray]]:
    """(timestamp, thumbnail) of every frame that decodes, in order: the planning pass. Thumbnails are RGB uint8,
    `thumb_width` wide (aspect kept), made by FFmpeg's area scaler, so the pass costs little beyond the decode."""
    height = max(1, round(info.height * thumb_width / info.width))
    if info.kind != "video":
        for file in info.files:
            frame, _ = _decode_image(file, "cannot be decoded as an image", "re-save or remove it")
            yield None, _thumbnail(frame, thumb_width, height)
        return
    report = _report(info)
    for frame, pts, _ in _decoded(info, None, None, report):
        yield pts, _thumbnail(frame, thumb_width, height)
    report.warn()  # the planning pass: one warning for the whole video, before any model work


def _thumbnail(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return small.to_ndarray()


def _read_video(
    info: VideoInfo, start: int, stop: int | None, frame_pts: Sequence[int | None] | None, seek: bool = True
) -> Iterator[Frame]:
    report = _report(info)
    for frame, pts, index in _decoded(info, frame_pts if seek else None, start if seek else None, report):
        if index < start:
            continue
        if stop is not None and index >= stop:
            return
        expected = frame_pts[index] if frame_pts is not None and index < len(frame_pts) else None
        if expected is not None and pts != expected:
            raise UserError(
                f"{info.path}: frame {index} has timestamp {pts}, the plan says {expected}; the input "
                "changed since the run was planned, start again without resume"
            )
        rgb, alpha = frame_to_rgb(frame, info)
        yield Frame(index=index, image=rgb, pts=pts, alpha=alpha)
    if stop is None and start == 0:  # a whole read reports its damage (a segment's was in the planning pass)
        report.warn()


def _report(info: VideoInfo) -> DamageReport:
    return DamageReport(info.path, info.on_error, info.time_base, info.fps)


def _decoded(
    info: VideoInfo, frame_pts: Sequence[int | None] | None, start: int | None, report: DamageReport
) -> Iterator[tuple[av.VideoFrame, int, int]]:
    """(frame, timestamp, index) of each frame, from the first, or from frame `start` by a seek to its timestamp in
    `frame_pts` (raising `_SeekMissed` if no frame has it). Damaged frames go to `report` (which raises under the
    policy "stop"); one that did not decode is a neighbour's picture at its own timestamp. Timestamps that are
    missing or not increasing (some AVI/raw streams) are replaced by plausible increasing ones, the same way on
    every pass. The container's frame count plays no part: what decodes is the video."""
    path = info.path
    with _open(path) as container:
        stream = _video_stream(container, path)
        # Slice threads only: FFmpeg's frame threads can deadlock closing the decoder after a corrupt packet.
        stream.thread_type = "SLICE"
        index: int | None = 0
        last_pts: int | None = None
        target = None
        if start is not None and frame_pts is not None:
            target = frame_pts[start]
            container.seek(target, stream=stream, backward=True, any_frame=False)
            index, last_pts = None, frame_pts[start - 1]
        decoded = 0
        for item in decode_with_damage(container, stream):
            if index is None:  # after a seek: skip to the frame we want, which must have its timestamp
                if item.frame is None or item.pts is None or item.pts < target:
                    continue
                if item.pts != target or item.borrowed:  # a stand-in made of the next frame: not as in a whole pass
                    raise _SeekMissed
                index = start
            if item.damage is not None:
                report.record(item, index, item.pts)
            if item.frame is None:  # the container cannot be read further
                break
            frame = item.frame
            if (frame.width, frame.height) != (info.width, info.height):
                raise UserError(
                    f"{path}: frame {index} is {frame.width}x{frame.height}, the stream started at "
                    f"{info.width}x{info.height}; split the video where the size changes (ffmpeg -ss/-to)"
                )
            pts = item.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                fallback = _fallback_pts(index, info)
                pts = fallback if last_pts is None else max(fallback, last_pts + 1)
            last_pts = pts
            yield frame, pts, index
            index += 1
            decoded += 1
        if index is None:
            raise _SeekMissed
    if decoded == 0 and start in (None, 0):
        raise UserError(f"{path} has a video stream but no decodable frames; check the file")


def _fallback_pts(index: int, info: VideoInfo) -> int:
    if info.fps and info.time_base:
        return round(index / info.fps / info.time_base)
    return index
