"""NIQE/BRISQUE against MATLAB values, PSNR/SSIM against hand-computed cases, and the MATLAB helpers."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from realbasicvsr.errors import UserError
from realbasicvsr.metrics import brisque, niqe, psnr, ssim
from realbasicvsr.metrics.brisque import parse_libsvm_model, parse_libsvm_range, svm_scale
from realbasicvsr.metrics.color import convert_image, matlab_round
from realbasicvsr.metrics.imresize import imresize
from realbasicvsr.metrics.nss import fit_aggd, fit_ggd

CALIB = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]


def _matlab_values() -> dict[tuple[str, str], float]:
    with shared_path("iqa_calib", "matlab_reference_values.csv").open() as handle:
        return {(row["image"], row["metric"]): float(row["matlab_value"]) for row in csv.DictReader(handle)}


def _calib_image(name: str) -> np.ndarray:
    return np.asarray(Image.open(shared_path("iqa_calib", name)).convert("RGB"))


@pytest.mark.parametrize("name", CALIB)
def test_niqe_matches_matlab(name: str) -> None:
    value = niqe(_calib_image(name), convert_to="gray", params_dir=shared_path("iqa_params"))
    assert abs(value - _matlab_values()[(name, "niqe")]) <= 0.05


@pytest.mark.parametrize("name", CALIB)
def test_brisque_matches_matlab(name: str) -> None:
    value = brisque(_calib_image(name), convert_to="gray", params_dir=shared_path("iqa_params"))
    expected = _matlab_values()[(name, "brisque")]
    if name == "I19.bmp":  # large flat areas: see docs/metrics.md
        assert abs(value - expected) <= 0.12 * abs(expected)
    else:
        assert abs(value - expected) <= 0.15


def test_float_input_scores_like_the_saved_png() -> None:
    image = _calib_image("I04.bmp")
    params = shared_path("iqa_params")
    as_float = image.astype(np.float32) / 255.0
    assert niqe(as_float, params_dir=params) == niqe(image, params_dir=params)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        niqe(as_float * 2, params_dir=params)


def test_niqe_rejects_images_smaller_than_two_blocks() -> None:
    with pytest.raises(ValueError, match="96x96"):
        niqe(np.zeros((100, 100, 3), np.uint8), params_dir=shared_path("iqa_params"))


def test_missing_parameter_folder_is_a_user_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from realbasicvsr.metrics import params

    with pytest.raises(UserError, match="give its folder as params_dir") as caught:
        params.param_file("brisque/allmodel", tmp_path / "empty", allow_download=False)
    assert caught.value.option == "params_dir"  # the evaluate command adds "(set with --params-dir)"


def test_download_checks_sha256(tmp_path, monkeypatch) -> None:
    from realbasicvsr.metrics import params

    source = shared_path("iqa_params", "brisque", "allrange")
    good = params.ParamSource(source.as_uri(), params.sha256_of(source))
    monkeypatch.setitem(params.SOURCES, "brisque/allrange", good)
    target = params.download("brisque/allrange", tmp_path / "brisque" / "allrange")
    assert target.read_bytes() == source.read_bytes()
    monkeypatch.setitem(params.SOURCES, "brisque/allrange", params.ParamSource(source.as_uri(), "0" * 64))
    with pytest.raises(UserError, match="sha256"):
        params.download("brisque/allrange", tmp_path / "other" / "allrange")
    assert not (tmp_path / "other" / "allrange").exists()
    assert list((tmp_path / "other").iterdir()) == []  # no partial file left behind


# ----------------------------------------------------------------------------------- MATLAB helpers
def test_matlab_colour_conversions() -> None:
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    # rgb2gray coefficients 0.298936.., 0.587043.., 0.114020.. then rounding to uint8
    assert convert_image(pixels, "gray").tolist() == [[76.0, 150.0, 29.0, 255.0, 0.0]]
    # rgb2ycbcr Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded
    assert convert_image(pixels, "y").tolist() == [[81.0, 145.0, 41.0, 235.0, 16.0]]
    assert matlab_round(np.array([0.5, 1.5, 2.5, -0.5])).tolist() == [1.0, 2.0, 3.0, -1.0]


def test_imresize_preserves_ramps_and_constants() -> None:
    ramp = np.tile(np.arange(1.0, 33.0), (16, 1))
    half = imresize(ramp, scale=0.5)
    assert half.shape == (8, 16)
    # MATLAB maps output pixel k (1-based) to input coordinate 2k - 0.5; away from the mirrored edges a
    # linear ramp is reproduced exactly.
    np.testing.assert_allclose(half[:, 3:-3], np.tile(2 * np.arange(4, 14) - 0.5, (8, 1)), atol=1e-10)
    up = imresize(ramp[:, :8], scale=4)
    assert up.shape == (64, 32)
    np.testing.assert_allclose(up[0, 8:-8], np.arange(9, 25) / 4 + 0.375, atol=1e-10)
    np.testing.assert_allclose(imresize(np.full((9, 7), 3.25), scale=0.5), 3.25, atol=1e-12)
    assert imresize(np.zeros((9, 7)), scale=0.5).shape == (5, 4)  # ceil, as MATLAB


def test_ggd_and_aggd_fits_recover_known_shapes() -> None:
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((2, 200_000))
    laplace = rng.laplace(size=(1, 200_000))
    shape, std = fit_ggd(gaussian)
    np.testing.assert_allclose(shape, 2.0, atol=0.05)
    np.testing.assert_allclose(std, 1.0, atol=0.01)
    assert abs(fit_ggd(laplace)[0][0] - 1.0) < 0.05
    # An AGGD puts mass proportional to its scale on each side: left scale 1 (p = 1/3), right scale 2.
    magnitude = np.abs(gaussian)
    skewed = np.where(rng.random(magnitude.shape) < 1 / 3, -magnitude, 2 * magnitude)
    alpha, left, right = fit_aggd(skewed)
    np.testing.assert_allclose(alpha, 2.0, atol=0.1)
    np.testing.assert_allclose(right / left, 2.0, rtol=0.02)


def test_libsvm_parsing_and_scaling() -> None:
    model = parse_libsvm_model(
        "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 0.25\nSV\n"
        "1.5 1:1 2:0.5 \n-2 2:-1 \n",
        n_features=2,
    )
    x = np.array([0.5, 0.0])
    expected = 1.5 * math.exp(-0.5 * (0.25 + 0.25)) - 2 * math.exp(-0.5 * (0.25 + 1)) - 0.25
    assert model.predict(x)[0] == pytest.approx(expected, rel=1e-12)
    lower, upper, fmin, fmax = parse_libsvm_range("x\r\n-1 1\r\n2 0 4\r\n1 10 20\r\n")
    assert (lower, upper) == (-1.0, 1.0)
    np.testing.assert_allclose(svm_scale(np.array([15.0, 1.0]), lower, upper, fmin, fmax), [0.0, -0.5])
    np.testing.assert_allclose(svm_scale(np.array([10.0, 8.0]), lower, upper, fmin, fmax), [-1.0, 3.0])
    constant = parse_libsvm_range("x\n-1 1\n1 2 2\n2 0 4\n")  # feature 1 is single-valued: dropped (0)
    np.testing.assert_allclose(svm_scale(np.array([5.0, 4.0]), *constant), [0.0, 1.0])


# ------------------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_hand_computed() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(20, 200, size=(32, 40, 3), dtype=np.uint8)
    pred = gt + np.uint8(10)
    assert psnr(pred, gt, convert_to="rgb") == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    assert psnr(gt, gt) == math.inf
    border = gt.copy()
    border[:2] = 0
    assert psnr(border, gt, convert_to="rgb", crop_border=2) == math.inf
    assert psnr(border, gt, convert_to="rgb") < 30
    with pytest.raises(ValueError, match="shape"):
        psnr(gt[:-1], gt)


def test_ssim_hand_computed() -> None:
    a = np.full((20, 24), 100, np.uint8)
    b = np.full((20, 24), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    # flat images: variances and covariance are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    assert ssim(image, image, convert_to="rgb") == pytest.approx(1.0, abs=1e-12)


def _ssim_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    """Window-by-window SSIM with an explicit 11x11 Gaussian, to check the separable implementation."""
    axis = np.arange(11) - 5.0
    window = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (window * pa).sum(), (window * pb).sum()
            va, vb = (window * (pa - ma) ** 2).sum(), (window * (pb - mb) ** 2).sum()
            cov = (window * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_brute_force_and_decreases_with_noise() -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, size=(20, 23), dtype=np.uint8)
    light = np.clip(gt.astype(int) + rng.integers(-10, 11, gt.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(gt.astype(int) + rng.integers(-60, 61, gt.shape), 0, 255).astype(np.uint8)
    expected = _ssim_brute_force(light.astype(float), gt.astype(float))
    assert ssim(light, gt) == pytest.approx(expected, abs=1e-10)
    assert ssim(heavy, gt) < ssim(light, gt) < 1.0


def test_niqe_reads_the_npz_copy_and_rejects_rgb(tmp_path) -> None:
    (tmp_path / "niqe").mkdir()
    npz = shared_path("iqa_params", "niqe", "niqe_pris_params.npz")
    (tmp_path / "niqe" / npz.name).write_bytes(npz.read_bytes())
    image = _calib_image("I06.bmp")
    assert niqe(image, params_dir=tmp_path) == niqe(image, params_dir=shared_path("iqa_params"))
    with pytest.raises(ValueError, match="one channel"):
        brisque(image, convert_to="rgb", params_dir=shared_path("iqa_params"))


def test_parameter_lookup_order(tmp_path, monkeypatch) -> None:
    from realbasicvsr.metrics import params

    shared = shared_path("iqa_params")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(params.ENV_VAR, str(shared))
    assert params.param_file("brisque/allrange") == shared / "brisque" / "allrange"
    (tmp_path / "mine" / "brisque").mkdir(parents=True)
    (tmp_path / "mine" / "brisque" / "allrange").write_bytes((shared / "brisque" / "allrange").read_bytes())
    assert params.param_file("brisque/allrange", tmp_path / "mine") == tmp_path / "mine" / "brisque" / "allrange"
