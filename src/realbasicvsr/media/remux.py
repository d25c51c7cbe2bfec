"""Copying a source's other streams into an output video, packet by packet (audio re-encoded where asked), with
their tags and dispositions, the container's tags and the chapters."""

from __future__ import annotations

from pathlib import Path

import av

from realbasicvsr.media.preflight import StreamPlan, add_audio_encoder, plan_streams


class Remuxer:
    """Puts the source's other streams into `output`, interleaved by time: those `plan` copies packet by packet
    (audio, subtitles, cover art, further video tracks, data tracks, attachments), and the audio it re-encodes.

    Without a `plan`, one is made for `output`'s format (`media.preflight.plan_streams`: what it cannot hold raises or
    is left out). Call `mux_until` as the video goes, then `close`.
    """

    def __init__(self, source: Path, output: av.container.OutputContainer, plan: StreamPlan | None = None) -> None:
        plan = plan if plan is not None else plan_streams(source, output.format.name)
        self._input = av.open(str(source), metadata_errors="replace")  # as media.read opened it
        self._output = output
        self._map: dict[int, av.stream.Stream] = {}
        self._encoders: dict[int, av.stream.Stream] = {}
        for index in sorted(plan.copied + plan.encoded):  # in the source's order
            stream = self._input.streams[index]
            if index in plan.encoded:
                self._encoders[index] = add_audio_encoder(output, stream, plan.audio_codec)
                carry_stream_tags(stream, self._encoders[index])
            elif output.format.name == "matroska" and stream.disposition & av.stream.Disposition.attached_pic:
                _add_cover_attachment(source, stream, output)  # Matroska keeps cover art as an attachment
            else:
                self._map[index] = output.add_stream_from_template(stream)
                carry_stream_tags(stream, self._map[index])
        # Attachments (fonts, Matroska cover images) travel in the header; they have no packets.
        wanted = [self._input.streams[i] for i in (*self._map, *self._encoders)]
        wanted = [s for s in wanted if s.type != "attachment"]
        self._packets = self._input.demux(wanted) if wanted else iter(())
        self._pending: av.Packet | None = None

    def mux_until(self, seconds: float | None) -> None:
        """Mux every packet that starts before `seconds` (all that remain when None, then flush the encoders)."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            ts = packet.dts if packet.dts is not None else packet.pts
            # A packet without a time (the cover art FFmpeg puts first) goes at once.
            if seconds is not None and ts is not None and float(ts * packet.time_base) > seconds:
                self._pending = packet
                return
            index = packet.stream.index
            if index in self._encoders:
                self._encode(index, packet.decode())
            else:
                packet.stream = self._map[index]
                self._output.mux(packet)
        if seconds is None:
            for index in self._encoders:
                self._encode(index, self._input.streams[index].decode(None))
                self._output.mux(self._encoders[index].encode(None))
            self._encoders = {}

    def _encode(self, index: int, frames: list[av.AudioFrame]) -> None:
        encoder = self._encoders[index]
        for frame in frames:
            if any(c.name == "NONE" for c in frame.layout.channels):  # AVI's unordered channels: the encoder's
                frame = _relabelled(frame, encoder.layout.name)
            self._output.mux(encoder.encode(frame))

    def close(self) -> None:
        self._input.close()


def _relabelled(frame: av.AudioFrame, layout: str) -> av.AudioFrame:
    """`frame` with channels of unspecified order (as AVI stores them) labelled `layout` (same count, in order)."""
    copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=layout)
    copy.sample_rate, copy.pts, copy.time_base = frame.sample_rate, frame.pts, frame.time_base
    return copy


_COVER_MIME = {"mjpeg": ("image/jpeg", ".jpg"), "png": ("image/png", ".png"), "bmp": ("image/bmp", ".bmp")}


def _add_cover_attachment(source: Path, stream: av.stream.Stream, output: av.container.OutputContainer) -> None:
    """Matroska's muxer writes an attached picture as a one-frame video track that players do not show as cover art;
    as an image attachment it reads back as the cover (FFmpeg's demuxer makes it an attached picture again)."""
    mime, suffix = _COVER_MIME.get(stream.codec_context.name, ("image/jpeg", ".jpg"))
    with av.open(str(source), metadata_errors="replace") as container:
        packet = next((p for p in container.demux(container.streams[stream.index]) if p.size), None)
        if packet is not None:
            name = stream.metadata.get("filename") or f"cover{suffix}"
            output.add_attachment(name, stream.metadata.get("mimetype") or mime, bytes(packet))


def carry_chapters(source: Path, output: av.container.OutputContainer) -> int:
    """Copy the source's chapters (times and titles) to `output`; returns how many."""
    with av.open(str(source), metadata_errors="replace") as container:
        chapters = container.chapters()
    if chapters:
        output.set_chapters(chapters)
    return len(chapters)


# Tags that describe the old file rather than its content: the muxer writes its own.
_FILE_TAGS = {
    "encoder", "duration", "major_brand", "minor_version", "compatible_brands", "number_of_frames", "number_of_bytes",
    "bps", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc",
}  # fmt: skip


def carry_stream_tags(source: av.stream.Stream, target: av.stream.Stream) -> None:
    """Copy a stream's tags (language, title, handler...) and dispositions (default, forced, ...) to its copy."""
    for key, value in source.metadata.items():
        if key.lower() not in _FILE_TAGS and not key.lower().startswith("duration"):
            # QuickTime's track name reads back as `name`; muxers write a track's title from `title`.
            title = (
                key.lower() == "name"
                and "title" not in source.metadata
                and target.type in ("video", "audio", "subtitle")
            )
            target.metadata["title" if title else key] = value
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
