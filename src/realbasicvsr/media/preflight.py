"""Pre-flight: what of the source besides its video reaches the output, decided before the first frame is upscaled.

Every stream but the one upscaled is tried in a throwaway in-memory file of the output's format: its header, its
first packet and the trailer (some muxers refuse a stream only there: the mp4 muxer takes the header of stereo PCM
from an AVI and refuses its channel layout when it writes the index). What fails there would fail at the stitch,
after all the model work, so it is known now:

- audio and subtitles the user asked to keep that do not fit raise a `UserError` naming the containers that hold
  them (and, for audio, the encoder that fits: `audio_codec`);
- cover art, further video tracks, data/timecode tracks, attachments and chapters that do not fit are left out and
  named in one warning line (`StreamPlan.warning`).

Two tracks are not copied as tracks: a QuickTime timecode track goes as the output video's `timecode` tag (the
mp4/mov muxers write the track again from it), and an mp4/mov chapter track goes as the chapters. `check_space`
bounds the bytes a run writes against the free space of the output's disk. `preflight_video` runs it all for
`upscale_video`; what each container keeps is tabled in docs/containers.md.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import human_bytes
from realbasicvsr.media.read import VideoInfo, main_video_stream

AudioCodec = Literal["copy", "aac", "opus"]
AUDIO_CODECS: tuple[str, ...] = ("copy", "aac", "opus")
# audio_codec -> the FFmpeg encoder; bit rates per channel that are transparent for most listeners.
AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}
AUDIO_BITRATE_PER_CHANNEL = {"aac": 96_000, "opus": 64_000}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
OPUS_RATES = (48000, 24000, 16000, 12000, 8000)  # the only sample rates Opus codes
EXTENSIONS = {"mp4": ".mp4", "matroska": ".mkv", "mov": ".mov", "webm": ".webm"}
# Formats whose muxer writes chapters (measured by a round trip, docs/containers.md).
CHAPTER_FORMATS = frozenset({"mp4", "mov", "matroska", "webm"})
# Formats that keep cover art (an attached picture): mp4 as its `covr` tag, Matroska as an image attachment.
COVER_FORMATS = frozenset({"mp4", "matroska"})
# How far the trial looks for each stream's first packet: a subtitle may start late, a data track never.
TRIAL_PACKETS = 5000


@dataclass(frozen=True)
class StreamPlan:
    """What the output gets of the source's other streams: `copied` packet by packet and `encoded` (audio, with
    `audio_codec`), by source stream index; `chapters` whether the chapters go; `dropped` what the output's
    container cannot hold (described for the warning)."""

    fmt: str
    copied: tuple[int, ...] = ()
    encoded: tuple[int, ...] = ()
    audio_codec: str = "copy"  # an `AudioCodec`
    chapters: bool = False
    dropped: tuple[str, ...] = ()
    holders: tuple[str, ...] = ()  # extensions that would hold what is dropped
    # A QuickTime timecode track is not copied: its start goes as the output video's `timecode` tag, from which the
    # mp4/mov muxers write the track again and Matroska keeps the tag.
    timecode: str | None = None

    def warning(self) -> str | None:
        """One line naming what is left out and why, or None when everything is kept."""
        if not self.dropped:
            return None
        fix = f"write {_either(self.holders)} to keep them" if self.holders else "no other container keeps them"
        return f"{_ext(self.fmt)} cannot hold the source's {', '.join(self.dropped)}: they are left out ({fix})"


def main_video_index(container: av.container.InputContainer) -> int | None:
    """The index of the video stream that is upscaled (`media.read.main_video_stream`), None when there is none."""
    stream = main_video_stream(container)
    return None if stream is None else stream.index


def describe(stream: av.stream.Stream) -> str:
    """'the PCM audio stream #1 (pcm_s16le)', 'cover art #2 (mjpeg)', 'timecode track #3 (tmcd)' ..."""
    if stream.type == "attachment":
        return f"attachment #{stream.index} ({stream.metadata.get('filename', 'unnamed')!r})"
    codec = stream.codec_context.name if stream.codec_context is not None else stream.name or _data_kind(stream)
    role = _role(stream)
    if role == "audio stream" and codec.startswith("pcm_"):
        role = "PCM audio stream"
    title = stream.metadata.get("title") or stream.metadata.get("name")
    return f"{role} #{stream.index} ({codec}{', ' + repr(title) if title else ''})"


def _data_kind(stream: av.stream.Stream) -> str:
    """'tmcd' for a QuickTime timecode track (its data stream has no codec FFmpeg names), else 'data'."""
    timecode = "timecode" in stream.metadata or stream.metadata.get("handler_name") == "TimeCodeHandler"
    return "tmcd" if timecode else "data"


def _role(stream: av.stream.Stream) -> str:
    if stream.type == "video":
        return "cover art" if stream.disposition & av.stream.Disposition.attached_pic else "video track"
    if stream.type == "data":
        return "timecode track" if _data_kind(stream) == "tmcd" else "data track"
    return f"{stream.type} stream" if stream.type in ("audio", "subtitle") else str(stream.type)


def plan_streams(source: Path, fmt: str, audio_codec: str = "copy", copy_streams: bool = True) -> StreamPlan:
    """Decide, by trial muxes, what of `source` besides its upscaled video goes into a `fmt` output (see the module
    docstring); raises `UserError` for audio or subtitles the output cannot hold."""
    if audio_codec not in AUDIO_CODECS:
        raise UserError(
            f"unknown audio_codec {audio_codec!r}; use one of {', '.join(AUDIO_CODECS)}", option="audio_codec"
        )
    if audio_codec != "copy":
        _check_encoder(audio_codec)
    with av.open(str(source), metadata_errors="replace") as container:
        chapters = bool(container.chapters())
        main = main_video_index(container)
        streams = [s for s in container.streams if s.index != main] if copy_streams else []
        for stream in streams:
            if stream.type in ("audio", "subtitle") and stream.codec_context is None:
                raise UserError(
                    f"the source's {stream.type} stream #{stream.index} has no codec FFmpeg knows (the file is "
                    "damaged there), so it cannot be copied; turn copy_streams off to write the video alone",
                    option="copy_streams",
                )
        timecodes = [s for s in streams if s.type == "data" and _data_kind(s) == "tmcd" and "timecode" in s.metadata]
        # QuickTime's chapter track (the chapter titles as text; FFmpeg reads it as bin_data) goes as chapters.
        chapter_tracks = [s for s in streams if chapters and s.type == "data" and s.name == "bin_data"]
        streams = [s for s in streams if s not in timecodes and s not in chapter_tracks]
        first = _first_packets(container, streams)
        copied: list[int] = []
        encoded: list[int] = []
        dropped: list[str] = []
        failed: list[tuple[av.stream.Stream, av.Packet | None, str | bool]] = []
        for stream in streams:
            encode = stream.type == "audio" and audio_codec != "copy"
            error = _fits(fmt, (stream, first.get(stream.index), encode and audio_codec))
            if error is None:
                (encoded if encode else copied).append(stream.index)
            elif stream.type in ("audio", "subtitle"):
                raise _refusal(stream, fmt, audio_codec if encode else "copy", first.get(stream.index))
            else:
                dropped.append(describe(stream))
                failed.append((stream, first.get(stream.index), False))
        kept = [
            (s, first.get(s.index), s.index in encoded and audio_codec) for s in streams if s.index in copied + encoded
        ]
        error = _trial(fmt, kept) if kept else None
        if error is not None:  # each fits alone but not together: rare; say it now rather than at the stitch
            raise UserError(
                f"the source's other streams cannot be copied together into {_ext(fmt)} ({error}); write .mkv, or "
                "turn copy_streams off",
                option="copy_streams",
            )
        keep_chapters = chapters and fmt in CHAPTER_FORMATS
        if chapters and not keep_chapters:
            dropped.append(f"{len(container.chapters())} chapters")
        holders = tuple(
            _ext(other)
            for other in EXTENSIONS
            if other != fmt and failed and all(_fits(other, f) is None for f in failed)
        )
    timecode = timecodes[0].metadata["timecode"] if timecodes else None
    return StreamPlan(fmt, tuple(copied), tuple(encoded), audio_codec, keep_chapters, tuple(dropped), holders, timecode)


def _ext(fmt: str) -> str:
    return EXTENSIONS.get(fmt, fmt)


def _either(names: list[str] | tuple[str, ...]) -> str:
    """'.mkv', '.mkv or .mov', '.mkv, .mov or .mp4'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_encoder(audio_codec: str) -> None:
    try:
        av.codec.Codec(AUDIO_ENCODERS[audio_codec], "w")
    except av.error.FFmpegError as error:  # pragma: no cover - depends on the FFmpeg build
        other = "opus" if audio_codec == "aac" else "aac"
        raise UserError(
            f"this FFmpeg build has no {AUDIO_ENCODERS[audio_codec]} encoder; use audio_codec={other!r}",
            option="audio_codec",
        ) from error


