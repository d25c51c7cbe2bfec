"""Everything the source carries besides its video reaches the upscaled output: every audio track with its language
and title, subtitles with their title, chapters, cover art, a second video track and a timecode, through segments
and the stitch; what a container cannot hold is named in one warning. Each output is checked by an independent
PyAV open, stream by stream, against the source."""

from __future__ import annotations

import io
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.plan import SegmentConfig
from realbasicvsr.upscale.run import upscale_video

MS = Fraction(1, 1000)


def _frame(value: int, size: int) -> av.VideoFrame:
    image = np.full((size, size, 3), value, np.uint8)
    image[: size // 2] = 255 - value  # some structure, so the encoder has something to code
    return av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")


def _video(container: av.container.OutputContainer, size: int = 32) -> av.stream.Stream:
    stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    return stream


def _sound(container: av.container.OutputContainer, language: str, title: str | None = None) -> av.stream.Stream:
    stream = container.add_stream("aac", rate=8000)
    stream.layout = "mono"
    stream.metadata["language"] = language
    if title:
        stream.metadata["title"] = title
    return stream


def _tone(i: int) -> av.AudioFrame:
    samples = np.sin(np.arange(i * 1024, (i + 1) * 1024) / 8.0).astype(np.float32)[None] * 0.3
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 8000, i * 1024
    return frame


def two_languages_mkv(path: Path, frames: int = 7) -> None:
    """Two audio tracks (eng default, fra titled), an English subtitle with a title, two chapters."""
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "Two languages"
        video = _video(container)
        english, french = _sound(container, "eng"), _sound(container, "fra", "French dub")
        english.disposition = av.stream.Disposition.default
        subtitle = container.add_mux_stream("subrip")
        subtitle.metadata["language"], subtitle.metadata["title"] = "eng", "English SDH"
        subtitle.time_base = MS
        container.set_chapters(chapter_list(("Intro", 0, 120), ("Ending", 120, 280)))
        for i in range(frames):
            frame = _frame(30 * i, 32)
            frame.pts = i
            container.mux(video.encode(frame))
            for sound in (english, french):
                container.mux(sound.encode(_tone(i)))
        line = av.Packet(b"Hello there")
        line.pts = line.dts = 40
        line.duration, line.stream = 100, subtitle
        container.mux(line)
        for stream in (video, english, french):
            container.mux(stream.encode(None))


def cover_art_mp4(path: Path, frames: int = 7) -> bytes:
    """An mp4 with AAC audio and a JPEG cover (an attached picture); returns the cover's bytes."""
    jpeg = io.BytesIO()
    with av.open(jpeg, "w", format="mjpeg") as image:
        stream = image.add_stream("mjpeg", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuvj420p"
        picture = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
        image.mux(stream.encode(picture.reformat(format="yuvj420p")))
        image.mux(stream.encode(None))
    with av.open(str(path), "w") as container:
        container.metadata["artist"] = "Grandpa"
        video, sound = _video(container), _sound(container, "eng")
        cover = container.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 16
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(jpeg.getvalue())
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        container.mux(packet)
        for i in range(frames):
            frame = _frame(30 * i, 32)
            frame.pts = i
            container.mux(video.encode(frame))
            container.mux(sound.encode(_tone(i)))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))
    return jpeg.getvalue()


def two_angles_mov(path: Path, frames: int = 7) -> None:
    """A mov with a second video track (titled) and a timecode track (01:00:00:00)."""
    with av.open(str(path), "w") as container:
        main, angle = _video(container), _video(container, 16)
        main.metadata["timecode"] = "01:00:00:00"  # the mov muxer writes the timecode track from it
        angle.metadata["title"] = "angle 2"
        for i in range(frames):
            for stream, size in ((main, 32), (angle, 16)):
                frame = _frame(30 * i, size)
                frame.pts = i
                container.mux(stream.encode(frame))
        container.mux(main.encode(None))
        container.mux(angle.encode(None))


def streams_of(path: Path) -> list[tuple]:
    """(type, codec, language, title, dispositions) of each stream, timecode tracks named as such."""
    with av.open(str(path)) as container:
        rows = []
        for s in container.streams:
            tags = {k.lower(): v for k, v in s.metadata.items()}
            codec = s.codec_context.name if s.codec_context is not None else ("tmcd" if "timecode" in tags else "?")
            title = tags.get("title") or tags.get("name")
            rows.append((s.type, codec, tags.get("language", "und"), title, int(s.disposition)))
        return rows


