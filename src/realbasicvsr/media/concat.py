"""Joining encoded video pieces into one file without re-encoding, with the source's other streams muxed once.

Each piece is a video file that `VideoWriter` wrote for a run of consecutive frames, with the same encoder settings
and each frame's source timestamp, and without other streams. Its packets are copied as they are (each piece starts
with a keyframe, as every encode does), so the output's frames are exactly the pieces' frames, in order, and its
timestamps are the source's. The audio, subtitles and other streams come from the source in one pass, never cut
per piece; the chapters and tags with them.
"""

from __future__ import annotations

import contextlib
from itertools import pairwise
from pathlib import Path

import av

from realbasicvsr.media.preflight import StreamPlan, plan_streams
from realbasicvsr.media.read import VideoInfo
from realbasicvsr.media.remux import Remuxer, carry_chapters, carry_file_tags


def concat_pieces(
    pieces: list[Path], target: Path, fmt: str, source: VideoInfo, copy_streams: bool | StreamPlan = True
) -> int:
    """Write the video packets of `pieces` in order to `target` (container `fmt`) with the source's chapters and,
    when `copy_streams`, its other streams (audio, subtitles, cover art, further tracks); returns the number of
    video packets (one per frame). `copy_streams` may be the pre-flight's `StreamPlan` (which streams, re-encoded
    audio); True makes one here (`media.preflight.plan_streams`), False keeps the chapters and tags only."""
    if not pieces:
        raise ValueError("no pieces to join")
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(av.open(str(pieces[0]), metadata_errors="replace"))
        template = first.streams.video[0]
        output = stack.enter_context(av.open(str(target), "w", format=fmt))
        stream = output.add_stream_from_template(template)
        stream.time_base = template.time_base
        if template.average_rate:  # not part of the copied codec parameters; players and probes read it
            stream.codec_context.framerate = template.average_rate
        remux = None
        if source.kind == "video":
            carry_file_tags(source.path, output, stream)
            plan = (
                copy_streams
                if isinstance(copy_streams, StreamPlan)
                else plan_streams(source.path, fmt, "copy", copy_streams)
            )
            if plan.chapters:
                carry_chapters(source.path, output)
            if plan.timecode and not any(k.lower() == "timecode" for k in stream.metadata):
                stream.metadata["timecode"] = plan.timecode  # the mp4/mov muxers write the timecode track from it
            if plan.copied or plan.encoded:
                remux = stack.enter_context(contextlib.closing(Remuxer(source.path, output, plan)))
        decode_times = iter(_decode_times(pieces))
        count = 0
        for piece in pieces:
            with av.open(str(piece), metadata_errors="replace") as container:
                video = container.streams.video[0]
                if video.time_base != template.time_base:  # pragma: no cover - all pieces come from one writer
                    raise RuntimeError(f"{piece} has time base {video.time_base}, the first piece {template.time_base}")
                for packet in container.demux(video):
                    if packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    packet.dts = next(decode_times)
                    if remux is not None and packet.dts is not None:
                        remux.mux_until(float(packet.dts * packet.time_base))
                    packet.stream = stream
                    output.mux(packet)
                    count += 1
        if remux is not None:
            remux.mux_until(None)
    return count


def _video_timestamps(pieces: list[Path]) -> list[tuple[int | None, int | None]]:
    """(pts, dts) of every video packet of the pieces, in order (a demux only: no decoding)."""
    stamps = []
    for piece in pieces:
        with av.open(str(piece), metadata_errors="replace") as container:
            stamps += [(p.pts, p.dts) for p in container.demux(container.streams.video[0]) if p.size]
    return stamps


def _decode_times(pieces: list[Path]) -> list[int | None]:
    """Decode times for the joined packets: the encoders' own when they are valid for the whole stream (present,
    increasing, never after a packet's presentation time), else the latest valid ones.

    Each piece's encoder chose its decode times alone: a piece shorter than the encoder's reorder delay (x265)
    starts before the previous piece ends, and Matroska stores none for the first packets. The latest valid
    sequence sets each packet's time to the earliest presentation time from it on (it must be decoded by then),
    one tick before the next packet's at most, working back from the end.
    """
    stamps = _video_timestamps(pieces)
    given = [dts for _, dts in stamps]
    if all(pts is not None for pts, _ in stamps):
        valid = all(d is not None and d <= p for p, d in stamps) and all(a < b for a, b in pairwise(given))
        if valid:
            return given
        times: list[int] = [0] * len(stamps)
        later = None
        for k in range(len(stamps) - 1, -1, -1):
            pts = stamps[k][0]
            earliest = pts if later is None else min(pts, later)
            later = earliest
            times[k] = earliest if k == len(stamps) - 1 else min(earliest, times[k + 1] - 1)
        return times
    return given
