"""Real video-codec round trip of a whole clip, in memory, with PyAV (the reference's RandomVideoCompression)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from realbasicvsr.degrade.ops import Frames


def to_uint8_like_reference(frame: np.ndarray, wrap_out_of_range: bool = True) -> np.ndarray:
    """(255 * x) to uint8 as the reference does it: truncation toward zero, no rounding.

    The reference's plain `astype(uint8)` wraps out-of-range values modulo 256 on common platforms (-1.5 -> 255,
    260.1 -> 4); C leaves that cast undefined, so it is written out here to give the same bytes everywhere.
    wrap_out_of_range=False clips to [0, 255] instead (no wrapped pixels; not the reference).
    """
    scaled = frame * np.float32(255.0)
    if wrap_out_of_range:
        # float -> int32 truncates toward zero; int32 -> uint8 keeps the low 8 bits (modulo 256)
        return scaled.astype(np.int32).astype(np.uint8)
    return np.clip(scaled, 0, 255).astype(np.uint8)


# x264's MB-tree rate control made the bitstream differ from run to run here (6 identical encodes of 30
# 200x200 frames at 50 kbit/s gave 2 to 4 different outputs, with one thread or several; every other
# x264 option we tried kept it, `mbtree=0` removed it). The reference runs x264's defaults (MB-tree on);
# we turn MB-tree off unless asked (`CodecConfig.x264_mbtree`) so that a seed gives one sample.


def _yuv_planes(frame) -> list[np.ndarray]:  # frame: av.VideoFrame (PyAV is imported lazily)
    return [
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        for plane in frame.planes
    ]


def _padded_yuv(frame, height: int, width: int):
    """A yuv420p frame edge-padded to (height, width) (both even)."""
    import av

    y, u, v = _yuv_planes(frame)
    y = np.pad(y, ((0, height - y.shape[0]), (0, width - y.shape[1])), mode="edge")
    u, v = (np.pad(c, ((0, height // 2 - c.shape[0]), (0, width // 2 - c.shape[1])), mode="edge") for c in (u, v))
    stacked = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(height * 3 // 2, width)
    return av.VideoFrame.from_ndarray(stacked, format="yuv420p")


def video_compress(
    frames: Sequence[np.ndarray],
    codec: str,
    bitrate: int,
    *,
    wrap_out_of_range: bool = True,
    x264_mbtree: bool = False,
    x264_preset: str | None = None,
) -> Frames:
    """Encode the frames into an in-memory MP4 at 1 fps and `bitrate` bit/s, decode them back.

    As in the reference: every frame is converted to yuv420p at the size of frame 0 by PyAV (swscale,
    bilinear), the encoder picks frame types, the decoded frames are converted back to RGB. 'h264' is not
    an FFmpeg encoder name; PyAV then uses the default H.264 encoder (libx264 here). Deviations, for
    reproducibility: the encoder runs one thread (bytes independent of the core count), x264's MB-tree is
    off unless `x264_mbtree` (see above), and odd sizes, which yuv420p and libx264 refuse, are edge-padded
    to even ones and cropped back after decoding. The three parts are separate functions so that their
    costs can be measured (benchmarks/bench_degrade.py).
    """
    if not frames:
        return []
    height, width = frames[0].shape[:2]
    yuv = to_yuv_frames(frames, wrap_out_of_range)
    data = encode_yuv(yuv, codec, bitrate, x264_mbtree=x264_mbtree, x264_preset=x264_preset)
    out = decode_rgb(data, height, width)
    if len(out) != len(frames):
        raise RuntimeError(f"{codec} round trip returned {len(out)} frames for {len(frames)}")
    return out


def to_yuv_frames(frames: Sequence[np.ndarray], wrap_out_of_range: bool = True) -> list:
    """Float RGB frames -> yuv420p `av.VideoFrame`s at the size of frame 0, edge-padded to even sizes."""
    import av

    height, width = frames[0].shape[:2]
    coded_h, coded_w = height + height % 2, width + width % 2
    out = []
    for frame in frames:
        img = np.ascontiguousarray(to_uint8_like_reference(frame, wrap_out_of_range))
        yuv = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(width=width, height=height, format="yuv420p")
        if (coded_h, coded_w) != (height, width):
            yuv = _padded_yuv(yuv, coded_h, coded_w)
        yuv.pict_type = av.video.frame.PictureType.NONE
        out.append(yuv)
    return out


def encode_yuv(
    yuv_frames: Sequence, codec: str, bitrate: int, *, x264_mbtree: bool = False, x264_preset: str | None = None
) -> bytes:
    """The encoder alone: yuv420p frames -> MP4 bytes (1 fps, `bitrate` bit/s, one thread)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=1)
        stream.height, stream.width = yuv_frames[0].height, yuv_frames[0].width
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(bitrate)
        stream.codec_context.thread_count = 1
        if stream.codec_context.name == "libx264":
            options = {} if x264_mbtree else {"x264-params": "mbtree=0"}
            if x264_preset is not None:
                options["preset"] = x264_preset
            stream.codec_context.options = options
        for yuv in yuv_frames:
            for packet in stream.encode(yuv):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_rgb(data: bytes, height: int, width: int) -> Frames:
    """MP4 bytes -> float32 RGB frames in [0, 1], cropped to (height, width) (padding of odd sizes removed)."""
    import av

    out: Frames = []
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # frame threads only add latency for 30 small frames
        for decoded in container.decode(stream):
            rgb = decoded.to_ndarray(format="rgb24")[:height, :width]
            out.append(np.multiply(rgb, np.float32(1.0 / 255.0), dtype=np.float32))
    return out
