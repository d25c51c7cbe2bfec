"""What a whole run would cost, from what the preview measured: the time and the output size of the full upscale.

Time. The full run's work is counted frame by frame with the same arithmetic the run uses: its segments are
`realbasicvsr.upscale.plan.plan_segments` (the cuts the preview saw, `segment_frames`, `warmup`, the look-ahead
`overlap`), and within a segment the frames that go through the model's windows are counted as
`Upscaler.iter_batches` cuts them (`window_frames`: each window's frames plus its look-ahead). Then

    seconds = N * plan + sum(read_to - read_from) * read + warm-up frames * warm + window frames * win + N * encode

with the per-frame seconds the preview measured: `plan` (the planning pass: decode + thumbnail + cut detector, per
frame scanned), `read` (a segment's decode to RGB, per frame read), `warm` (the forward-only warm-up, per warm-up
frame), `win` (the windows, colour fix and grain included, per frame through a window) and `encode` (per frame
written). Model loading is not counted (a run loads it once, in seconds); nor is the stitch (a packet copy). On
a CPU the full run's encoder thread competes with the model for the cores, so the terms add up; on a GPU the
encode overlaps the model and the sum is an upper bound.

Size. An encode is one key frame per GOP and smaller frames between. The preview encodes the stretch (`result`,
F frames: one key frame) and its first frame alone (`key`, one key frame and the container's header), so a non-key
frame is `(result - key) / (F - 1)` bytes, and

    bytes = G * key + (N - G) * inter + other,    G = ceil(N / keyint)

with the encoder's key-frame interval (`KEY_INTERVAL`: x264 and x265 250, VP9 128; FFV1 is intra only:
N * result / F) and `other` the bytes of the source's other streams as the output carries them (measured by a
one-frame encode with them, minus `key`). Key frames that x264 adds at scene changes are not counted; a 30-frame
key frame is a little larger than a lone one (x264's mb-tree), which the `inter` estimate absorbs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from realbasicvsr.upscale.plan import Segment, plan_segments

# Frames between key frames of each encoder at its defaults (measured with this PyAV/FFmpeg: x264 and x265 250,
# libvpx-vp9 128). None: every frame is coded alone (FFV1), so every frame costs about the same.
KEY_INTERVAL: dict[str, int | None] = {"libx264": 250, "libx265": 250, "libvpx-vp9": 128, "ffv1": None}


@dataclass(frozen=True)
class Rates:
    """Seconds per frame of each kind of work, as the preview measured them (see the module docstring)."""

    plan: float  # the planning pass, per frame scanned
    read: float  # a segment's decode to RGB, per frame read
    warmup: float  # the warm-up (forward branch only), per warm-up frame
    window: float  # the windows, per frame through a window (look-ahead included)
    encode: float  # the encoder, per output frame


@dataclass(frozen=True)
class Work:
    """How many frames of each kind a run processes."""

    frames: int  # output frames (= frames planned)
    read: int  # frames decoded by the segments (context included)
    warmup: int  # warm-up frames
    window: int  # frames through the model's windows (look-ahead included)
    segments: int = 1

    def seconds(self, rates: Rates) -> float:
        """The time of this work at `rates`: planning + reading + warm-up + windows + encode."""
        return (
            self.frames * (rates.plan + rates.encode)
            + self.read * rates.read
            + self.warmup * rates.warmup
            + self.window * rates.window
        )


@functools.lru_cache(maxsize=256)
def window_frames(kept: int, lookahead: int, window: int, overlap: int) -> int:
    """The frames that go through the model's windows for `kept` output frames followed by `lookahead` frames of
    look-ahead (after any warm-up), cut into windows exactly as `Upscaler.iter_batches` cuts them."""
    pending = total = 0
    for _ in range(kept + lookahead):  # the stream: a window runs as soon as enough frames are pending
        pending += 1
        if pending >= window + max(overlap, lookahead):
            total += window + overlap
            pending -= window
    left = pending - lookahead
    while left > 0:  # the end of the stream: the last windows with what look-ahead there is
        keep = min(window, left)
        total += min(pending, window + overlap)
        pending, left = pending - keep, left - keep
    return total


def segment_work(segments: list[Segment], window: int, overlap: int) -> Work:
    """The frames of each kind that running `segments` processes."""
    read = warmup = through = 0
    for segment in segments:
        read += segment.read_to - segment.read_from
        warmup += segment.start - segment.read_from
        through += window_frames(segment.frames, segment.read_to - segment.stop, window, overlap)
    return Work(sum(s.frames for s in segments), read, warmup, through, len(segments))


def full_run_work(
    num_frames: int, cuts: list[int], segment_frames: int, warmup: int, window: int, overlap: int
) -> Work:
    """The work of a full run of `num_frames` frames: its segments as `plan_segments` makes them (look-ahead =
    `overlap`, as `upscale_video` plans), counted by `segment_work`."""
    return segment_work(plan_segments(num_frames, cuts, segment_frames, warmup, overlap), window, overlap)


def projected_bytes(
    num_frames: int, result_bytes: int, result_frames: int, key_bytes: int, codec: str, other_bytes: int = 0
) -> int:
    """The output's size for `num_frames` frames, from the encoded stretch (`result_bytes` for `result_frames`
    frames) and its first frame encoded alone (`key_bytes`); see the module docstring."""
    interval = KEY_INTERVAL.get(codec, 250)
    if interval is None or result_frames < 2:
        video = num_frames * result_bytes / max(1, result_frames)
    else:
        inter = max(0.0, (result_bytes - key_bytes) / (result_frames - 1))
        keys = math.ceil(num_frames / interval)
        video = keys * key_bytes + (num_frames - keys) * inter
    return round(video + other_bytes)


def human_seconds(seconds: float) -> str:
    """'45 s', '31 min', '5.2 h', '3.1 days': a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
