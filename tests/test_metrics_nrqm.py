"""NRQM: forest evaluation on a small synthetic model in the layout of sr-metric's model.mat, and feature
invariants (the real model.mat is not available, so the score itself cannot be checked against MATLAB)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from conftest import shared_path
from realbasicvsr.errors import UserError
from realbasicvsr.metrics import niqe, nrqm, perceptual_index
from realbasicvsr.metrics.color import prepare
from realbasicvsr.metrics.nrqm import (
    _gaussian_pyramid,
    load_nrqm_model,
    local_frequency_features,
    nrqm_features,
    spatial_features,
)
from realbasicvsr.metrics.steerable import steerable_pyramid


def _forest(trees: list[list[tuple]]) -> dict:
    """regRF-style struct from trees given as node lists (left, right, status, threshold, value, variable)."""
    nodes = max(len(tree) for tree in trees)
    arrays = {
        name: np.zeros((nodes, len(trees))) for name in ("lDau", "rDau", "nodestatus", "upper", "avnode", "mbest")
    }
    for t, tree in enumerate(trees):
        for k, (left, right, status, threshold, value, variable) in enumerate(tree):
            for name, v in zip(arrays, (left, right, status, threshold, value, variable)):
                arrays[name][k, t] = v
    arrays["ndtree"] = np.array([[len(tree) for tree in trees]], dtype=float)
    arrays["ntree"] = np.array([[len(trees)]], dtype=float)
    return arrays


def _stump(variable: int, threshold: float, low: float, high: float) -> list[tuple]:
    # node 1 splits x[variable] <= threshold -> node 2 (terminal, low) else node 3 (terminal, high)
    return [(2, 3, -3, threshold, 0.0, variable), (0, 0, -1, 0.0, low, 0), (0, 0, -1, 0.0, high, 0)]


def _write_model(path, forests: list[dict], linear: list[float]) -> None:
    cells = np.empty((1, 3), dtype=object)
    for i, forest in enumerate(forests):
        cells[0, i] = forest
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"model": {"rf": cells, "linear": np.array(linear, dtype=float).reshape(4, 1)}})


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.asarray(Image.open(shared_path("iqa_calib", "I04.bmp")).convert("RGB"))[:200, :200]


@pytest.mark.slow
def test_forest_and_linear_combination_follow_the_model(tmp_path, image) -> None:
    f1, f2, f3 = nrqm_features(prepare(image, "y", 0))
    deep = [  # three levels: x[2] <= f1[1] (true) -> node 2 splits x[5] <= f1[4] - 1 (false) -> node 5
        (2, 3, -3, f1[1], 0.0, 2),
        (4, 5, -3, f1[4] - 1.0, 0.0, 5),
        (0, 0, -1, 0.0, 100.0, 0),
        (0, 0, -1, 0.0, 200.0, 0),
        (0, 0, -1, 0.0, 7.0, 0),
    ]
    forests = [
        _forest([_stump(1, f1[0], 1.0, 2.0), deep]),  # (1 + 7) / 2 = 4
        _forest([_stump(45, f2[44] - 1e-9, 3.0, 5.0), [(0, 0, -1, 0.0, 9.0, 0)]]),  # (5 + 9) / 2 = 7
        _forest([_stump(75, f3[74], 6.0, 8.0)] * 3),  # 6
    ]
    linear = [0.5, 0.25, -0.5, 1.0]
    _write_model(tmp_path / "nrqm" / "model.mat", forests, linear)
    expected = 0.5 + 0.25 * 4 - 0.5 * 7 + 1.0 * 6
    assert nrqm(image, params_dir=tmp_path) == pytest.approx(expected, abs=1e-12)
    assert nrqm(image, model_path=tmp_path / "nrqm" / "model.mat") == pytest.approx(expected, abs=1e-12)
    params = shared_path("iqa_params")
    # PIRM2018: both scores on Y with a 4-pixel shave; (10 - NRQM + NIQE) / 2
    pi = perceptual_index(image, params_dir=params, model_path=tmp_path / "nrqm" / "model.mat")
    shaved_nrqm = nrqm(image, crop_border=4, model_path=tmp_path / "nrqm" / "model.mat")
    assert pi == pytest.approx((10 - shaved_nrqm + niqe(image, crop_border=4, params_dir=params)) / 2, abs=1e-12)


def test_missing_or_wrong_model_is_reported(tmp_path, image, monkeypatch) -> None:
    monkeypatch.delenv("REALBASICVSR_IQA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(UserError, match=r"chaoma99/sr-metric"):
        nrqm(image, params_dir=tmp_path)
    savemat(tmp_path / "other.mat", {"weights": np.zeros(3)})
    with pytest.raises(ValueError, match="'model'"):
        load_nrqm_model(tmp_path / "other.mat")


def test_feature_sizes_and_contrast_behaviour(image) -> None:
    plane = prepare(image, "gray", 0)
    f1, f2, f3 = nrqm_features(plane)
    assert (f1.size, f2.size, f3.size) == (18, 45, 75)
    assert np.isfinite(np.concatenate([f1, f2, f3])).all()
    assert np.all(np.abs(f2[18:]) <= 1.0)  # the last 27 GSM features are SSIM values
    for level in range(3):  # singular values: non-negative and sorted per pyramid level
        values = f3[25 * level : 25 * (level + 1)]
        assert np.all(values >= 0) and np.all(np.diff(values) <= 1e-9)
    # The pyramid and the SVD are linear, so halving the contrast halves the spatial features; the DCT
    # shape / variation features are ratios and do not change.
    half = _gaussian_pyramid(plane / 255.0 * 0.5)
    full = _gaussian_pyramid(plane / 255.0)
    np.testing.assert_allclose(spatial_features(half), 0.5 * spatial_features(full), rtol=1e-9)
    # (the GGD shapes move slightly because of the 1e-7 guard in their moment ratio)
    f1_half, f1_full = local_frequency_features(half).reshape(3, 6), local_frequency_features(full).reshape(3, 6)
    np.testing.assert_allclose(f1_half[:, 2:], f1_full[:, 2:], rtol=1e-4)
    np.testing.assert_allclose(f1_half[:, :2], f1_full[:, :2], atol=0.05)


def test_steerable_pyramid_orientation_and_dc() -> None:
    flat_high, flat_bands = steerable_pyramid(np.full((64, 64), 7.0))
    assert np.abs(flat_high).max() < 1e-9
    assert max(np.abs(band).max() for level in flat_bands for band in level) < 1e-9
    x = np.arange(64)
    grating = np.tile(np.cos(2 * np.pi * 10 * x / 64), (64, 1))  # varies along x: horizontal frequency
    _, bands = steerable_pyramid(grating)
    energy = [float((band**2).sum()) for band in bands[0]]
    assert int(np.argmax(energy)) == 0
    assert energy[0] > 10 * energy[3]  # the orthogonal orientation sees almost nothing


def test_forest_fields_are_read_by_position_when_names_differ(tmp_path) -> None:
    # Same layout as regRF_train's struct (lDau, rDau, nodestatus, nrnodes, upper, avnode, mbest, ...) under
    # other names, as a converted copy may have.
    forest = _forest([_stump(2, 0.5, 1.0, 3.0)])
    order = ["lDau", "rDau", "nodestatus", "ndtree", "upper", "avnode", "mbest", "ntree"]
    renamed = {f"field{i}": forest[name] for i, name in enumerate(order)}
    _write_model(tmp_path / "model.mat", [renamed] * 3, [0.0, 1.0, 10.0, 100.0])
    model = load_nrqm_model(tmp_path / "model.mat")
    low, high = np.array([0.0, 0.4]), np.array([0.0, 0.6])
    assert model.predict(low, high, low) == pytest.approx(1.0 + 30.0 + 100.0)
