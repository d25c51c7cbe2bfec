"""Streaming output: an encoded video (audio and subtitles copied packet by packet), a folder of PNGs, or one image.

Writers take `Frame`s (HWC RGB uint8/uint16) in order. The video writer keeps the source's time base and each
frame's timestamp, so the frame rate (variable included) and the duration follow the source; the official script
wrote OpenCV 'mp4v' at a fixed 25 fps and dropped audio. Other streams of the source are demuxed a second time
and muxed as they come due, so long files never buffer their whole audio track (`media.remux`).

Every writer is a `FrameWriter`; `write_frames` writes a whole sequence of frames to a new output in one step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import numpy as np

from realbasicvsr.errors import UserError
from realbasicvsr.media.color import COLOR_TAGS, HDR_ENCODERS, ColorInfo, carry_display_tags
from realbasicvsr.media.encode import (  # the encoder settings live there; imported from here as well
    CONTAINER_FORMATS,
    EncodeConfig,
    check_codec,
    container_format,
    default_codec,
)
from realbasicvsr.media.files import commit_replacing, remove_partial, temporary_path
from realbasicvsr.media.read import Frame, VideoInfo
from realbasicvsr.media.remux import Remuxer

# What a writer raises when the encoder or the disk fails (not a bug): callers turn these into one-line errors.
WRITE_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, OSError)


@runtime_checkable
class FrameWriter(Protocol):
    """What every writer here does: take frames in order, then `close` (finish the output) or `abort` (stop
    without finishing; the caller deletes the partial output). `frames_written` counts the frames taken."""

    frames_written: int

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


# Encoders reorder frames by a few dozen at most (x264/x265 B-pyramids and look-ahead: under 20).
MAX_REORDER_FRAMES = 64


def plausible_dts(pts: int | None, dts: int | None, last_dts: int | None, span: int) -> int | None:
    """A decode time the muxer accepts: the encoder's own when it is plausible (at most `span` before `pts`, not
    after it, and after the previous packet's), else the earliest valid one.

    Why: libx265 (as in PyAV 18's FFmpeg) stamps the packets of a clip shorter than its reorder delay with a garbage
    decode time now and then (seen on a 2-frame lossless encode: dts = pts - 2.9e18, in about 1 run of 3), which
    the muxer refuses ("Invalid argument"), failing the whole run.
    """
    if pts is None:
        return dts
    if dts is not None and pts - span <= dts <= pts and (last_dts is None or dts > last_dts):
        return dts
    return pts if last_dts is None or pts > last_dts else last_dts + 1


class VideoWriter:
    """Encode RGB frames to `path` (a temporary name is fine: the container format is given explicitly)."""

    def __init__(
        self,
        path: Path,
        *,
        fmt: str,
        width: int,
        height: int,
        source: VideoInfo,
        settings: EncodeConfig,
        fps: Fraction,
        copy_streams: bool = True,
    ) -> None:
        self.path = path
        self.frames_written = 0
        settings, _ = default_codec(settings, source.bit_depth, fmt, (width, height))  # said by the caller's plan
        pix_fmt = settings.resolved_pix_fmt(source.bit_depth)
        if pix_fmt.startswith(("yuv420", "yuv422", "nv12")) and (width % 2 or height % 2):
            raise UserError(
                f"{pix_fmt} needs an even output size, got {width}x{height}; choose an even out_size",
                option="out_size",
            )
        if settings.codec == "libx265" and min(width, height) < 64:
            # x265 (as bundled with PyAV 18) corrupts the heap on frames smaller than its 64-px CTU; later
            # encoders in the same process then crash. Refuse instead of risking it.
            raise UserError(
                f"libx265 cannot encode frames smaller than 64x64 (got {width}x{height}); use the codec libx264",
                option="codec",
            )
        self._container = av.open(str(path), "w", format=fmt)  # after the checks: a refusal leaves no file
        # HDR10 mastering metadata goes in as the encoder's SEI: PyAV cannot write it as container side data.
        hdr = source.hdr if source.kind == "video" and settings.codec in HDR_ENCODERS else None
        options = settings.codec_options(hdr.encoder_params(settings.codec) if hdr else "")
        stream = self._container.add_stream(settings.codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # Keep the source's clock: each frame's pts is copied, so VFR timing and the duration survive.
        self._time_base = source.time_base if source.kind == "video" and source.time_base else 1 / fps
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        # Encode with the source's matrix and say so in the stream, so players decode the colours we meant.
        self._color = source.color if source.kind == "video" else ColorInfo("ITU709", False, True)
        spc, pri, trc = COLOR_TAGS.get(self._color.matrix, COLOR_TAGS["ITU709"])
        stream.codec_context.colorspace, stream.codec_context.color_primaries = spc, pri
        stream.codec_context.color_trc = trc
        stream.codec_context.color_range = 2 if self._color.full_range else 1
        if source.kind == "video":
            carry_display_tags(stream, source)
        stream.thread_type = "AUTO"
        self._stream = stream
        self._fps = fps
        self._last_dts: int | None = None
        self._remux = Remuxer(source.path, self._container) if copy_streams and source.kind == "video" else None

    def write(self, frame: Frame) -> None:
        image = frame.image
        if image.shape[:2] != (self._stream.height, self._stream.width):  # the encoder would take it silently
            raise UserError(
                f"frame {frame.index} is {image.shape[1]}x{image.shape[0]} but the video is "
                f"{self._stream.width}x{self._stream.height}; every frame of a video must have the same size"
            )
        fmt = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        av_frame = av_frame.reformat(
            format=self._stream.pix_fmt,
            src_color_range="JPEG",
            dst_colorspace=self._color.matrix,
            dst_color_range="JPEG" if self._color.full_range else "MPEG",
            interpolation=av.video.reformatter.Interpolation.BICUBIC | av.video.reformatter.Interpolation.ACCURATE_RND,
        )
        pts = frame.pts if frame.pts is not None else round(frame.index / self._fps / self._time_base)
        av_frame.pts = pts
        av_frame.time_base = self._time_base
        if self._remux is not None:
            self._remux.mux_until(float(pts * self._time_base))
        self._mux_video(self._stream.encode(av_frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and the remaining packets of the other streams, then finish the file."""
        self._mux_video(self._stream.encode(None))
        if self._remux is not None:
            self._remux.mux_until(None)
            self._remux.close()
        self._container.close()

    def _mux_video(self, packets: list[av.Packet]) -> None:
        span = max(1, round(MAX_REORDER_FRAMES / (self._fps * self._time_base)))
        for packet in packets:
            packet.dts = plausible_dts(packet.pts, packet.dts, self._last_dts, span)
            self._last_dts = packet.dts
            self._container.mux(packet)

    def abort(self) -> None:
        """Close without finishing (the caller deletes the file)."""
        if self._remux is not None:
            self._remux.close()
        # The file is deleted anyway; the error that made us abort is the one to report.
        with contextlib.suppress(av.error.FFmpegError):
            self._container.close()


def write_image(path: Path, image: np.ndarray, alpha: np.ndarray | None = None, fmt: str | None = None) -> None:
    """Write one RGB(A) image (8 or 16 bit) with FFmpeg's image encoders; the format follows the extension."""
    suffix = path.suffix.lower()
    codec = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}.get(
        fmt or suffix
    )
    if codec is None:
        raise UserError(f"cannot write images with extension {suffix!r}; use .png, .jpg, .bmp or .tiff")
    deep = image.dtype == np.uint16
    if codec in ("mjpeg", "bmp") and deep:
        image, alpha = (image // 257).astype(np.uint8), None if alpha is None else (alpha // 257).astype(np.uint8)
        deep = False
    if alpha is not None and codec in ("png", "tiff"):
        data, in_fmt = np.dstack([image, alpha]), ("rgba64le" if deep else "rgba")
    else:
        data, in_fmt = image, ("rgb48le" if deep else "rgb24")
    out_fmt = {
        "png": {"rgb24": "rgb24", "rgba": "rgba", "rgb48le": "rgb48be", "rgba64le": "rgba64be"}[in_fmt],
        "tiff": {"rgb24": "rgb24", "rgba": "rgba", "rgb48le": "rgb48le", "rgba64le": "rgba64le"}[in_fmt],
        "mjpeg": "yuvj444p",
        "bmp": "bgr24",
    }[codec]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=in_fmt)
    if out_fmt != in_fmt:
        frame = frame.reformat(format=out_fmt, src_color_range="JPEG", dst_color_range="JPEG")
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, out_fmt
        if codec == "mjpeg":
            stream.codec_context.color_range = 2
            stream.options = {"qscale": "2"}
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