def _refusal(stream: av.stream.Stream, fmt: str, audio_codec: str, packet: av.Packet | None) -> UserError:
    """The error for an audio or subtitle stream `fmt` cannot hold, with the containers (and encoders) that fit."""
    encode = stream.type == "audio" and audio_codec != "copy"
    holders = [
        _ext(f)
        for f in ("matroska", "mov", "mp4")
        if f != fmt and _trial(f, [(stream, packet, encode and audio_codec)]) is None
    ]
    where = f"write {_either(holders)} instead" if holders else "no container here holds it"
    if encode:
        fits = [c for c in AUDIO_ENCODERS if c != audio_codec and _trial(fmt, [(stream, packet, c)]) is None]
        fix = f"use audio_codec={fits[0]!r}" if fits else where
        return UserError(
            f"the {describe(stream)} re-encoded as {audio_codec} cannot be stored in {_ext(fmt)}: {fix}",
            option="audio_codec",
        )
    what = "the " + describe(stream)
    if stream.type == "audio":
        fits = [c for c in AUDIO_ENCODERS if _trial(fmt, [(stream, packet, c)]) is None]
        fix = f"{where}, or pass audio_codec={fits[0]!r}" if fits else where
        return UserError(f"{what} cannot be copied into {_ext(fmt)}: {fix}", option="audio_codec")
    return UserError(
        f"{what} cannot be copied into {_ext(fmt)}: {where}, or turn copy_streams off", option="copy_streams"
    )


