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
            self._map[stream.index] = output.add_stream_from_template(stream)
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
