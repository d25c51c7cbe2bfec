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
    scaled = np.trunc(frame * np.float32(255.0))
    if wrap_out_of_range:
        return (scaled.astype(np.int64) & 255).astype(np.uint8)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def video_compress(frames: Sequence[np.ndarray], codec: str, bitrate: int, *, wrap_out_of_range: bool = True) -> Frames:
    """Encode the frames into an in-memory MP4 at 1 fps and `bitrate` bit/s, decode them back.

    As in the reference: stream size from frame 0 (PyAV rescales frames of other sizes to it), yuv420p,
    the encoder picks frame types. 'h264' is not an FFmpeg encoder name; PyAV then uses the default H.264
    encoder (libx264 here). Deviations, both for robustness: the encoder uses one thread so the bytes do
    not depend on the machine's core count, and an odd-sized frame 0 is edge-padded to even size (libx264
    refuses odd sizes) and cropped back after decoding.
    """
    import av

    if not frames:
        return []
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=1)
        stream.height = height + pad_h
        stream.width = width + pad_w
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(bitrate)
        stream.codec_context.thread_count = 1
        for frame in frames:
            img = to_uint8_like_reference(frame, wrap_out_of_range)
            if pad_h or pad_w:
                img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            video_frame.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    out: Frames = []
    with av.open(buffer, mode="r", format="mp4") as container:
        for decoded in container.decode(video=0):
            rgb = decoded.to_ndarray(format="rgb24")[:height, :width]
            out.append(rgb.astype(np.float32) * np.float32(1.0 / 255.0))
    if len(out) != len(frames):
        raise RuntimeError(f"{codec} round trip returned {len(out)} frames for {len(frames)}")
    return out
