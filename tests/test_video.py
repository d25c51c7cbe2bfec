"""Reading and writing: real clips made with PyAV in tmp_path, real images written by FFmpeg's encoders."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import natural_key
from realbasicvsr.media.read import Frame, probe, read_frames
from realbasicvsr.media.write import EncodeConfig, VideoWriter, check_codec, write_image


def make_clip(
    path: Path,
    *,
    frames: int = 6,
    width: int = 48,
    height: int = 32,
    fps: Fraction = Fraction(30000, 1001),
    audio: bool = True,
    vfr: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    subtitles: bool = False,
    seed: int = 0,
) -> list[np.ndarray]:
    """Write a small clip (smooth moving gradient + noise, optional AAC audio / VFR timestamps); returns the RGB
    frames that were encoded."""
    rng = np.random.default_rng(seed)
    container = av.open(str(path), "w")
    video = container.add_stream(codec, rate=fps)
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    time_base = Fraction(1, 1000) if vfr else 1 / fps
    video.codec_context.time_base = time_base
    astream = None
    if audio:
        astream = container.add_stream("aac", rate=8000)
        astream.layout = "mono"
    yy, xx = np.mgrid[0:height, 0:width]
    images, audio_pts, pts = [], 0, 0
    for i in range(frames):
        base = (np.stack([xx * 4 + i * 3, yy * 6, (xx + yy) * 2 + 40], -1) % 256).astype(np.float64)
        image = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        images.append(image)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        pts += (50 if i % 2 else 25) if vfr else 1  # VFR: alternating 25 ms / 50 ms frame durations
        container.mux(video.encode(frame))
        while astream is not None and audio_pts < float(pts * time_base) * 8000:
            samples = (rng.standard_normal((1, 1024)) * 0.1).astype(np.float32)
            aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = 8000, audio_pts
            audio_pts += 1024
            container.mux(astream.encode(aframe))
    container.mux(video.encode(None))
    if astream is not None:
        container.mux(astream.encode(None))
    container.close()
    return images


def packets_bytes(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        return [bytes(p) for p in container.demux(streams) if p.size]


def video_timing(path: Path) -> tuple[int, list[float], Fraction]:
    """(decoded frame count, frame times in seconds, average rate) of the first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
        return len(times), times, Fraction(stream.average_rate)


def test_natural_sort_order():
    names = ["f10.png", "f2.png", "F1.png", "f100.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f10.png", "f100.png"]


def test_probe_and_read_video_keeps_timestamps(tmp_path):
    path = tmp_path / "clip.mp4"
    images = make_clip(path, frames=5)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.num_frames) == ("video", 48, 32, 5)
    assert info.fps == Fraction(30000, 1001)
    frames = list(read_frames(info))
    assert [f.index for f in frames] == list(range(5))
    assert [f.pts * info.time_base for f in frames] == [Fraction(i * 1001, 30000) for i in range(5)]
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (32, 48, 3)
    # Lossy 4:2:0 x264 loses the noise, not the colour: channel means stay put (a wrong matrix or range moves them).
    assert frames[0].image.reshape(-1, 3).mean(0) == pytest.approx(images[0].reshape(-1, 3).mean(0), abs=2)


@pytest.mark.parametrize(("matrix", "spc"), [("ITU709", 1), ("ITU601", 6)])
def test_colour_matrix_follows_the_stream(tmp_path, matrix, spc):
    """Flat colour patches encoded losslessly with a declared matrix decode back to the same RGB."""
    path = tmp_path / "c.mkv"
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [230, 200, 30]], np.uint8)
    image = np.repeat(np.repeat(colours[None], 32, 0), 16, 1)  # 32 x 64, four 16-px wide patches
    container = av.open(str(path), "w")
    stream = container.add_stream("ffv1", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv444p"
    stream.codec_context.colorspace, stream.codec_context.color_range = spc, 1
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        format="yuv444p", src_color_range="JPEG", dst_colorspace=matrix, dst_color_range="MPEG"
    )
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    info = probe(path)
    assert info.color.matrix == matrix and info.color.declared
    decoded = next(read_frames(info)).image
    assert np.abs(decoded.astype(int) - image).max() <= 2


def test_ten_bit_video_reads_as_16_bit(tmp_path):
    path = tmp_path / "deep.mkv"
    make_clip(path, frames=2, pix_fmt="yuv420p10le", audio=False)
    info = probe(path)
    assert info.bit_depth == 16
    frame = next(read_frames(info))
    assert frame.image.dtype == np.uint16 and frame.image.max() > 255