def chapters_of(path: Path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as container:
        return [
            (round(float(c["start"] * c["time_base"]), 3), round(float(c["end"] * c["time_base"]), 3),
             c["metadata"].get("title", ""))
            for c in container.chapters()
        ]  # fmt: skip


def packets_of(path: Path, index: int) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams[index]) if p.size]


def upscale(source: Path, out: Path, **kwargs) -> list[str]:
    """Upscale in 3-frame segments with a tiny model; returns the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        upscale_video(
            source, out, model=RealBasicVSR(ModelConfig(4, 1, 1)), segments=SegmentConfig(segment_frames=3), **kwargs
        )
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_two_audio_tracks_subtitle_and_chapters_reach_an_mkv(tmp_path):
    source, out = tmp_path / "film.mkv", tmp_path / "out.mkv"
    two_languages_mkv(source)
    assert upscale(source, out) == []
    expected = streams_of(source)
    assert [row[0] for row in expected] == ["video", "audio", "audio", "subtitle"]
    assert streams_of(out) == expected  # languages, titles, dispositions, in order
    assert chapters_of(out) == chapters_of(source) == [(0.0, 0.12, "Intro"), (0.12, 0.28, "Ending")]
    for index in (1, 2, 3):  # copied, not re-encoded
        assert packets_of(out, index) == packets_of(source, index)
    with av.open(str(out)) as container:
        assert container.metadata.get("title") == "Two languages"
        assert len(list(container.decode(video=0))) == 7


def test_re_encoded_audio_keeps_language_title_and_dispositions(tmp_path):
    source, out = tmp_path / "film.mkv", tmp_path / "out.mkv"
    two_languages_mkv(source)
    assert upscale(source, out, audio_codec="opus") == []
    kept = [(t, lang, title, disp) for t, _, lang, title, disp in streams_of(out)]
    assert kept == [(t, lang, title, disp) for t, _, lang, title, disp in streams_of(source)]
    assert [row[1] for row in streams_of(out)] == ["h264", "opus", "opus", "srt"]
    with av.open(str(source)) as src, av.open(str(out)) as dst:
        before = sum(f.samples for f in src.decode(audio=1)) / 8000
        after = sum(f.samples for f in dst.decode(audio=1)) / dst.streams.audio[1].sample_rate
    assert after == pytest.approx(before, abs=0.03)  # the same length of sound (Opus codes in 20 ms frames)


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv"])
def test_cover_art_reaches_the_output(tmp_path, out_name):
    source, out = tmp_path / "song.mp4", tmp_path / out_name
    jpeg = cover_art_mp4(source)
    assert upscale(source, out) == []
    rows = streams_of(out)
    covers = [i for i, row in enumerate(rows) if row[4] & av.stream.Disposition.attached_pic]
    assert len(covers) == 1 and rows[covers[0]][:2] == ("video", "mjpeg")
    assert packets_of(out, covers[0]) == [jpeg]  # the same picture, byte for byte
    assert [row[:3] for row in rows if not row[4] & av.stream.Disposition.attached_pic] == [
        row[:3] for row in streams_of(source) if not row[4] & av.stream.Disposition.attached_pic
    ]
    with av.open(str(out)) as container:
        assert {k.lower(): v for k, v in container.metadata.items()}.get("artist") == "Grandpa"


@pytest.mark.parametrize("out_name", ["out.mov", "out.mp4", "out.mkv"])
def test_second_video_track_and_timecode_reach_the_output(tmp_path, out_name):
    source, out = tmp_path / "angles.mov", tmp_path / out_name
    two_angles_mov(source)
    assert [row[:2] for row in streams_of(source)] == [("video", "h264"), ("video", "h264"), ("data", "tmcd")]
    assert upscale(source, out) == []
    rows = streams_of(out)
    assert rows[1][:2] == ("video", "h264") and rows[1][3] == "angle 2"
    assert packets_of(out, 1) == packets_of(source, 1)
    with av.open(str(out)) as container:
        tags = {k.lower(): v for k, v in container.streams.video[0].metadata.items()}
        assert tags.get("timecode") == "01:00:00:00"  # mkv keeps it as a tag, mp4/mov as a timecode track too
        if out_name != "out.mkv":
            assert [row[:2] for row in rows[2:]] == [("data", "tmcd")]


@pytest.mark.parametrize("out_name", ["out.webm", "out.mov"])
def test_cover_art_a_container_cannot_hold_is_named_in_one_warning(tmp_path, out_name):
    source, out = tmp_path / "song.mp4", tmp_path / out_name
    cover_art_mp4(source)
    webm = out_name.endswith(".webm")
    caught = upscale(source, out, **({"audio_codec": "opus", "encode": _vp9()} if webm else {}))
    assert len(caught) == 1 and "\n" not in caught[0]
    assert f"{out.suffix} cannot hold the source's cover art #2 (mjpeg)" in caught[0]
    assert "write .mp4 or .mkv to keep them" in caught[0]
    assert [row[:2] for row in streams_of(out)] == [
        ("video", "vp9" if webm else "h264"),
        ("audio", "opus" if webm else "aac"),
    ]


def test_chapters_reach_an_mp4_without_the_other_streams(tmp_path):
    source, out = tmp_path / "film.mkv", tmp_path / "out.mp4"
    two_languages_mkv(source)
    assert upscale(source, out, copy_streams=False) == []  # the subtitle would not fit: copy nothing else
    # mp4 stores chapters twice: a `chpl` list and a QuickTime chapter track, which reads back as a data stream
    assert [row[0] for row in streams_of(out)] in (["video"], ["video", "data"])
    assert chapters_of(out) == chapters_of(source)


def _vp9():
    from realbasicvsr.media.write import EncodeConfig

    return EncodeConfig(codec="libvpx-vp9", preset="ultrafast")


def chapter_list(*chapters: tuple[str, int, int]) -> list[dict[str, object]]:
    """PyAV's chapter records for (title, start ms, end ms) triples."""
    return [
        {"id": i, "start": start, "end": end, "time_base": MS, "metadata": {"title": title}}
        for i, (title, start, end) in enumerate(chapters, start=1)
    ]


