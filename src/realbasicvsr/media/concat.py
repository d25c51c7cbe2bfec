"""Joining encoded video pieces into one file without re-encoding, with the source's audio and subtitles muxed once.

Each piece is a video file that `VideoWriter` wrote for a run of consecutive frames, with the same encoder settings
and each frame's source timestamp, and without other streams. Its packets are copied as they are (each piece starts
with a keyframe, as every encode does), so the output's frames are exactly the pieces' frames, in order, and its
timestamps are the source's. The audio and subtitles come from the source in one pass, never cut per piece.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av

from realbasicvsr.media.read import VideoInfo
from realbasicvsr.media.remux import Remuxer
from realbasicvsr.media.write import MAX_REORDER_FRAMES, plausible_dts


def concat_pieces(pieces: list[Path], target: Path, fmt: str, source: VideoInfo, copy_streams: bool) -> int:
    """Write the video packets of `pieces` in order to `target` (container `fmt`), with the source's audio and
    subtitle streams when `copy_streams`; returns the number of video packets (one per frame)."""
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
        remux = Remuxer(source.path, output) if copy_streams and source.kind == "video" else None
        if remux is not None:
            stack.callback(remux.close)
        rate = Fraction(template.average_rate or template.guessed_rate or 25)
        span = max(1, round(MAX_REORDER_FRAMES / (rate * Fraction(template.time_base))))
        last_dts: int | None = None
        count = 0
        for piece in pieces:
            with av.open(str(piece), metadata_errors="replace") as container:
                video = container.streams.video[0]
                if video.time_base != template.time_base:  # pragma: no cover - all pieces come from one writer
                    raise RuntimeError(f"{piece} has time base {video.time_base}, the first piece {template.time_base}")
                for packet in container.demux(video):
                    if packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    packet.dts = plausible_dts(packet.pts, packet.dts, last_dts, span)
                    last_dts = packet.dts
                    if remux is not None and packet.dts is not None:
                        remux.mux_until(float(packet.dts * packet.time_base))
                    packet.stream = stream
                    output.mux(packet)
                    count += 1
        if remux is not None:
            remux.mux_until(None)
    return count
