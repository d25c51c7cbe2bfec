"""`realbasicvsr evaluate` end to end on real image folders and a real video written with PyAV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from realbasicvsr.cli import main
from realbasicvsr.metrics import brisque, niqe, psnr, ssim


def _frames(count: int, seed: int, size: tuple[int, int] = (200, 208)) -> list[np.ndarray]:
    """Natural-looking frames: crops of a calibration image, shifted per frame, with a little noise."""
    source = np.asarray(Image.open(shared_path("iqa_calib", "I06.bmp")).convert("RGB"))
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        crop = source[i % 50 : i % 50 + size[0], 2 * i % 80 : 2 * i % 80 + size[1]].astype(int)
        frames.append(np.clip(crop + rng.integers(-3, 4, crop.shape), 0, 255).astype(np.uint8))
    return frames


def _write_clip(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:08d}.png")


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_clip_folders_with_ground_truth(tmp_path, capsys) -> None:
    params = shared_path("iqa_params")
    clips = {"000": _frames(3, 0), "001": _frames(2, 1)}
    gts = {"000": _frames(3, 10), "001": _frames(2, 11)}
    for name in clips:
        _write_clip(tmp_path / "pred" / name, clips[name])
        _write_clip(tmp_path / "gt" / name, gts[name])
    out_json, out_csv = tmp_path / "out" / "scores.json", tmp_path / "out" / "scores.csv"
    argv = ["evaluate", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--metrics", "psnr,ssim,niqe,brisque"]
    argv += ["--params-dir", str(params), "--crop-border", "2", "--json", str(out_json), "--csv", str(out_csv)]
    assert main(argv) == 0
    report = json.loads(out_json.read_text())
    for name in clips:
        for i, (pred, gt) in enumerate(zip(clips[name], gts[name])):
            scores = report["clips"][name]["frames"][str(i)]
            assert scores["psnr"] == pytest.approx(psnr(pred, gt, crop_border=2), abs=1e-12)
            assert scores["ssim"] == pytest.approx(ssim(pred, gt, crop_border=2), abs=1e-12)
            assert scores["niqe"] == pytest.approx(niqe(pred, crop_border=2, params_dir=params), abs=1e-12)
            assert scores["brisque"] == pytest.approx(brisque(pred, crop_border=2, params_dir=params), abs=1e-12)
    files = {Path(path).name: digest for path, digest in report["parameter_files"].items()}
    assert files["allmodel"] == "8b04d6045f1b27261610c8ab1730fdcc14ec80bfab0f1ab5f703bbc2927314de"
    assert set(files) == {"modelparameters.mat", "allmodel", "allrange"}
    all_niqe = [f["niqe"] for c in report["clips"].values() for f in c["frames"].values()]
    assert report["mean"]["niqe"] == pytest.approx(np.mean(all_niqe), abs=1e-12)
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["clip"], r["frame"]) for r in rows] == [
        ("000", "0"),
        ("000", "1"),
        ("000", "2"),
        ("001", "0"),
        ("001", "1"),
    ]
    assert float(rows[3]["psnr"]) == report["clips"]["001"]["frames"]["0"]["psnr"]
    assert rows[4]["file"] == "00000001.png"
    assert report["clips"]["001"]["source"] == str(tmp_path / "pred" / "001")
    table = capsys.readouterr().out
    assert "000" in table and "001" in table and "mean (all frames)" in table


def test_videolq_protocol_on_video_files(tmp_path, capsys) -> None:
    params = shared_path("iqa_params")
    (tmp_path / "videos").mkdir()
    _write_video(tmp_path / "videos" / "long.mp4", _frames(100, 2))
    _write_video(tmp_path / "videos" / "short.mp4", _frames(60, 3))
    out_json = tmp_path / "scores.json"
    argv = ["evaluate", str(tmp_path / "videos"), "--metrics", "niqe", "--protocol", "videolq"]
    argv += ["--params-dir", str(params), "--json", str(out_json), "--workers", "2"]
    assert main(argv) == 0
    report = json.loads(out_json.read_text())
    assert report["settings"] == {
        "metrics": ["niqe"],
        "convert_to": "y",
        "crop_border": 4,
        "frames": [0, 50, 99],
        "upscale": 1,
        "short_clips": "skip",
    }
    assert list(report["clips"]["long"]["frames"]) == ["0", "50", "99"]
    assert list(report["clips"]["short"]["frames"]) == ["0", "50"]  # frame 99 does not exist
    assert "short has no frame(s) [99]" in capsys.readouterr().err
    # --short-clips spread: first, middle and last frame of the 60-frame clip (NegVSR's choice)
    assert main([*argv, "--short-clips", "spread"]) == 0
    spread = json.loads(out_json.read_text())["clips"]
    assert list(spread["short"]["frames"]) == ["0", "30", "59"]
    assert spread["long"] == report["clips"]["long"]
    decoded = _decode(tmp_path / "videos" / "long.mp4")
    for index in (0, 50, 99):
        expected = niqe(decoded[index], convert_to="y", crop_border=4, params_dir=params)
        assert report["clips"]["long"]["frames"][str(index)]["niqe"] == pytest.approx(expected, abs=1e-12)


def test_upscale_scores_the_matlab_bicubic_enlargement(tmp_path) -> None:
    from realbasicvsr.metrics.imresize import imresize

    params = shared_path("iqa_params")
    frame = _frames(1, 4, size=(60, 64))[0]
    _write_clip(tmp_path / "lq" / "clip", [frame])
    out_json = tmp_path / "scores.json"
    argv = ["evaluate", str(tmp_path / "lq"), "--metrics", "niqe", "--upscale", "4", "--params-dir", str(params)]
    assert main([*argv, "--json", str(out_json)]) == 0
    # MATLAB rounds to uint8 after the row pass and again after the column pass
    rows = np.clip(np.floor(imresize(frame.astype(float), output_shape=(240, 64)) + 0.5), 0, 255)
    enlarged = np.clip(np.floor(imresize(rows, output_shape=(240, 256)) + 0.5), 0, 255).astype(np.uint8)
    expected = niqe(enlarged, params_dir=params)
    assert json.loads(out_json.read_text())["clips"]["clip"]["frames"]["0"]["niqe"] == pytest.approx(expected)


def test_bad_inputs_give_one_line_errors(tmp_path, capsys) -> None:
    params = str(shared_path("iqa_params"))
    _write_clip(tmp_path / "pred" / "a", _frames(1, 5))
    _write_clip(tmp_path / "gt" / "b", _frames(1, 6))
    _write_clip(tmp_path / "gt_small" / "a", _frames(1, 6, size=(100, 120)))
    _write_clip(tmp_path / "two" / "a", _frames(2, 6))
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "empty").mkdir()
    cases = [
        (["--gt", str(tmp_path / "gt"), "--metrics", "psnr"], "no ground truth for clip(s) a"),
        (["--metrics", "ssim"], "add --gt"),
        (["--gt", str(tmp_path / "gt_small"), "--metrics", "psnr"], "psnr of clip a frame 0: ground truth has shape"),
        (["--metrics", "niqe,lpips"], "unknown metric(s) lpips"),
        (["--frames", "0,x"], "bad frames list"),
        (["--metrics", "niqe", "--convert-to", "rgb"], "--convert-to rgb applies to psnr/ssim only"),
        (["--frames", "5"], "no frames to score"),
        (["--metrics", "nrqm", "--nrqm-model", str(tmp_path / "missing.mat")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(tmp_path / "pred"), "--params-dir", params, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and err.splitlines()[-1].startswith("realbasicvsr evaluate: error:"), err
    assert main(["evaluate", str(tmp_path / "two"), "--gt", str(tmp_path / "pred"), "--metrics", "psnr"]) == 1
    assert "ground truth of clip a has no frame 1" in capsys.readouterr().err
    for target, message in [(tmp_path / "notes.txt", "not a video file"), (tmp_path / "empty", "holds no clip")]:
        assert main(["evaluate", str(target), "--params-dir", params]) == 1
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_pirm_protocol_with_nrqm_model(tmp_path) -> None:
    from realbasicvsr.metrics import nrqm, perceptual_index
    from test_metrics_nrqm import _forest, _stump, _write_model

    params = shared_path("iqa_params")
    frame = _frames(1, 7)[0]
    _write_clip(tmp_path / "sr" / "clip", [frame])
    model = tmp_path / "model.mat"
    _write_model(model, [_forest([_stump(1, 0.5, 2.0, 8.0)]) for _ in range(3)], [1.0, 0.2, 0.3, 0.1])
    out_json = tmp_path / "scores.json"
    argv = ["evaluate", str(tmp_path / "sr"), "--metrics", "nrqm,niqe,pi", "--protocol", "pirm"]
    assert main([*argv, "--params-dir", str(params), "--nrqm-model", str(model), "--json", str(out_json)]) == 0
    scores = json.loads(out_json.read_text())["clips"]["clip"]["frames"]["0"]
    assert scores["nrqm"] == pytest.approx(nrqm(frame, crop_border=4, model_path=model), abs=1e-12)
    expected_pi = perceptual_index(frame, params_dir=params, model_path=model)
    assert scores["pi"] == pytest.approx(expected_pi, abs=1e-12)
    assert scores["pi"] == pytest.approx(((10 - scores["nrqm"]) + scores["niqe"]) / 2, abs=1e-12)


def test_command_lists_match_the_library() -> None:
    """The command keeps light copies of the metric and protocol names (its --help must not import scipy)."""
    from realbasicvsr.commands import evaluate as command
    from realbasicvsr.metrics import evaluate as library

    assert command.METRIC_NAMES == library.METRIC_NAMES
    assert tuple(library.PROTOCOLS) == command.PROTOCOLS
