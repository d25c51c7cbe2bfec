"""Copying a source's audio and subtitle streams into an output video, packet by packet (no re-encoding)."""

from __future__ import annotations

from pathlib import Path

import av

from realbasicvsr.errors import UserError


class Remuxer:
    """Copies the source's audio and subtitle packets into `output`, untouched, interleaved by time."""

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self._input = av.open(str(source), metadata_errors="replace")  # as media.read opened it
        streams = [s for s in self._input.streams if s.type in ("audio", "subtitle")]
        self._map = {}
        for stream in streams:
            if stream.codec_context is None:  # a damaged header: FFmpeg does not know what codec this is
                message = (
                    f"the source's {stream.type} stream #{stream.index} has no codec FFmpeg knows (the file is "
                    "damaged there), so it cannot be copied; turn copy_streams off to write the video alone"
                )
                self._input.close()  # streams must not be touched after this (PyAV crashes)
                raise UserError(message, option="copy_streams")
            name = stream.codec_context.name
            if name not in output.supported_codecs:
                message = (
                    f"the source's {stream.type} stream #{stream.index} ({name}) cannot be copied into this "
                    "container; write .mkv instead (it holds any codec), or turn copy_streams off"
                )
                self._input.close()  # streams must not be touched after this (PyAV crashes)
                raise UserError(message, option="copy_streams")
            copied = output.add_stream_from_template(stream)
            carry_stream_tags(stream, copied)
            self._map[stream.index] = copied
        self._packets = self._input.demux(streams) if streams else iter(())
        self._pending: av.Packet | None = None

    def mux_until(self, seconds: float | None) -> None:
        """Mux every packet that starts before `seconds` (all that remain when None)."""
        output_container = next(iter(self._map.values())).container if self._map else None
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None and packet.pts is None:
                continue  # demuxer flush packets carry no data
            ts = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and float(ts * packet.time_base) > seconds:
                self._pending = packet
                return
            packet.stream = self._map[packet.stream.index]
            output_container.mux(packet)

    def close(self) -> None:
        self._input.close()


# Tags that describe the old file rather than its content: the muxer writes its own.
_FILE_TAGS = {
    "encoder", "duration", "major_brand", "minor_version", "compatible_brands", "number_of_frames", "number_of_bytes",
    "bps", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc",
}  # fmt: skip


def carry_stream_tags(source: av.stream.Stream, target: av.stream.Stream) -> None:
    """Copy a stream's tags (language, title, handler...) and dispositions (default, forced, ...) to its copy."""
    for key, value in source.metadata.items():
        if key.lower() not in _FILE_TAGS and not key.lower().startswith("duration"):
            target.metadata[key] = value
    target.disposition = source.disposition


def carry_file_tags(source: Path, output: av.container.OutputContainer, video: av.stream.Stream) -> None:
    """Copy the container's tags (title, artist, date, comment...) and those of the source's video stream to
    `output` and its video stream `video`."""
    with av.open(str(source), metadata_errors="replace") as container:
        for key, value in container.metadata.items():
            if key.lower() not in _FILE_TAGS:
                output.metadata[key] = value
        streams = [s for s in container.streams.video if s.codec_context is not None]
        if streams:
            carry_stream_tags(streams[0], video)
