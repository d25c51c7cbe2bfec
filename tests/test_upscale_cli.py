"""`realbasicvsr upscale` end to end on real files made in tmp_path (tiny random-init model in our release format)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.media.write import EncodeConfig, write_image
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.run import limit_cpu_threads, upscale_video
from realbasicvsr.weights import bundled_weights_path
from test_video import make_clip, packets_bytes, video_timing

pytestmark = pytest.mark.usefixtures("one_thread")


def upscale(*args: object) -> int:
    return main(["upscale", *map(str, args), "--preset", "ultrafast", "--quiet"])


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_video_with_audio_keeps_count_rate_duration_and_audio(tmp_path, weights, capsys):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=5, width=24, height=16)
    assert main(["upscale", str(source), str(out), "--weights", str(weights), "--preset", "ultrafast"]) == 0
    n_in, times_in, rate_in = video_timing(source)
    n_out, times_out, rate_out = video_timing(out)
    assert n_out == n_in == 5
    assert rate_out == rate_in == Fraction(30000, 1001)
    assert times_out == pytest.approx(times_in, abs=1e-4)
    assert packets_bytes(out, "audio") == packets_bytes(source, "audio") != []
    info = probe(out)
    assert (info.width, info.height) == (96, 64)
    assert "upscaled 5 frames" in capsys.readouterr().out
    assert leftovers(tmp_path) == []


def test_vfr_mkv_with_outscale(tmp_path, weights):
    source, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    make_clip(source, frames=4, width=24, height=16, vfr=True)
    assert upscale(source, out, "--weights", weights, "--outscale", 1.5, "--window", 2, "--overlap", 1) == 0
    assert (probe(out).width, probe(out).height) == (36, 24)
    assert upscale(source, tmp_path / "odd.mkv", "--weights", weights, "--outscale", 1.3) == 0
    assert (probe(tmp_path / "odd.mkv").width, probe(tmp_path / "odd.mkv").height) == (30, 20)  # 31x21 -> even
    _, times_in, _ = video_timing(source)
    _, times_out, _ = video_timing(out)
    assert times_out == pytest.approx(times_in, abs=1e-3)  # alternating 25/50 ms frame durations survive
    assert packets_bytes(out, "audio") == packets_bytes(source, "audio")


def test_explicit_size_and_lossless_ffv1(tmp_path, weights):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mkv"
    make_clip(source, frames=2, width=24, height=16, audio=False)
    assert upscale(source, out, "--weights", weights, "--size", "50x30", "--codec", "ffv1") == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("ffv1", 50, 30)


@pytest.mark.parametrize("kind", ["rgb8", "rgb16", "gray", "rgba"])
def test_image_folder_to_png_folder(tmp_path, weights, kind):
    folder, out = tmp_path / "frames", tmp_path / "up"
    folder.mkdir()
    rng = np.random.default_rng(0)
    deep = kind == "rgb16"
    for name in ("f10.png", "f2.png", "f1.png"):
        image = rng.integers(0, 65535 if deep else 255, (12, 16, 3), dtype=np.uint16 if deep else np.uint8)
        if kind == "gray":
            image[...] = image[..., :1]
        alpha = np.full((12, 16), 200, np.uint8) if kind == "rgba" else None
        write_image(folder / name, image, alpha)
    assert upscale(folder, out, "--weights", weights) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f1.png", "f10.png", "f2.png"]
    frames = list(read_frames(probe(out)))
    assert [f.name for f in frames] == ["f1.png", "f2.png", "f10.png"]  # natural order
    assert frames[0].image.shape == (48, 64, 3)
    assert frames[0].image.dtype == (np.uint16 if deep else np.uint8)
    if kind == "rgba":
        assert frames[0].alpha is not None and np.all(frames[0].alpha == 200)


def test_single_image_and_folder_to_video(tmp_path, weights):
    image = tmp_path / "one.jpg"
    write_image(image, np.full((12, 16, 3), 90, np.uint8))
    assert upscale(image, tmp_path / "one_x4.png", "--weights", weights) == 0
    assert probe(tmp_path / "one_x4.png").width == 64
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"{i}.png", np.full((12, 16, 3), 40 * i, np.uint8))
    assert upscale(folder, tmp_path / "v.mp4", "--weights", weights, "--fps", 12) == 0
    count, times, rate = video_timing(tmp_path / "v.mp4")
    assert (count, rate) == (3, Fraction(12)) and times == pytest.approx([0, 1 / 12, 2 / 12])


def error_of(capsys, *args) -> str:
    code = upscale(*args)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and err.startswith("realbasicvsr upscale: error: ")
    return err


def test_bad_inputs_give_one_line_errors_and_write_nothing(tmp_path, weights, capsys):
    good = tmp_path / "good.mp4"
    make_clip(good, frames=2, width=24, height=16)
    out = tmp_path / "out.mp4"
    w = ("--weights", weights)
    assert "does not exist" in error_of(capsys, tmp_path / "nope.mp4", out, *w)
    (tmp_path / "text.mkv").write_text("hello")
    assert "not a video or image" in error_of(capsys, tmp_path / "text.mkv", out, *w)
    empty = tmp_path / "empty.mkv"  # headers and a video track, but cut before the first frame
    make_clip(empty, frames=2, width=24, height=16, audio=False)
    data = empty.read_bytes()
    empty.write_bytes(data[: data.index(bytes.fromhex("1f43b675"))])  # Matroska Cluster id
    assert "ends before its first frame" in error_of(capsys, empty, out, *w)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_image(mixed / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_image(mixed / "b.png", np.zeros((10, 8, 3), np.uint8))
    assert "same size" in error_of(capsys, mixed, tmp_path / "mixed_out", *w)
    assert "does not exist; create it" in error_of(capsys, good, tmp_path / "no" / "dir" / "o.mp4", *w)
    assert "unknown codec" in error_of(capsys, good, out, *w, "--codec", "xvid")
    assert "cannot encode pixel format" in error_of(capsys, good, out, *w, "--pix-fmt", "rgb8")
    assert "cannot be stored in a .webm" in error_of(capsys, good, tmp_path / "o.webm", *w, "--codec", "libx264")
    assert "smaller than 64x64" in error_of(capsys, good, out, *w, "--codec", "libx265", "--outscale", 2)
    assert "unknown output extension" in error_of(capsys, good, tmp_path / "o.xyz", *w)
    assert "is the input" in error_of(capsys, good, good, *w, "--overwrite")
    assert "weights" in error_of(capsys, good, out, "--weights", tmp_path / "missing.pth")
    assert "needs a CUDA device" in error_of(capsys, good, out, *w, "--dtype", "fp16", "--device", "cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mkv", "good.mp4", "mixed", "text.mkv"]


def test_default_weights_fall_back_to_bundled(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    source = tmp_path / "in.mp4"
    make_clip(source, frames=2, width=24, height=16)
    assert upscale(source, tmp_path / "out.mp4", "--preset", "ultrafast") == 0
    err = capsys.readouterr().err
    assert "bundled compact RealBasicVSR" in err and "--weights realbasicvsr_x4" in err
    assert (tmp_path / "out.mp4").is_file()


def test_missing_default_weights_say_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    # An installation without the bundled file (e.g. a slimmed wheel): the error says what to do.
    monkeypatch.setattr("realbasicvsr.weights.known.bundled_weights_path", lambda: None)
    source = tmp_path / "in.mp4"
    make_clip(source, frames=2, width=24, height=16)
    err = error_of(capsys, source, tmp_path / "out.mp4")
    # The library names the setting (weights), the command line adds its flag.
    assert "set the weights to 'realbasicvsr_x4' to download them once" in err and "path of a .pth" in err
    assert "offline: download https://download.openmmlab.com/" in err and err.endswith("(set with --weights)")
    assert not (tmp_path / "out.mp4").exists()


def test_python_api_uses_the_default_weights_offline(tmp_path, monkeypatch):
    """`upscale_video(in, out)` needs no weights argument: with nothing cached it runs the bundled model (no
    download), and the result says which weights ran. "auto" device and dtype are settled by the library."""
    from realbasicvsr.weights import bundled_description

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=2, width=24, height=16)
    result = upscale_video(source, out, options=UpscaleConfig(device="auto", dtype="auto"))
    assert result.frames == 2 and probe(out).num_frames == 2
    assert result.weights.startswith(f"the {bundled_description()}") and "realbasicvsr_x4" in result.weights
    # An explicit choice is reported as given.
    result = upscale_video(source, out, weights=bundled_weights_path(), overwrite=True)
    assert result.weights == str(bundled_weights_path())


def test_library_errors_name_settings_and_the_command_adds_flags(tmp_path, weights, capsys):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=2, width=24, height=16)
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="overwrite=True") as caught:
        upscale_video(source, out, weights=weights)
    assert caught.value.option == "overwrite" and "--" not in str(caught.value)
    with pytest.raises(UserError, match="dtype fp16 needs a CUDA device") as caught:
        upscale_video(source, tmp_path / "new.mp4", weights=weights, options=UpscaleConfig(dtype="fp16"))
    assert caught.value.option == "dtype" and "--" not in str(caught.value)
    assert not (tmp_path / "new.mp4").exists()
    err = error_of(capsys, source, out, "--weights", weights)
    assert "use --overwrite to replace it" in err and "overwrite=True" not in err and "(set with" not in err
    assert error_of(capsys, source, out, "--weights", weights, "--window", 0).endswith("(set with --window)")
    assert error_of(capsys, source, out, "--weights", weights, "--device", "tpu").endswith("(set with --device)")


def test_existing_output_needs_overwrite(tmp_path, weights, capsys):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=2, width=24, height=16)
    out.write_bytes(b"keep me")
    assert "--overwrite" in error_of(capsys, source, out, "--weights", weights)
    assert out.read_bytes() == b"keep me"
    assert upscale(source, out, "--weights", weights, "--overwrite") == 0
    assert probe(out).num_frames == 2


def test_folder_outputs_never_delete_foreign_files(tmp_path, weights, capsys):
    source = tmp_path / "in.mp4"
    make_clip(source, frames=2, width=24, height=16)
    (tmp_path / "empty").mkdir()
    assert upscale(source, tmp_path / "empty", "--weights", weights) == 0  # an existing empty folder is fine
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["00000000.png", "00000001.png"]
    assert "not empty" in error_of(capsys, source, tmp_path / "empty", "--weights", weights)
    assert upscale(source, tmp_path / "empty", "--weights", weights, "--overwrite") == 0
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("precious")
    err = error_of(capsys, source, home, "--weights", weights, "--overwrite")
    assert "other than PNG frames" in err and (home / "thesis.txt").read_text() == "precious"


def test_interrupt_leaves_no_partial_output(tmp_path):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=4, width=24, height=16)

    def stop_after_two(done: int, total: int | None) -> None:
        if done == 2:
            raise KeyboardInterrupt

    model = RealBasicVSR(ModelConfig(4, 1, 1))
    with pytest.raises(KeyboardInterrupt):
        upscale_video(source, out, model=model, options=UpscaleConfig(window=1, overlap=0), progress=stop_after_two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_corrupted_stream_midway_leaves_nothing(tmp_path):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=12, width=64, height=64, audio=False)
    data = bytearray(source.read_bytes())
    start, end = data.index(b"mdat"), data.index(b"moov")
    data[start + (end - start) // 2 : end - 8] = bytes(end - 8 - start - (end - start) // 2)
    source.write_bytes(bytes(data))
    model = RealBasicVSR(ModelConfig(4, 1, 1))
    # --on-error stop: a one-line error, and nothing is left behind.
    with pytest.raises(UserError, match="corrupted"):
        upscale_video(source, out, model=model, options=UpscaleConfig(on_error="stop"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    # The default (conceal): the damaged frames are named in one warning and the output keeps the length.
    with pytest.warns(RuntimeWarning, match="damaged"):
        result = upscale_video(source, out, model=model)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == result.frames == 12


def make_subtitled_mkv(tmp_path: Path) -> Path:
    """A 3-frame MKV with an SRT subtitle stream (the stream template comes from a real .srt file)."""
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,040 --> 00:00:00,080\nHello\n\n2\n00:00:00,080 --> 00:00:00,120\nWorld\n")
    path = tmp_path / "subbed.mkv"
    with av.open(str(srt)) as source, av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 24, 16, "yuv420p"
        subtitles = container.add_stream_from_template(source.streams[0])
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 24, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(video.encode(frame))
        for packet in source.demux(source.streams[0]):
            if packet.size:
                packet.stream = subtitles
                container.mux(packet)
        container.mux(video.encode(None))
    return path


def test_subtitles_are_copied_or_refused_clearly(tmp_path, weights, capsys):
    source = make_subtitled_mkv(tmp_path)
    assert upscale(source, tmp_path / "out.mkv", "--weights", weights) == 0
    assert packets_bytes(tmp_path / "out.mkv", "subtitle") == packets_bytes(source, "subtitle") == [b"Hello", b"World"]
    assert "write .mkv instead" in error_of(capsys, source, tmp_path / "out.mp4", "--weights", weights)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_ten_bit_source_gives_ten_bit_output_and_webm_works(tmp_path, weights):
    source = tmp_path / "deep.mkv"
    make_clip(source, frames=2, width=24, height=16, pix_fmt="yuv420p10le", audio=False)
    assert upscale(source, tmp_path / "deep_x4.mkv", "--weights", weights) == 0
    with av.open(str(tmp_path / "deep_x4.mkv")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert next(read_frames(probe(tmp_path / "deep_x4.mkv"))).image.dtype == np.uint16
    plain = tmp_path / "plain.mp4"
    make_clip(plain, frames=2, width=24, height=16)
    out = tmp_path / "out.webm"
    assert upscale(plain, out, "--weights", weights, "--codec", "libvpx-vp9", "--no-copy-streams") == 0
    assert video_timing(out)[0] == 2 and probe(out).codec == "vp9"


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", ".mp4"), ("libx265", ".mkv"), ("libvpx-vp9", ".webm")])
def test_lossless_encoders_reproduce_the_frames(tmp_path, codec, suffix):
    """--lossless really is lossless for the 4:4:4 content it encodes (checked against a PNG-folder run)."""
    source = tmp_path / "in.mp4"
    make_clip(source, frames=2, width=24, height=16, audio=False)
    model = RealBasicVSR(ModelConfig(4, 1, 1))
    frames_dir, video = tmp_path / "frames", tmp_path / f"out{suffix}"
    upscale_video(source, frames_dir, model=model)
    upscale_video(source, video, model=model, encode=EncodeConfig(codec=codec, lossless=True, preset="ultrafast"))
    reference = [f.image.astype(int) for f in read_frames(probe(frames_dir))]
    decoded = [f.image.astype(int) for f in read_frames(probe(video))]
    assert len(decoded) == 2
    # RGB -> YUV 4:4:4 -> RGB in 8 bits rounds by at most a couple of levels; the codec adds nothing.
    assert max(np.abs(a - b).max() for a, b in zip(reference, decoded)) <= 3


def testlimit_cpu_threads_are_limited_for_a_gpu_run_and_restored():
    """upscale_video drops torch to 1 CPU thread while a GPU runs the model (the H200 measurement in
    pipeline.limit_cpu_threads); the setting comes back afterwards, also after an error, and CPU runs keep theirs."""
    import torch

    before = torch.get_num_threads()
    with limit_cpu_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(KeyError), limit_cpu_threads(1):
        assert torch.get_num_threads() == 1
        raise KeyError("failure inside")
    assert torch.get_num_threads() == before
