"""Which frames a preview upscales: the moment (`at` / `at_frame`), the stretch from there, its context as a full run
gives it, and the planning pass over the frames up to it.

The stretch is split at the scene cuts the planning pass finds, and each part gets the warm-up and look-ahead
context a segment of a full run has (`realbasicvsr.upscale.plan.Segment`: `warmup` frames before, `overlap` after,
both inside the scene). A part is therefore computed exactly as a full run computes a segment that starts and ends
where the part does; the full run's own segments start elsewhere (every `segment_frames` frames of a scene), and
where a preview part starts inside a full-run segment the two differ by what a segment boundary changes (the
forward branch warmed up on `warmup` frames instead of the whole scene before, a different window grid): the same
small difference the segments of every long run have.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from itertools import pairwise

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.read import VideoInfo, scan
from realbasicvsr.upscale import scenes
from realbasicvsr.upscale.plan import Segment, SegmentConfig

# More than one segment of a full run is no longer a preview (and its frames are held in memory).
MAX_FRAMES = 600
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")


def parse_time(text: str | float) -> float:
    """Seconds from `83.5`, `"83.5"`, `"01:23"`, `"00:01:23.5"` ([HH:]MM:SS[.fff]); `ConfigError` otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip()
        match = _CLOCK.match(value)
        try:
            if match:
                hours, minutes, secs = match.groups()
                # 90:00 is 90 minutes, as people write it; with hours given, minutes stay below 60
                if (hours is not None and int(minutes) >= 60) or float(secs) >= 60:
                    raise ValueError(value)
                seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
            else:
                seconds = float(value)
        except ValueError:
            raise ConfigError(
                f"at must be seconds (83.5) or [HH:]MM:SS[.fff] (00:01:23), got {text!r}", option="at"
            ) from None
    if not seconds >= 0 or seconds == float("inf"):  # also refuses NaN
        raise ConfigError(f"at must be a time of 0 s or later, got {text!r}", option="at")
    return seconds


def clock(seconds: float) -> str:
    """83.5 -> '00:01:23.500'."""
    minutes, secs = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{secs:06.3f}"


def check_request(frames: int, at: str | float | None, at_frame: int | None) -> float | None:
    """The checks that need no input: the stretch length and one moment at most. Returns `at` in seconds."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ConfigError(f"frames must be 1 to {MAX_FRAMES} (a few seconds of video), got {frames!r}", option="frames")
    if at is not None and at_frame is not None:
        raise UserError("give the moment once: at (a time) or at_frame (a frame index), not both", option="at")
    if at_frame is not None and (isinstance(at_frame, bool) or not isinstance(at_frame, int) or at_frame < 0):
        raise ConfigError(f"at_frame must be a frame index >= 0, got {at_frame!r}", option="at_frame")
    return None if at is None else parse_time(at)


def first_frame(info: VideoInfo, num_frames: int, frames: int, at: float | None, at_frame: int | None) -> int:
    """The stretch's first frame: `at_frame`, the frame shown at `at` seconds, or the middle of the video; moved
    back so that `frames` frames fit before the end. Raises `UserError` for a moment past the end."""
    if at_frame is not None:
        if at_frame >= num_frames:
            raise UserError(
                f"at_frame {at_frame} is past the end: the video has {num_frames} frames (0 to {num_frames - 1})",
                option="at_frame",
            )
        start = at_frame
    elif at is not None:
        duration = num_frames / info.fps if info.fps else None
        if duration is None:
            raise UserError(f"{info.path} does not say its frame rate; give the moment as at_frame", option="at")
        if at >= duration:
            raise UserError(
                f"at {clock(at)} is past the end of the video ({clock(float(duration))}, {num_frames} frames); "
                "choose an earlier moment",
                option="at",
            )
        start = min(num_frames - 1, int(at * info.fps + 1e-9))
    else:
        start = num_frames // 2
    return max(0, min(start, num_frames - min(frames, num_frames)))


@dataclass(frozen=True)
class Planned:
    """What the planning pass learnt of the frames up to the stretch: their timestamps (for the seek), the cuts
    there, how long it took, and whether it reached the end of the video (then `frame_pts` counts every frame)."""

    frame_pts: list[int | None]
    cuts: list[int]
    seconds: float
    reached_end: bool


def plan_prefix(info: VideoInfo, stop: int | None, config: SegmentConfig, num_frames: int | None) -> Planned:
    """The full run's planning pass (`realbasicvsr.media.read.scan` + the cut detector) over frames 0 .. `stop`
    (None: all), timed: its seconds per frame are the planning cost of the projection."""
    detector = None
    if config.scenes == "auto":
        given = config.scene_sensitivity
        detector = scenes.CutDetector(scenes.SceneConfig() if given is None else scenes.SceneConfig(given))
    frame_pts: list[int | None] = []
    began = time.perf_counter()
    for pts, thumb in scan(info, scenes.THUMBNAIL_WIDTH):
        frame_pts.append(pts)
        if detector is not None:
            detector.push(thumb)
        if stop is not None and len(frame_pts) >= stop:
            break
    reached_end = stop is None or len(frame_pts) < stop
    if detector is not None:
        cuts = detector.finish()
    elif config.scenes == "off":
        cuts = []
    else:
        count = len(frame_pts) if reached_end or num_frames is None else max(num_frames, len(frame_pts))
        cuts = scenes.read_cut_list(config.scenes, count)
    return Planned(frame_pts, cuts, time.perf_counter() - began, reached_end)


def scan_stop(num_frames: int | None, first: int, frames: int, overlap: int) -> int | None:
    """How far the planning pass goes: past the stretch's look-ahead by the cut detector's delay, so that every cut
    in the context is confirmed as the full run confirms it."""
    if num_frames is None:
        return None
    return min(num_frames, first + frames + overlap + scenes.DELAY + 1)


def stretch_parts(first: int, stop: int, cuts: list[int], warmup: int, lookahead: int, known: int) -> list[Segment]:
    """The stretch `first` .. `stop` as segments: split at `cuts`, each with `warmup` / `lookahead` frames of
    context inside its scene (of the `known` frames planned), as `plan_segments` gives a segment."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < known), known]
    parts: list[Segment] = []
    for scene_start, scene_stop in pairwise(bounds):
        start, end = max(scene_start, first), min(scene_stop, stop)
        if start < end:
            parts.append(
                Segment(len(parts), start, end, max(scene_start, start - warmup), min(scene_stop, end + lookahead))
            )
    return parts