def _first_packets(container: av.container.InputContainer, streams: list[av.stream.Stream]) -> dict[int, av.Packet]:
    """The first packet with data of each of `streams` (within `TRIAL_PACKETS` packets; a demux, no decoding)."""
    wanted = {s.index for s in streams if s.type != "attachment"}
    found: dict[int, av.Packet] = {}
    if not wanted:
        return found
    for count, packet in enumerate(container.demux([s for s in streams if s.index in wanted])):
        if packet.size and packet.stream.index not in found:
            found[packet.stream.index] = packet
        if found.keys() >= wanted or count >= TRIAL_PACKETS:
            break
    return found


def _fits(fmt: str, entry: tuple[av.stream.Stream, av.Packet | None, str | bool]) -> str | None:
    """Why `fmt` cannot hold the stream of `entry` (see `_trial`), or None."""
    if entry[0].disposition & av.stream.Disposition.attached_pic and fmt not in COVER_FORMATS:
        return "no cover art in this format"  # the mov muxer takes the picture and writes nothing (measured)
    return _trial(fmt, [entry])


def _trial(fmt: str, entries: list[tuple[av.stream.Stream, av.Packet | None, str | bool]]) -> str | None:
    """Mux `entries` (stream, its first packet or None, the audio_codec it is re-encoded with or False) into a
    throwaway in-memory `fmt` file, header to trailer; None when the muxer took it all, else its complaint."""
    output = av.open(io.BytesIO(), "w", format=fmt)
    try:
        pairs: list[tuple[av.stream.Stream, av.Packet | None]] = []
        for stream, packet, codec in entries:
            if codec:
                pairs.append((add_audio_encoder(output, stream, codec), None))
            else:
                copy = output.add_stream_from_template(stream)
                copy.disposition = stream.disposition
                pairs.append((copy, packet))
        output.start_encoding()
        for target, packet in pairs:
            for out_packet in _trial_packets(target, packet):
                output.mux(out_packet)
        output.close()
    except (ValueError, av.error.FFmpegError) as error:  # ValueError: the format has no tag for this codec
        _close_quietly(output)
        return " ".join(str(error).split())
    return None


def _trial_packets(target: av.stream.Stream, packet: av.Packet | None) -> Iterator[av.Packet]:
    if packet is not None:
        trial = av.Packet(bytes(packet))
        trial.pts, trial.dts, trial.time_base = packet.pts, packet.dts, packet.time_base
        trial.is_keyframe = packet.is_keyframe
        trial.stream = target
        yield trial
    elif target.type == "audio" and target.codec_context is not None and target.codec_context.is_encoder:
        ctx = target.codec_context
        silence = av.AudioFrame(format=ctx.format.name, layout=ctx.layout.name, samples=ctx.frame_size or 1024)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate, silence.pts = ctx.sample_rate, 0
        yield from target.encode(silence)
        yield from target.encode(None)


