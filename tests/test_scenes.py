"""The hard-cut detector (realbasicvsr.upscale.scenes) on the labelled set of tests/scene_cases.py (real clips, real
and joined cuts, synthetic pans, zooms, shake, fades and flashes made from real frames), and its small API."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.upscale.scenes import DELAY, CutDetector, SceneConfig, detect_cuts, read_cut_list
from scene_cases import MUST_NOT_CUT, SceneCase, all_cases, score


@pytest.fixture(scope="module")
def cases() -> dict[str, SceneCase]:
    return {case.name: case for case in all_cases()}


@pytest.fixture(scope="module")
def detected(cases) -> dict[str, list[int]]:
    return {name: detect_cuts(case.thumbs) for name, case in cases.items()}


def test_labelled_set_precision_and_recall_at_the_default_sensitivity(cases, detected):
    hits = false = missed = 0
    wrong = []
    for name, case in cases.items():
        h, f, m = score(detected[name], case.cuts)
        hits, false, missed = hits + h, false + f, missed + m
        if f or m:
            wrong.append(f"{name}: found {detected[name]}, true {list(case.cuts)}")
    # Measured: 26 of 26 cuts found, no false cut (precision = recall = 1.0); the margin allows one miss or one
    # false cut where another FFmpeg build decodes or scales slightly differently.
    assert hits >= 25, wrong
    assert hits / (hits + false) >= 0.95, wrong
    assert hits / (hits + missed) >= 0.95, wrong
    assert sum(len(c.cuts) for c in cases.values()) == 26  # the set itself: 5 real cuts + 21 made ones


def test_no_false_cut_in_pans_zooms_shake_fades_flashes_or_continuous_shots(cases, detected):
    flickers = {n: detected[n] for n, c in cases.items() if c.family in MUST_NOT_CUT and detected[n]}
    assert not flickers
    assert sum(c.family in MUST_NOT_CUT for c in cases.values()) >= 20


def test_real_cuts_of_bikes_are_found_on_ffmpeg_thumbnails(cases, detected):
    assert detected["bikes, as decoded (FFmpeg thumbnails)"] == [30, 76, 137, 187, 242]


def test_a_cut_from_black_after_a_fade_out_is_a_cut_and_a_fade_in_is_not(cases, detected):
    assert detected["fade out, cut in from black"] == [40]
    assert detected["fade out and in, 10 frames"] == []


@pytest.mark.parametrize(
    "name",
    ["bikes, as decoded (FFmpeg thumbnails)", "cut between pans (bikes)", "fade out and in, 10 frames", "shake 8 px"],
)
def test_more_sensitivity_never_gives_fewer_cuts(cases, name):
    counts = [len(detect_cuts(cases[name].thumbs, SceneConfig(sensitivity=s))) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]  # the range does something on each of these cases


@pytest.mark.parametrize("min_frames", [2, 7, 10, 30])
def test_min_scene_frames_keeps_cuts_apart_and_drops_the_later_of_two(cases, min_frames):
    thumbs = cases["short shots"].thumbs
    every = detect_cuts(thumbs, SceneConfig(min_scene_frames=1))
    assert every == [8, 14, 21, 31]  # shots of 8, 6, 7, 10 frames
    kept: list[int] = []
    for cut in every:
        if not kept or cut - kept[-1] >= min_frames:
            kept.append(cut)
    found = detect_cuts(thumbs, SceneConfig(min_scene_frames=min_frames))
    assert found == kept
    assert all(b - a >= min_frames for a, b in itertools.pairwise(found))


def test_push_and_finish_equal_detect_cuts_and_confirm_cuts_after_a_fixed_delay(cases, detected):
    case = cases["bikes, as decoded (FFmpeg thumbnails)"]
    detector = CutDetector()
    for index, thumb in enumerate(case.thumbs):
        detector.push(thumb)
        confirmed = detector.cuts
        assert confirmed == [c for c in case.cuts if c <= index - DELAY]
    assert detector.finish() == detected[case.name]
    with pytest.raises(RuntimeError, match="after finish"):
        detector.push(case.thumbs[0])


def test_one_and_two_frame_inputs(cases):
    bikes, bunny = cases["bikes shot 3"].thumbs, cases["bunny, whole"].thumbs
    assert detect_cuts([]) == []
    assert detect_cuts(bikes[:1]) == []
    assert detect_cuts(bikes[:2]) == []
    assert detect_cuts([bikes[0], bunny[0]]) == [1]
    assert detect_cuts([bikes[0], bikes[1], bunny[0]]) == [2]


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (8, 8, 3), (4, 200, 3)])
def test_tiny_and_odd_thumbnails_work(shape):
    rng = np.random.default_rng(0)
    first = rng.integers(0, 60, shape, dtype=np.uint8)
    second = rng.integers(190, 255, shape, dtype=np.uint8)
    assert detect_cuts([first] * 6 + [second] * 6) == [6]


def test_bad_thumbnails_are_refused_with_the_fix():
    detector = CutDetector()
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.push(np.zeros((36, 64, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.push(np.zeros((36, 64), np.uint8))
    detector.push(np.zeros((36, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="same size"):
        detector.push(np.zeros((35, 64, 3), np.uint8))


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, True, "0.5", None])
def test_sensitivity_is_validated(value):
    with pytest.raises(ConfigError, match="scene_sensitivity must be a number from 0 to 1") as error:
        SceneConfig(sensitivity=value)
    assert error.value.option == "scene_sensitivity"
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("value", [0, -3, 2.0, True])
def test_min_scene_frames_is_validated(value):
    with pytest.raises(ConfigError, match="min_scene_frames must be a whole number of frames >= 1") as error:
        SceneConfig(min_scene_frames=value)
    assert error.value.option == "min_scene_frames"


def test_config_bounds_are_accepted():
    assert SceneConfig(sensitivity=0, min_scene_frames=1).sensitivity == 0
    assert SceneConfig(sensitivity=1.0).sensitivity == 1.0


def test_read_cut_list_accepts_separators_comments_duplicates_and_a_bom(tmp_path):
    path = tmp_path / "cuts.txt"
    path.write_text("\ufeff# cuts from the editor\n120, 30\n\n30 75\t+99  # the chase\n,,7,\n", encoding="utf-8")
    assert read_cut_list(path, 121) == [7, 30, 75, 99, 120]
    assert read_cut_list(str(path), 500) == [7, 30, 75, 99, 120]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert read_cut_list(empty, 1) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10\n12.5\n", r"line 2: '12.5' is not a frame number; write whole frame numbers"),
        ("10, frame20", r"line 1: 'frame20' is not a frame number"),
        ("0 10", r"line 1: cut '0' is outside 1..99; a cut is the 0-based index .* \(frame 0 always starts one\)"),
        ("10\n\n100", r"line 3: cut '100' is outside 1..99"),
        ("-5", r"cut '-5' is outside 1..99"),
        ("9" * 5000, r"cut '9999[9.]* is outside 1..99"),
    ],
)
def test_read_cut_list_refuses_bad_entries_in_one_line(tmp_path, text, message):
    path = tmp_path / "cuts.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        read_cut_list(path, 100)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert error.value.option == "cut_list"


def test_read_cut_list_refuses_missing_folder_and_binary_files(tmp_path):
    with pytest.raises(UserError, match="does not exist; give the path of a text file"):
        read_cut_list(tmp_path / "nope.txt", 100)
    with pytest.raises(UserError, match="is a folder; give the path of a text file"):
        read_cut_list(tmp_path, 100)
    binary = tmp_path / "cuts.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81 10")
    with pytest.raises(UserError, match="is not UTF-8 text"):
        read_cut_list(binary, 100)
