"""Running a plan: each segment through the model into its own piece, then the pieces stitched into the output.

A segment decodes its frames by index (a seek to its first context frame, checked against the planned
timestamps), runs the `Upscaler` with its warm-up and look-ahead context, and writes its output frames to a piece
in the work folder (`realbasicvsr.upscale.workspace`). Encoding runs in a background thread so that it overlaps
with the model. The stitch copies the pieces' packets into the output and muxes the source's audio and subtitles
once: frame-exact, no re-encode (see `realbasicvsr.media.concat`).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.media.concat import concat_pieces
from realbasicvsr.media.files import remove_partial, temporary_path
from realbasicvsr.media.preflight import StreamPlan
from realbasicvsr.media.read import Frame, MediaKind, VideoInfo, read_frames
from realbasicvsr.media.write import WRITE_ERRORS, FrameWriter
from realbasicvsr.upscale.plan import Plan, Segment
from realbasicvsr.upscale.windows import Upscaler
from realbasicvsr.upscale.workspace import WorkFolder


def run_segments(
    upscaler: Upscaler,
    info: VideoInfo,
    plan: Plan,
    group: list[Segment],
    work: WorkFolder,
    make_writer: Callable[[Path], FrameWriter],
    on_frame: Callable[[], None] | None = None,
) -> None:
    """Upscale segments of one shape (`shape`) side by side in one batch, each into its piece, and mark each
    finished (a piece is durable before its marker). A group of one is the plain case."""
    first = group[0]
    if any(shape(s) != shape(first) for s in group):
        raise ValueError("segments run side by side must have the same warm-up, length and look-ahead")
    tmps = [temporary_path(work.piece(s)) for s in group]
    streams = [read_frames(info, s.read_from, s.read_to, plan.frame_pts) for s in group]
    outputs = upscaler.upscale_side_by_side(
        streams, warmup=first.start - first.read_from, lookahead=first.read_to - first.stop
    )
    writers: list[FrameWriter] = []
    streaming = False  # from then on, write_stream aborts the writers itself on a failure
    try:
        writers.extend(make_writer(tmp) for tmp in tmps)
        streaming = True
        written = write_stream(outputs, _SideBySide(writers), on_frame)
        if written != first.frames:  # pragma: no cover - a bug guard: never ship a short output silently
            raise RuntimeError(f"segment {first.index} wrote {written} frames, the plan has {first.frames}")
        for segment, tmp in zip(group, tmps, strict=True):
            work.finish(segment, tmp)
    except BaseException:
        if not streaming:
            for writer in writers:
                writer.abort()
        for tmp in tmps:
            remove_partial(tmp)
        raise


def shape(segment: Segment) -> tuple[int, int, int]:
    """(warm-up, output frames, look-ahead): segments of one shape can run side by side in one batch."""
    return segment.start - segment.read_from, segment.frames, segment.read_to - segment.stop


class _SideBySide:
    """One `FrameWriter` face on the writers of segments run side by side: writes the i-th frame of each list to
    the i-th writer."""

    def __init__(self, writers: list[FrameWriter]) -> None:
        self.writers = writers

    @property
    def frames_written(self) -> int:
        return min(w.frames_written for w in self.writers)

    def write(self, frames: list[Frame]) -> None:
        for writer, frame in zip(self.writers, frames, strict=True):
            writer.write(frame)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def write_stream(frames: Iterable[Frame], writer: FrameWriter, on_frame: Callable[[], None] | None = None) -> int:
    """Feed `frames` (computed lazily, by the model) into `writer` on a background thread; close the writer at the
    end (abort it on any error, which is raised here). Returns the number of frames written."""
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
    completed = False
    try:
        for frame in frames:
            if failure:
                break
            pending.put(frame)
            if on_frame is not None:
                on_frame()
        completed = not failure
    finally:
        pending.put(finish if completed else abort)
        thread.join()
        if not completed or failure:
            writer.abort()
    if failure:
        raise failure[0]
    return writer.frames_written


def stitch(plan: Plan, work: WorkFolder, kind: MediaKind, target: Path, info: VideoInfo, fmt: str | None,
           copy_streams: bool | StreamPlan) -> int:  # fmt: skip
    """Join the finished pieces of `plan` into `target` (a temporary name of the output); returns the frames joined.
    `copy_streams`: the pre-flight's plan of the source's other streams (or False: none of them).
    The pieces stay as they are, so a stitch that is interrupted is simply done again."""
    pieces = [work.piece(s) for s in plan.segments]
    if kind == "video":
        assert fmt is not None
        count = concat_pieces(pieces, target, fmt, info, copy_streams)
    elif kind == "folder":
        target.mkdir()
        count = 0
        for piece in pieces:
            for frame in sorted(piece.iterdir()):
                os.link(frame, target / frame.name)  # a second name, not a move: the piece stays whole
                count += 1
    else:
        (piece,) = pieces
        os.link(piece, target)
        count = 1
    if count != plan.num_frames:
        raise UserError(
            f"the finished pieces in {work.path} hold {count} frames, the plan {plan.num_frames}; they were damaged "
            "or changed: use --overwrite to start the run again"
        )
    return count


def batch_groups(segments: list[Segment], size: int) -> Iterator[list[Segment]]:
    """`segments` (in processing order) in groups of up to `size` of one shape, each group led by the next segment
    in order, so that a worker still works roughly front to back."""
    pending = list(segments)
    while pending:
        lead = pending.pop(0)
        group = [lead, *[s for s in pending if shape(s) == shape(lead)][: size - 1]]
        pending = [s for s in pending if s not in group]
        yield group


def processing_order(segments: list[Segment], rank: int, world: int) -> Iterator[Segment]:
    """This worker's share first (every `world`-th segment from `rank`), then the others': a worker that is done
    early takes segments nobody has started (each is taken under its lock), so no process idles at the end."""
    own = [s for s in segments if s.index % world == rank]
    yield from own
    yield from (s for s in segments if s.index % world != rank)
