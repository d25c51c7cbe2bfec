"""Running a preview's stretch through the `Upscaler`, timed by kind of work, into its result and wipe videos; and
the small encodes that measure a key frame and the source's other streams for the size projection.

The model's time is what the `Upscaler` spends producing its outputs (the frames are already decoded, so no
decode is in it); the warm-up is the time between the stream handing over its last warm-up frame and asking for
the next one (the `Upscaler` warms up in between). The encode of `result.*` is timed apart; the wipe video and the
bicubic pictures are the preview's own work and count nowhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from realbasicvsr.media.files import atomic_output, remove_partial, size_of, temporary_path
from realbasicvsr.media.preflight import StreamPlan
from realbasicvsr.media.read import Frame, VideoInfo
from realbasicvsr.media.write import EncodeConfig, VideoWriter
from realbasicvsr.preview import compare
from realbasicvsr.preview.projection import window_frames
from realbasicvsr.upscale.config import output_size
from realbasicvsr.upscale.plan import Segment
from realbasicvsr.upscale.windows import Upscaler

WIPE_ENCODE = EncodeConfig(codec="libx264", pix_fmt="yuv420p", crf=20, preset="fast")


@dataclass(frozen=True)
class StretchRun:
    """What running the stretch with one model measured and wrote."""

    frames: int  # output frames
    warmup_frames: int
    window_frames: int  # frames through the model's windows (look-ahead included)
    warmup_seconds: float
    window_seconds: float
    encode_seconds: float
    result_bytes: int
    key_bytes: int  # the stretch's first output frame encoded alone (a key frame and the container's header)
    first_output: Frame
    middle: np.ndarray  # the output frame in the middle of the stretch, for the comparison

    @property
    def model_seconds(self) -> float:
        return self.warmup_seconds + self.window_seconds


def frame_rate(info: VideoInfo) -> Fraction:
    """The rate the writers get (as `upscale_video` gives its writers)."""
    return Fraction(info.fps or 25).limit_denominator(1_000_000)


def run_stretch(
    upscaler: Upscaler,
    source: dict[int, Frame],
    parts: list[Segment],
    info: VideoInfo,
    encode: EncodeConfig,
    fmt: str,
    result_path: Path,
    wipe_path: Path,
    on_frame: Callable[[], None] | None = None,
) -> StretchRun:
    """Upscale each part of the stretch (its context from `source`, frames by index) as a segment, writing the
    outputs to `result_path` (the run's encoder and container) and the wipe to `wipe_path`, both starting at time
    0; each file is written atomically."""
    width, height = output_size(info.width, info.height, upscaler.options)
    first, stop = parts[0].start, parts[-1].stop
    pts0 = source[first].pts or 0
    middle_index = (first + stop - 1) // 2
    rate = frame_rate(info)
    clock = _Clock()
    outputs: list[Frame] = []  # the first output and the middle one only
    with atomic_output(result_path) as result_tmp, atomic_output(wipe_path) as wipe_tmp:
        writers: list[VideoWriter] = []
        try:
            writers.append(VideoWriter(result_tmp, fmt=fmt, width=width, height=height, source=info,
                                       settings=encode, fps=rate, copy_streams=False))  # fmt: skip
            writers.append(VideoWriter(wipe_tmp, fmt="mp4", width=width - width % 2, height=height - height % 2,
                                       source=info, settings=WIPE_ENCODE, fps=rate, copy_streams=False))  # fmt: skip
            result, wipe = writers
            for part in parts:
                for out in clock.run(upscaler, source, part):
                    shifted = replace(out, pts=None if out.pts is None else out.pts - pts0, alpha=None)
                    began = time.perf_counter()
                    result.write(shifted)
                    clock.encode += time.perf_counter() - began
                    before = compare.bicubic(source[out.index].image, (width, height))
                    position = (out.index - first + 0.5) / (stop - first)
                    wipe.write(replace(shifted, image=compare.wipe_frame(before, out.image, position)))
                    if out.index in (first, middle_index):
                        outputs.append(out)
                    if on_frame is not None:
                        on_frame()
            began = time.perf_counter()
            result.close()
            clock.encode += time.perf_counter() - began
            wipe.close()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
    frames = stop - first
    key_bytes = one_frame_bytes(outputs[0], info, encode, fmt, result_path, streams=False)
    return StretchRun(
        frames=frames,
        warmup_frames=sum(p.start - p.read_from for p in parts),
        window_frames=sum(window_frames(p.frames, p.read_to - p.stop, *_grid(upscaler)) for p in parts),
        warmup_seconds=clock.warmup,
        window_seconds=clock.model - clock.warmup,
        encode_seconds=clock.encode,
        result_bytes=size_of(result_path),
        key_bytes=key_bytes,
        first_output=outputs[0],
        middle=outputs[-1].image,
    )


def _grid(upscaler: Upscaler) -> tuple[int, int]:
    return upscaler.options.window, upscaler.options.overlap


class _Clock:
    """Seconds of model time (all of the `Upscaler`'s work on its outputs), of it the warm-up, and of encoding."""

    def __init__(self) -> None:
        self.model = self.warmup = self.encode = 0.0

    def run(self, upscaler: Upscaler, source: dict[int, Frame], part: Segment) -> Iterator[Frame]:
        """The outputs of `part` run as a segment, timed."""
        asked: list[float] = []
        warmup = part.start - part.read_from

        def stream() -> Iterator[Frame]:
            for index in range(part.read_from, part.read_to):
                asked.append(time.perf_counter())  # the Upscaler asks for frame `index` now
                yield source[index]

        outputs = upscaler.upscale(stream(), warmup=warmup, lookahead=part.read_to - part.stop)
        while True:
            began = time.perf_counter()
            frame = next(outputs, None)
            self.model += time.perf_counter() - began
            if warmup and len(asked) > warmup:  # the warm-up ran between handing frame w-1 and asking for frame w
                self.warmup += asked[warmup] - asked[warmup - 1]
                warmup = 0
            if frame is None:
                return
            yield frame


def one_frame_bytes(frame: Frame, info: VideoInfo, encode: EncodeConfig, fmt: str, like: Path, streams: bool) -> int:
    """The bytes of `frame` encoded alone (a key frame) into a temporary file beside `like`, with the source's other
    streams copied when `streams`; the file is removed."""
    height, width = frame.image.shape[:2]
    tmp = temporary_path(like)
    try:
        writer = VideoWriter(tmp, fmt=fmt, width=width, height=height, source=info, settings=encode,
                             fps=frame_rate(info), copy_streams=streams)  # fmt: skip
        try:
            writer.write(replace(frame, pts=0, alpha=None))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return size_of(tmp)
    finally:
        remove_partial(tmp)


def other_stream_bytes(
    run: StretchRun,
    info: VideoInfo,
    encode: EncodeConfig,
    fmt: str,
    like: Path,
    streams: StreamPlan | None,
    notes: list[str],
) -> int:
    """The bytes the source's other streams add to the output: a one-frame encode with them minus one without."""
    if streams is None or not (streams.copied or streams.encoded):
        return 0
    if streams.encoded:
        notes.append("the re-encoded audio's size is not measured by the preview: it is counted as copied")
    with_streams = one_frame_bytes(run.first_output, info, encode, fmt, like, streams=True)
    return max(0, with_streams - run.key_bytes)