@pytest.mark.parametrize(
    ("suffix", "mode"), [(".png", "rgb24"), (".png", "rgb48le"), (".png", "gray"), (".png", "rgba"), (".jpg", "rgb24"),
                         (".bmp", "rgb24"), (".tiff", "rgb48le"), (".webp", "rgb24")]
)  # fmt: skip
def test_image_kinds_read_as_rgb(tmp_path, suffix, mode):
    rng = np.random.default_rng(1)
    deep = mode == "rgb48le"
    image = rng.integers(0, 65535 if deep else 255, (20, 24, 3), dtype=np.uint16 if deep else np.uint8)
    if mode == "gray":
        image[...] = image[..., :1]
    alpha = rng.integers(0, 255, (20, 24), dtype=np.uint8) if mode == "rgba" else None
    path = tmp_path / f"img{suffix}"
    if suffix == ".webp":
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream("webp", rate=1, options={"lossless": "1"})
            stream.width, stream.height, stream.pix_fmt = 24, 20, "bgra"
            out.mux(stream.encode(frame.reformat(format="bgra")))
            out.mux(stream.encode(None))
    else:
        write_image(path, image, alpha)
    info = probe(path)
    assert info.kind == "image" and (info.width, info.height) == (24, 20)
    frame = next(read_frames(info))
    assert frame.image.shape == (20, 24, 3)
    assert frame.image.dtype == (np.uint16 if deep else np.uint8)
    error = np.abs(frame.image.astype(int) - image)
    assert (error.mean() < 6) if suffix == ".jpg" else (error.max() == 0)  # JPEG is lossy, the rest exact
    if alpha is not None:
        assert np.array_equal(frame.alpha, alpha)


def test_folder_of_mixed_sizes_is_refused(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    write_image(folder / "1.png", np.zeros((8, 8, 3), np.uint8))
    write_image(folder / "2.png", np.zeros((8, 10, 3), np.uint8))
    info = probe(folder)
    with pytest.raises(UserError, match=r"2\.png is 10x8 but the first frame is 8x8"):
        list(read_frames(info))


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(UserError, match="not a video or image"):
        probe(text)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="contains no images"):
        probe(tmp_path / "empty")
    audio_only = tmp_path / "audio.m4a"
    container = av.open(str(audio_only), "w")
    stream = container.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    with pytest.raises(UserError, match="has no video stream"):
        probe(audio_only)


def test_corrupted_video_is_reported(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path, frames=12, audio=False, width=64, height=64)
    data = bytearray(path.read_bytes())
    # Zero the second half of the media data; the index (moov, written last) still lists all 12 frames.
    start, end = data.index(b"mdat"), data.index(b"moov")
    middle = start + (end - start) // 2
    data[middle : end - 8] = bytes(end - 8 - middle)
    path.write_bytes(bytes(data))
    info = probe(path)
    with pytest.raises(UserError, match="corrupted"):
        list(read_frames(info))


def test_writer_copies_audio_and_keeps_vfr_timing(tmp_path):
    source = tmp_path / "vfr.mkv"
    make_clip(source, frames=8, vfr=True)
    info = probe(source)
    out = tmp_path / "out.mkv"
    writer = VideoWriter(out, fmt="matroska", width=48, height=32, source=info, settings=EncodeConfig(), fps=info.fps)
    for frame in read_frames(info):
        writer.write(frame)
    writer.close()
    n_in, times_in, _ = video_timing(source)
    n_out, times_out, _ = video_timing(out)
    assert n_out == n_in == 8
    assert times_out == pytest.approx(times_in, abs=1e-3)
    assert packets_bytes(out, "audio") == packets_bytes(source, "audio")


def test_codec_checks(tmp_path):
    with pytest.raises(UserError, match="unknown codec"):
        check_codec(EncodeConfig(codec="divx"), "mp4", tmp_path / "a.mp4")
    with pytest.raises(UserError, match="cannot be stored"):
        check_codec(EncodeConfig(codec="libx264"), "webm", tmp_path / "a.webm")
    check_codec(EncodeConfig(codec="ffv1"), "matroska", tmp_path / "a.mkv")
    assert list(tmp_path.iterdir()) == []  # checking writes nothing


def test_frame_defaults():
    frame = Frame(index=3, image=np.zeros((2, 2, 3), np.uint8))
    assert frame.pts is None and frame.alpha is None and frame.name is None


@pytest.mark.parametrize(
    ("name", "codec"), [("c.mp4", "libx265"), ("c.webm", "libvpx-vp9"), ("c.avi", "mpeg4"), ("c.mov", "libx264")]
)
def test_common_codecs_and_containers_decode_every_frame(tmp_path, name, codec):
    path = tmp_path / name
    make_clip(path, frames=4, audio=False, codec=codec, width=64, height=64)  # x265 needs >= 64 px (see writer)
    info = probe(path)
    frames = list(read_frames(info))
    assert len(frames) == 4 and frames[-1].image.shape == (64, 64, 3)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
