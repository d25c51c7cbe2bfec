"""A 10-bit source (issue 20 item 4): by default the output is 10-bit in a codec that plays widely (HEVC Main 10 in
.mp4/.mkv/.mov; VP9 in .webm, profile 2 where this FFmpeg's libvpx encodes 10 bits), with a note; a codec or
pixel format given still wins; HDR10 mastering display and content light level metadata reach the output (as the
encoder's SEI: PyAV 18 cannot write them as container side data). The source is an HDR10 (PQ) HEVC clip made
with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import pass_through_model
from realbasicvsr.media.color import HdrMetadata, hdr_of
from realbasicvsr.media.encode import EncodeConfig, default_codec
from realbasicvsr.media.read import probe
from realbasicvsr.upscale.plan import SegmentConfig
from realbasicvsr.upscale.run import upscale_video

PQ, BT2020 = 16, 9
MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"  # BT.2020 primaries, 1000 nits
VP9_TEN_BIT = "yuv420p10le" in {f.name for f in av.codec.Codec("libvpx-vp9", "w").video_formats}


def hdr10_clip(path: Path, frames: int = 4) -> None:
    """64x64 HEVC Main 10, PQ / BT.2020, with mastering display and content light level SEI: a smooth 10-bit
    gradient (no two neighbours share an 8-bit level) drifting a little each frame."""
    yy, xx = np.mgrid[0:64, 0:64]
    params = f"log-level=error:master-display={MASTERING}:max-cll=1000,400"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=25, options={"preset": "ultrafast", "x265-params": params})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p10le"
        ctx = stream.codec_context
        ctx.color_trc, ctx.color_primaries, ctx.colorspace = PQ, BT2020, BT2020
        for i in range(frames):
            level = (xx * 400 + yy * 300 + i * 500 + 8000).astype(np.uint16)
            image = np.stack([level, level + 2000, 60000 - level], -1).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(
                format="yuv420p10le", dst_colorspace="BT2020"
            )
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def described(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        ctx = stream.codec_context
        levels = frames[0].to_ndarray(format="rgb48le")
        return {
            "codec": ctx.name,
            "profile": ctx.profile,
            "pix_fmt": frames[0].format.name,
            "trc": ctx.color_trc,
            "frames": len(frames),
            "hdr": hdr_of(frames[0]),
            "off_8bit": float(np.mean(levels % 257 != 0)),  # share of values between two 8-bit levels
        }


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ten_bit") / "hdr10.mkv"
    hdr10_clip(path)
    return path


def test_the_source_is_what_the_test_means(source):
    info = probe(source)
    assert info.bit_depth == 16 and info.color_trc == PQ
    assert info.hdr == HdrMetadata(
        primaries=((Fraction(34000, 50000), Fraction(16000, 50000)), (Fraction(13250, 50000), Fraction(34500, 50000)),
                   (Fraction(7500, 50000), Fraction(3000, 50000))),
        white_point=(Fraction(15635, 50000), Fraction(16450, 50000)),
        luminance=(Fraction(50, 10000), Fraction(1000)),
        max_cll=1000,
        max_fall=400,
    )  # fmt: skip
    assert described(source)["off_8bit"] > 0.9


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv", "out.mov"])
def test_ten_bit_in_gives_hevc_main10_with_the_hdr_metadata(tmp_path, source, out_name):
    out = tmp_path / out_name
    result = upscale_video(
        source,
        out,
        model=pass_through_model(),
        encode=EncodeConfig(preset="ultrafast"),
        segments=SegmentConfig(scenes="off", segment_frames=2, warmup=1),  # 2 pieces stitched
    )
    got = described(out)
    assert (got["codec"], got["profile"], got["pix_fmt"], got["trc"], got["frames"]) == (
        "hevc", "Main 10", "yuv420p10le", PQ, 4,
    )  # fmt: skip
    assert got["off_8bit"] > 0.9  # really 10-bit levels, not 8-bit ones stored in 10 bits
    assert got["hdr"] == probe(source).hdr
    assert any("HEVC Main 10" in note for note in result.notes), result.notes


def test_webm_gets_vp9_and_says_what_depth(tmp_path, source):
    out = tmp_path / "out.webm"
    result = upscale_video(source, out, model=pass_through_model(), encode=EncodeConfig(preset="ultrafast"))
    got = described(out)
    assert got["codec"] == "vp9" and got["frames"] == 4
    if VP9_TEN_BIT:
        assert got["pix_fmt"] == "yuv420p10le" and any("profile 2" in n for n in result.notes)
    else:  # this FFmpeg's libvpx is 8-bit only: said in one line, and where 10-bit can be had
        assert got["pix_fmt"] == "yuv420p" and any("8-bit VP9" in n and ".mp4" in n for n in result.notes)
    assert any("mastering display" in n and "libx265" in n for n in result.notes)  # VP9 cannot carry it here


def test_a_codec_or_pixel_format_given_still_wins():
    given = EncodeConfig(codec="libx264")
    assert default_codec(given, 16, "mp4", (256, 256)) == (given, None)  # H.264 High 10, as asked
    eight_bit, note = default_codec(EncodeConfig(pix_fmt="yuv420p"), 16, "mp4", (256, 256))
    assert (eight_bit.codec, eight_bit.pix_fmt, note) == ("libx264", "yuv420p", None)
    assert default_codec(EncodeConfig(), 8, "mp4", (256, 256))[0].codec == "libx264"  # 8-bit sources: as before
    tiny, note = default_codec(EncodeConfig(), 16, "mkv", (32, 32))  # under libx265's 64x64 minimum
    assert tiny.codec == "libx264" and "64x64" in note


def test_explicit_h264_keeps_ten_bits_and_the_hdr_metadata(tmp_path, source):
    out = tmp_path / "out.mp4"
    upscale_video(source, out, model=pass_through_model(), encode=EncodeConfig(codec="libx264", preset="ultrafast"))
    got = described(out)
    assert (got["codec"], got["profile"], got["pix_fmt"]) == ("h264", "High 10", "yuv420p10le")
    assert got["hdr"] == probe(source).hdr