def chapters_mp4(path: Path, frames: int = 6) -> None:
    with av.open(str(path), "w") as container:
        video, sound = _video(container), _sound(container, "eng")
        container.set_chapters(chapter_list(("One", 0, 120), ("Two", 120, 240)))
        for i in range(frames):
            frame = _frame(30 * i, 32)
            frame.pts = i
            container.mux(video.encode(frame))
            container.mux(sound.encode(_tone(i)))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv"])
def test_mp4_chapters_go_as_chapters_not_as_a_data_track(tmp_path, out_name):
    source, out = tmp_path / "talk.mp4", tmp_path / out_name
    chapters_mp4(source)
    # FFmpeg reads the mp4's chapter track as a data stream: it is the chapters, not a track to warn about
    assert [row[0] for row in streams_of(source)] == ["video", "audio", "data"]
    assert upscale(source, out) == []
    assert chapters_of(out) == chapters_of(source) == [(0.0, 0.12, "One"), (0.12, 0.24, "Two")]
    kinds = [row[0] for row in streams_of(out)]
    assert kinds == (["video", "audio", "data"] if out_name == "out.mp4" else ["video", "audio"])


def test_matroska_attachments_are_kept_or_named(tmp_path):
    source = tmp_path / "anime.mkv"
    font = b"\x00\x01\x00\x00 a font the subtitles need"
    with av.open(str(source), "w") as container:
        video = _video(container)
        container.add_attachment("font.ttf", "font/ttf", font)
        for i in range(4):
            frame = _frame(30 * i, 32)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    assert upscale(source, tmp_path / "out.mkv") == []
    with av.open(str(tmp_path / "out.mkv")) as container:
        (attachment,) = container.streams.attachments
        assert (attachment.metadata["filename"], attachment.metadata["mimetype"]) == ("font.ttf", "font/ttf")
    assert font in (tmp_path / "out.mkv").read_bytes()
    (warning,) = upscale(source, tmp_path / "out.mp4")
    assert warning == (
        ".mp4 cannot hold the source's attachment #1 ('font.ttf'): they are left out (write .mkv or .webm to keep them)"
    )