class ImageFolderWriter:
    """PNG frames in a folder: the source file's name for image folders, else 00000000.png, 00000001.png, ..."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.frames_written = 0
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: Frame) -> None:
        name = Path(frame.name).stem + ".png" if frame.name else f"{frame.index:08d}.png"
        write_image(self.path / name, frame.image, frame.alpha)
        self.frames_written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ImageWriter:
    """A single image (for a single-image input); the format follows the final output's extension."""

    def __init__(self, path: Path, final_suffix: str) -> None:
        self.path = path
        self.frames_written = 0
        self._suffix = final_suffix.lower()

    def write(self, frame: Frame) -> None:
        if self.frames_written:
            raise UserError("an image output holds one frame; give a video or folder output for several frames")
        write_image(self.path, frame.image, frame.alpha, fmt=self._suffix)
        self.frames_written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def write_frames(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: Fraction = Fraction(25),
    settings: EncodeConfig | None = None,
    source: VideoInfo | None = None,
) -> int:
    """Write RGB frames (HWC uint8 or uint16) to a new `path` in one step; returns the number written.

    A container extension (.mp4, .mkv, ...) makes a video encoded with `settings` at a constant `fps` (with the
    colour matrix and time base of `source` when it is a video), anything else a folder of PNG frames
    00000000.png, 00000001.png, ... Everything is written under a temporary name and renamed over `path` when
    complete, replacing what was there: the caller decides whether an existing output may go.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise UserError(f"no frames to write to {path}")
    tmp = temporary_path(path)
    writer = _frames_writer(path, tmp, first, fps, settings or EncodeConfig(), source)
    try:
        writer.write(Frame(index=0, image=first))
        for index, image in enumerate(frames, start=1):
            writer.write(Frame(index=index, image=image))
        writer.close()
    except BaseException:
        writer.abort()
        remove_partial(tmp)
        raise
    try:
        commit_replacing(tmp, path)
    except BaseException:
        remove_partial(tmp)
        raise
    return writer.frames_written


def _frames_writer(
    path: Path, tmp: Path, first: np.ndarray, fps: Fraction, settings: EncodeConfig, source: VideoInfo | None
) -> FrameWriter:
    if path.suffix.lower() not in CONTAINER_FORMATS:
        return ImageFolderWriter(tmp)
    fmt = container_format(path)
    height, width = first.shape[:2]
    bit_depth = 16 if first.dtype == np.uint16 else 8
    if source is None:  # frames from nowhere in particular: BT.709 tags, a time base of 1 / fps
        source = VideoInfo(path, "folder", width, height, None, fps, None, bit_depth, False, None)
    # The frames, not the source, decide the depth (e.g. 8-bit frames degraded from a 16-bit source).
    source = replace(source, width=width, height=height, bit_depth=bit_depth)
    check_codec(settings, fmt, path, bit_depth)
    try:
        return VideoWriter(
            tmp, fmt=fmt, width=width, height=height, source=source, settings=settings, fps=fps, copy_streams=False
        )
    except BaseException:
        remove_partial(tmp)
        raise
