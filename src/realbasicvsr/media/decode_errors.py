"""Damaged video input: the frames FFmpeg concealed errors in, the ones it could not decode at all, and the policy.

How damage surfaces in PyAV 18 (read from its source, `av/frame.py`, `av/codec/context.py`): a decoder that
meets damaged picture data conceals it (FFmpeg's error concealment, on by default) and still outputs the frame,
flagged `VideoFrame.is_corrupt` (`decode_error_flags` or `AV_FRAME_FLAG_CORRUPT`); a packet it cannot decode at
all makes `avcodec_send_packet` fail, which PyAV raises (`av.error.InvalidDataError`), and that frame never comes
out, while the stream goes on with the next packet. A container that cannot be read further raises from the demuxer.

The policy (`OnError`): under "conceal" (what `upscale` does by default) a concealed frame is kept as FFmpeg made
it, and a frame that did not decode is replaced by the frame before it, at its own timestamp, so the video keeps
its length and its sync with the audio; one `DamagedInputWarning` per read counts them, with their timestamps.
Under "stop" the first of them ends the read with a `UserError` naming the frame and the fix.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from realbasicvsr.errors import UserError

if TYPE_CHECKING:  # PyAV is imported where frames are decoded: `upscale.config` takes the policy names from here
    import av

OnError = Literal["stop", "conceal"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("stop", "conceal")
Damage = Literal["concealed", "undecodable", "unreadable"]
# Timestamps listed in the warning; the rest are counted.
LISTED = 5


class DamagedInputWarning(RuntimeWarning):
    """A video had damaged frames that were concealed or replaced (the policy "conceal")."""


@dataclass(frozen=True)
class Decoded:
    """A frame of the decode in presentation order. `damage` says what was wrong with it: "concealed" (FFmpeg
    concealed errors in it), "undecodable" (the decoder refused its packet: `frame` is a neighbour's picture at
    this frame's timestamp; `borrowed` when no frame came before, so it is the next one's), or "unreadable" (the
    container cannot be read from here: `frame` is None and nothing follows)."""

    frame: av.VideoFrame | None
    pts: int | None
    damage: Damage | None = None
    detail: str = ""
    borrowed: bool = False


def decode_with_damage(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[Decoded]:
    """Every frame FFmpeg's default decode gives (edit lists applied: packets the demuxer flags `is_discard` are
    decoded as references and show nothing), in presentation order, with a stand-in for each packet the decoder
    refused. A refused packet's frame would have had the packet's timestamp, so its stand-in goes where that
    timestamp falls among the decoded frames (a reordering decoder outputs them later than it reads them)."""
    import av

    previous: av.VideoFrame | None = None
    refused: list[tuple[float, int | None, str]] = []  # (sort key, pts, FFmpeg's message), sorted by pts
    held: list[tuple[int | None, str]] = []  # stand-ins refused before any frame decoded: they borrow the next one

    def stand_ins(before: float) -> Iterator[Decoded]:
        """The stand-ins of refused frames due before a decoded frame at `before` (those without a timestamp are
        due at once; `inf`: all)."""
        while refused and (refused[0][1] is None or refused[0][0] < before):
            _, pts, detail = refused.pop(0)
            if previous is None:
                held.append((pts, detail))
            else:
                yield Decoded(previous, pts, "undecodable", detail)

    def decoded(frames: list[av.VideoFrame]) -> Iterator[Decoded]:
        nonlocal previous
        for frame in frames:
            if frame.pts is not None:
                # It came out after all (a packet of several slices, one refused): no stand-in for it.
                refused[:] = [r for r in refused if r[1] != frame.pts]
            yield from stand_ins(frame.pts if frame.pts is not None else float("-inf"))
            for pts, detail in held:
                yield Decoded(frame, pts, "undecodable", detail, borrowed=True)
            held.clear()
            previous = frame
            yield Decoded(frame, frame.pts, "concealed" if frame.is_corrupt else None)

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets, None)
        except av.error.FFmpegError as error:  # the container is unreadable from here on: keep what decoded
            yield from decoded(_flush(stream))
            yield from stand_ins(float("inf"))
            yield Decoded(None, None, "unreadable", _text(error))
            return
        if packet is None:
            break
        try:
            frames = stream.decode(packet)  # an empty packet (the demuxer's last) flushes the decoder
        except av.error.FFmpegError as error:
            frames = []
            if packet.size and not packet.is_discard:  # a hidden frame (edit list) is not shown anyway
                pts = packet.pts if packet.pts is not None else packet.dts
                key = float("-inf") if pts is None else pts  # no timestamp: due before the next frame
                bisect.insort(refused, (key, pts, _text(error)), key=lambda r: r[0])
        yield from decoded(frames)
    yield from stand_ins(float("inf"))


def _flush(stream: av.video.stream.VideoStream) -> list[av.VideoFrame]:
    import av

    try:
        return stream.decode(None)
    except av.error.FFmpegError:
        return []  # the frames still buffered are lost with the rest of the file


def _text(error: av.error.FFmpegError) -> str:
    return error.strerror or str(error)


@dataclass
class DamageReport:
    """The damaged frames one read met, under `policy`: `record` raises the one-line error under "stop";
    `warn` issues one `DamagedInputWarning` that counts them under "conceal"."""

    path: Path
    policy: OnError
    time_base: Fraction | None
    fps: Fraction | None
    concealed: list[float] = field(default_factory=list)
    replaced: list[float] = field(default_factory=list)
    unreadable: str | None = None

    def seconds(self, pts: int | None, index: int) -> float:
        if pts is not None and self.time_base:
            return float(pts * self.time_base)
        return float(index / self.fps) if self.fps else float(index)

    def record(self, item: Decoded, index: int, pts: int | None) -> None:
        """Note `item`'s damage (frame `index` at `pts`); under "stop", raise instead."""
        seconds = self.seconds(pts, index)
        if self.policy == "stop":
            raise UserError(self._stop_message(item, index, seconds), option="on_error")
        if item.damage == "concealed":
            self.concealed.append(seconds)
        elif item.damage == "undecodable":
            self.replaced.append(seconds)
        else:
            self.unreadable = f"after frame {index} (at {seconds:.3f} s: {item.detail})"

    def _stop_message(self, item: Decoded, index: int, seconds: float) -> str:
        where = f"{self.path}: frame {index} (at {seconds:.3f} s)"
        if item.damage == "concealed":
            problem = f"{where} has corrupted picture data (FFmpeg concealed the errors)"
        elif item.damage == "undecodable":
            problem = f"{where} cannot be decoded ({item.detail}): the stream is corrupted there"
        else:
            problem = f"{self.path} cannot be read after frame {index} (at {seconds:.3f} s: {item.detail})"
        cut = ", or cut the video before that point" if index else ""
        return (
            f"{problem}; set on_error to 'conceal' to upscale it anyway (FFmpeg's concealment is kept, a frame that "
            f"does not decode repeats the one before it){cut}"
        )

    def message(self) -> str | None:
        """The warning's text, or None when nothing was damaged."""
        parts = []
        if self.concealed:
            parts.append(f"{len(self.concealed)} with damaged picture data that FFmpeg concealed, kept as it "
                         f"concealed them ({_times(self.concealed)})")  # fmt: skip
        if self.replaced:
            parts.append(f"{len(self.replaced)} that could not be decoded, each replaced by the frame before it "
                         f"({_times(self.replaced)})")  # fmt: skip
        if not parts and self.unreadable is None:
            return None
        text = f"{self.path}: {len(self.concealed) + len(self.replaced)} damaged frame(s): {'; '.join(parts)}"
        if self.unreadable is not None:
            text += f"; the file cannot be read {self.unreadable}, so the video ends there"
        return text + "; the video keeps its length and timing (set on_error to 'stop' to refuse damaged input)"

    def warn(self) -> None:
        text = self.message()
        if text is not None:
            warnings.warn(text, DamagedInputWarning, stacklevel=3)


def _times(seconds: list[float]) -> str:
    listed = ", ".join(f"{s:.3f}" for s in seconds[:LISTED])
    more = len(seconds) - LISTED
    return f"at {listed} s" + (f" and {more} more" if more > 0 else "")
