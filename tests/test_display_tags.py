"""What a player needs besides the pixels reaches the output: pixel aspect (SAR), a declared transfer and its
primaries (PQ and HLG stay HDR), and the display rotation of a phone video, through segments and the stitch."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.media.read import probe
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.plan import SegmentConfig
from realbasicvsr.upscale.run import upscale_video

PQ, HLG, BT2020 = 16, 18, 9


def tagged_clip(path: Path, *, sar: Fraction, trc: int, rotation: int, codec: str, pix_fmt: str) -> None:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, pix_fmt
        ctx = stream.codec_context
        ctx.sample_aspect_ratio, ctx.color_trc, ctx.color_primaries, ctx.colorspace = sar, trc, BT2020, BT2020
        stream.set_display_rotation(rotation)
        for i in range(7):
            image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def tags_of(path: Path) -> tuple[Fraction | None, int, int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        ctx = stream.codec_context
        return (
            stream.sample_aspect_ratio,
            ctx.color_trc,
            ctx.color_primaries,
            round(frames[0].rotation) % 360,
            len(frames),
        )


@pytest.mark.parametrize(
    "source_name, trc, rotation, codec, pix_fmt",
    [("phone.mp4", PQ, 90, "libx264", "yuv420p"), ("hlg.mkv", HLG, 270, "libx265", "yuv420p10le")],
)
@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv", "out.mov"])
def test_sar_transfer_primaries_and_rotation_survive(tmp_path, source_name, trc, rotation, codec, pix_fmt, out_name):
    source = tmp_path / source_name
    tagged_clip(source, sar=Fraction(16, 11), trc=trc, rotation=rotation, codec=codec, pix_fmt=pix_fmt)
    info = probe(source)
    assert (info.sar, info.color_trc, info.color_primaries, info.rotation) == (Fraction(16, 11), trc, BT2020, rotation)
    out = tmp_path / out_name
    upscale_video(
        source,
        out,
        model=RealBasicVSR(ModelConfig(4, 1, 1)),
        encode=EncodeConfig(codec=codec, preset="ultrafast"),
        segments=SegmentConfig(scenes="off", segment_frames=3, warmup=1),  # 3 pieces stitched
    )
    assert tags_of(out) == (Fraction(16, 11), trc, BT2020, rotation, 7)


def test_an_untagged_source_keeps_the_tags_of_its_matrix(tmp_path):
    source = tmp_path / "plain.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
    info = probe(source)
    assert (info.sar, info.rotation) in ((None, 0), (Fraction(1, 1), 0))
    out = tmp_path / "out.mp4"
    upscale_video(source, out, model=RealBasicVSR(ModelConfig(4, 1, 1)))
    _, trc, primaries, rotation, frames = tags_of(out)
    assert (trc, primaries, rotation, frames) == (6, 6, 0, 2)  # BT.601 below 720 lines, as the frames were encoded


def tagged_with_audio(path: Path) -> None:
    with av.open(str(path), "w") as container:
        container.metadata["title"], container.metadata["artist"] = "Holiday 1994", "Grandpa"
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        video.metadata["language"] = "fra"
        sound = container.add_stream("aac", rate=8000)
        sound.layout = "mono"
        sound.metadata["language"], sound.metadata["title"] = "eng", "commentary"
        sound.disposition = av.stream.Disposition.default | av.stream.Disposition.forced
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame.reformat(format="yuv420p")))
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, i * 1024
            container.mux(sound.encode(chunk))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


@pytest.mark.parametrize("out_name", ["out.mkv", "out.mp4"])
def test_file_and_stream_tags_and_dispositions_survive(tmp_path, out_name):
    source, out = tmp_path / "family.mkv", tmp_path / out_name
    tagged_with_audio(source)
    upscale_video(source, out, model=RealBasicVSR(ModelConfig(4, 1, 1)), segments=SegmentConfig(segment_frames=2))
    with av.open(str(out)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert tags["title"] == "Holiday 1994" and tags["artist"] == "Grandpa"
        assert video.metadata["language"] == "fra" and sound.metadata["language"] == "eng"
        assert "commentary" in (sound.metadata.get("title"), sound.metadata.get("name"))  # mp4 calls it name
        assert sound.disposition == av.stream.Disposition.default | av.stream.Disposition.forced