def _close_quietly(output: av.container.OutputContainer) -> None:
    with contextlib.suppress(av.error.FFmpegError, ValueError):  # the verdict is taken; a refused file can fail again
        output.close()


def add_audio_encoder(
    output: av.container.OutputContainer, source: av.stream.Stream, audio_codec: str
) -> av.stream.Stream:
    """An audio stream of `output` that encodes `source`'s sound with `audio_codec` (same channels; the same sample
    rate where the codec has it, else 48 kHz), at `AUDIO_BITRATE_PER_CHANNEL`."""
    ctx = source.codec_context
    rate = ctx.sample_rate or 48000
    if audio_codec == "opus" and rate not in OPUS_RATES:
        rate = 48000
    stream = output.add_stream(AUDIO_ENCODERS[audio_codec], rate=rate)
    channels = ctx.layout.nb_channels or 2
    # A layout of unspecified order ("2 channels", as AVI stores it) becomes FFmpeg's default one of that count.
    unordered = any(c.name == "NONE" for c in ctx.layout.channels)
    stream.layout = _DEFAULT_LAYOUTS.get(channels, "stereo") if unordered else ctx.layout.name
    stream.bit_rate = AUDIO_BITRATE_PER_CHANNEL[audio_codec] * min(channels, 8)
    return stream


# Rough sizes for the space check, in bits per output pixel per frame: a CRF encode of upscaled footage stays well
# under 0.25 (x264 CRF 18 at 1080p30 is typically 4-10 Mbit/s, 0.06-0.16); lossless (FFV1, x264 qp 0) about half of
# raw 8-bit RGB. Chosen as bounds, not measured per clip.
LOSSY_BITS_PER_PIXEL = 0.25
LOSSLESS_BITS_PER_PIXEL = 12.0


def space_needed(frames: int, width: int, height: int, lossless: bool, deep: bool, source_bytes: int) -> int:
    """A rough upper bound of the bytes a run writes at its peak: the pieces and the stitched output exist together
    until the pieces go (2x the video), plus the other streams (bounded by the source's size)."""
    bits = LOSSLESS_BITS_PER_PIXEL * (2 if deep else 1) if lossless else LOSSY_BITS_PER_PIXEL
    video = frames * width * height * bits / 8
    return int(2 * video + source_bytes)


def check_space(target: Path, needed: int) -> None:
    """Before any work: refuse when the disk of `target` has less than a quarter of `needed` bytes (a rough upper
    bound, so such a run would surely fill it), warn in one line when it has less than `needed` (it may fill it;
    finished segments are kept and --resume goes on)."""
    folder = target.parent if target.parent.exists() else Path.cwd()
    free = shutil.disk_usage(folder).free
    if free >= needed:
        return
    estimate = f"writing {target} needs up to about {human_bytes(needed)} (the pieces and the output, a rough bound)"
    if free < needed / 4:
        raise UserError(
            f"{estimate} but {folder} has {human_bytes(free)} free; free some space or write the output to another disk"
        )
    message = (
        f"{estimate} and {folder} has {human_bytes(free)} free: the disk may fill up; finished segments are kept, "
        "so after freeing space the run can be resumed (set resume)"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def preflight_video(
    source: VideoInfo,
    output: Path,
    fmt: str,
    *,
    copy_streams: bool,
    audio_codec: str,
    size: tuple[int, int],
    lossless: bool,
    check_disk: bool = True,
) -> StreamPlan | None:
    """The checks of a video output that need no model, before the first frame: what of the source's other streams
    the output gets (`plan_streams`; what it cannot hold is warned about in one line, audio or subtitles that do
    not fit raise) and whether the disk has room (`check_space`, when `check_disk`). Returns the stream plan for
    the stitch (None for an image or folder source, which has no other streams)."""
    if audio_codec not in AUDIO_CODECS:
        raise UserError(
            f"unknown audio_codec {audio_codec!r}; use one of {', '.join(AUDIO_CODECS)}", option="audio_codec"
        )
    plan = plan_streams(source.path, fmt, audio_codec, copy_streams) if source.kind == "video" else None
    warning = plan.warning() if plan is not None else None
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    if check_disk and source.num_frames:
        other = source.path.stat().st_size if source.kind == "video" and copy_streams else 0
        check_space(output, space_needed(source.num_frames, *size, lossless, source.bit_depth > 8, other))
    return plan
