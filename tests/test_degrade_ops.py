"""Degradation kernels and ops against hand-checkable cases (realbasicvsr.degrade.kernels / ops / codec)."""

from __future__ import annotations

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("scipy")

from realbasicvsr.degrade import noise, ops  # noqa: E402
from realbasicvsr.degrade.codec import to_uint8_like_reference, video_compress  # noqa: E402
from realbasicvsr.degrade.kernels import (  # noqa: E402
    gaussian_kernel,
    generalized_gaussian_kernel,
    make_kernel,
    plateau_kernel,
    sinc_kernel,
)

ALL_TYPES = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc"]


@pytest.mark.parametrize("kernel_type", ALL_TYPES)
@pytest.mark.parametrize("size", [7, 21])
def test_kernels_sum_to_one_and_are_point_symmetric(kernel_type, size):
    k = make_kernel(kernel_type, size, sigma_x=2.3, sigma_y=0.9, rotation=0.7, beta=1.6, omega=1.3)
    assert k.shape == (size, size) and k.dtype == np.float32
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)  # d -> -d leaves every kernel unchanged
    assert np.unravel_index(np.argmax(k), k.shape) == (size // 2, size // 2)


def test_isotropic_gaussian_is_the_outer_product_of_1d_gaussians():
    g = cv2.getGaussianKernel(9, 1.7).ravel()  # exp(-x^2 / (2 sigma^2)), normalised
    np.testing.assert_allclose(gaussian_kernel(9, 1.7), np.outer(g, g), atol=1e-7)


def test_anisotropic_gaussian_orientation():
    wide_x = gaussian_kernel(15, 3.0, 1.0, 0.0)
    # rotation 0: sigma_x spreads along columns (x), so the centre row is wider than the centre column
    assert wide_x[7, 10] > 10 * wide_x[10, 7]
    # a quarter turn swaps the axes; a half turn changes nothing
    np.testing.assert_allclose(gaussian_kernel(15, 3.0, 1.0, math.pi / 2), wide_x.T, atol=1e-6)
    np.testing.assert_allclose(gaussian_kernel(15, 3.0, 1.0, math.pi), wide_x, atol=1e-6)


def test_generalized_and_plateau_formulas():
    np.testing.assert_allclose(generalized_gaussian_kernel(11, 1.5, beta=1.0), gaussian_kernel(11, 1.5), atol=1e-7)
    # iso plateau with sigma 2, beta 1.5: value at distance 1 / centre = 1 / (1 + (1/4)^1.5)
    k = plateau_kernel(11, 2.0, beta=1.5)
    assert k[5, 6] / k[5, 5] == pytest.approx(1 / (1 + 0.25**1.5), rel=1e-5)
    # generalized: exp(-0.5 * q^beta) with q = 1/4 at distance 1
    k = generalized_gaussian_kernel(11, 2.0, beta=0.5)
    assert k[5, 6] / k[5, 5] == pytest.approx(math.exp(-0.5 * 0.25**0.5), rel=1e-5)


def test_sinc_kernel_centre_and_cutoff():
    omega = math.pi / 3
    k = sinc_kernel(21, omega)
    from scipy import special

    # centre / value at distance 2 follows omega^2/(4 pi) vs omega J1(2 omega) / (4 pi)
    expected_ratio = (omega * special.j1(2 * omega) / (4 * math.pi)) / (omega**2 / (4 * math.pi))
    assert k[10, 12] / k[10, 10] == pytest.approx(expected_ratio, rel=1e-5)
    # frequency response (zero-padded FFT): passes low frequencies, stops those above the cut-off
    response = np.abs(np.fft.fft2(k, s=(256, 256)))
    freqs = np.fft.fftfreq(256) * 2 * math.pi
    assert response[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert response[0, np.argmin(np.abs(freqs - omega / 2))] > 0.9
    assert response[0, np.argmin(np.abs(freqs - 1.6 * omega))] < 0.1


def _delta(height, width):
    img = np.zeros((height, width, 3), np.float32)
    img[height // 2, width // 2] = 1.0
    return img


@pytest.mark.parametrize(
    ("kernel_type", "size", "frame"),
    [("iso", 21, 64), ("aniso", 7, 64), ("plateau_aniso", 21, 64), ("generalized_aniso", 21, 200)],
)
def test_blur_of_a_delta_returns_the_kernel(kernel_type, size, frame):
    # covers the three paths: separable (iso), cv2.filter2D (small/medium), FFT (large kernel, large frame)
    k = make_kernel(kernel_type, size, 2.5, 1.2, 0.4, 1.3)
    out = ops.blur([_delta(frame, frame)], [k])[0]
    c, p = frame // 2, size // 2
    patch = out[c - p : c + p + 1, c - p : c + p + 1, 1]
    np.testing.assert_allclose(patch, k[::-1, ::-1], atol=1e-6)  # correlation = the flipped kernel
    assert out.sum() == pytest.approx(3.0, abs=1e-4)


@pytest.mark.parametrize(("kernel_type", "rotation"), [("iso", 0.0), ("aniso", 1.1), ("aniso", 0.0), ("sinc", 0.0)])
@pytest.mark.parametrize("shape", [(256, 256), (191, 203), (9, 5)])
def test_blur_matches_opencv_filter2d(kernel_type, rotation, shape):
    # aniso at rotation 0 is rank 1 but not symmetric in x and y: checks the orientation of the 1-D passes
    rng = np.random.default_rng(1)
    frame = rng.random((*shape, 3), dtype=np.float32)
    k = make_kernel(kernel_type, 17, 1.9, 0.8, rotation, omega=1.0)
    np.testing.assert_allclose(ops.blur([frame], [k])[0], cv2.filter2D(frame, -1, k), atol=2e-6)


def test_resize_sizes_and_even_rule():
    assert ops.scaled_size(256, 256, 0.5) == (128, 128)
    assert ops.scaled_size(256, 256, 0.151) == (38, 38)  # 2 * floor(38.66 / 2)
    assert ops.scaled_size(135, 241, 1.0) == (134, 240)
    assert ops.scaled_size(5, 5, 0.15) == (2, 2)  # never empty
    frames = [np.ones((20, 30, 3), np.float32) * 0.5, np.zeros((20, 30, 3), np.float32)]
    for interpolation in ("bilinear", "area", "bicubic"):
        out = ops.resize(frames, [(10, 16), (40, 8)], interpolation)
        assert [f.shape for f in out] == [(10, 16, 3), (40, 8, 3)]
        np.testing.assert_allclose(out[0], 0.5, atol=1e-6)  # flat stays flat
    with pytest.raises(ValueError, match="interpolation"):
        ops.resize(frames, [(10, 10)] * 2, "nearest")


def test_gaussian_noise_statistics_and_gray():
    rng = np.random.default_rng(0)
    frames = [np.full((128, 128, 3), 0.5, np.float32)] * 2
    color = noise.add_gaussian_noise(frames, [10 / 255, 20 / 255], False, rng)
    assert np.std(color[0] - 0.5) == pytest.approx(10 / 255, rel=0.03)
    assert np.std(color[1] - 0.5) == pytest.approx(20 / 255, rel=0.03)
    assert abs(np.mean(color[0] - 0.5)) < 1e-3
    assert not np.allclose(color[0][..., 0], color[0][..., 1])
    gray = noise.add_gaussian_noise(frames, [10 / 255] * 2, True, rng)
    assert gray[0].shape == (128, 128, 3)
    np.testing.assert_array_equal(gray[0][..., 0], gray[0][..., 2])


def test_poisson_counts_match_the_poisson_distribution():
    from scipy import stats

    rng = np.random.default_rng(0)
    levels = np.repeat(np.array([0, 1, 20, 128, 255], np.uint8), 40_000)
    counts = noise.poisson_counts(levels, 256, rng)
    for level in (0, 1, 20, 128, 255):
        sample = counts[levels == level]
        rate = level * 256 / 255
        assert sample.mean() == pytest.approx(rate, abs=4 * math.sqrt(max(rate, 1e-9) / sample.size) + 1e-12)
        if rate:
            assert sample.var() == pytest.approx(rate, rel=0.05)
    # chi-square goodness of fit at rate ~20 over the bulk of the distribution
    sample = counts[levels == 20]
    rate = 20 * 256 / 255
    ks = np.arange(8, 36)
    observed = np.array([(sample == k).sum() for k in ks])
    expected = stats.poisson.pmf(ks, rate) * sample.size
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, len(ks) - 1)


def test_poisson_noise_levels_and_gray():
    rng = np.random.default_rng(0)
    # two distinct values -> vals = 2: the noisy image minus the scaled offset is a multiple of 1/2
    frame = np.zeros((64, 64, 3), np.float32)
    frame[:, 32:] = 1.0
    out = noise.add_poisson_noise([frame], [1.0], False, rng)[0]
    assert np.allclose((out * 2) % 1, 0, atol=1e-5)
    assert np.all(out[:, :32] == 0)  # level 0 has no shot noise
    gray = noise.add_poisson_noise([np.full((32, 32, 3), 0.4, np.float32)], [1.0], True, rng)[0]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])


def test_jpeg_round_trip():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:40]
    smooth = np.stack([np.sin(xx / 5), np.cos(yy / 7), np.sin((xx + yy) / 9)], -1).astype(np.float32) * 0.4 + 0.5
    noisy = smooth + rng.normal(0, 0.02, smooth.shape).astype(np.float32)
    high, low = ops.jpeg([noisy, noisy], [95, 30])
    assert high.shape == low.shape == noisy.shape and high.dtype == np.float32
    assert np.allclose(high * 255, np.round(high * 255), atol=1e-3)  # 8-bit grid
    assert np.abs(high - noisy).mean() < np.abs(low - noisy).mean()
    assert np.abs(high - noisy).mean() < 0.02


def test_quantize():
    out = ops.quantize([np.array([[[-0.2, 0.5, 1.3]]], np.float32)])[0]
    np.testing.assert_allclose(out, [[[0.0, 128 / 255, 1.0]]])  # 127.5 rounds half to even -> 128


def test_unsharp_mask_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    clip = np.clip(rng.normal(0.5, 0.2, (2, 40, 36, 3)), 0, 1).astype(np.float32)
    out = ops.unsharp_mask(clip)
    kernel = cv2.getGaussianKernel(51, 0)
    kernel2d = kernel @ kernel.T
    for frame, got in zip(clip, out):
        residue = frame - cv2.filter2D(frame, -1, kernel2d)
        mask = (np.abs(residue) * 255 > 10).astype(np.float32)
        soft = cv2.filter2D(mask, -1, kernel2d)
        expected = soft * np.clip(frame + 0.5 * residue, 0, 1) + (1 - soft) * frame
        np.testing.assert_allclose(got, expected, atol=2e-5)
    flat = np.full((1, 30, 30, 3), 0.3, np.float32)
    np.testing.assert_allclose(ops.unsharp_mask(flat), flat, atol=1e-6)
    # uint8 input is read as value / 255
    clip8 = (clip * 255).round().astype(np.uint8)
    np.testing.assert_allclose(ops.unsharp_mask(clip8), ops.unsharp_mask(clip8 / np.float32(255)), atol=1e-5)


def test_uint8_conversion_wraps_like_the_reference():
    values = np.array([-1.5, 0.0, 0.999, 127.9, 260.1], np.float32) / 255
    np.testing.assert_array_equal(to_uint8_like_reference(values), [255, 0, 0, 127, 4])
    np.testing.assert_array_equal(to_uint8_like_reference(values, wrap_out_of_range=False), [0, 0, 0, 127, 255])


def _moving_clip(num, height, width):
    yy, xx = np.mgrid[0:height, 0:width]
    return [
        (np.stack([np.sin((xx + 2 * t) / 6), np.cos((yy - t) / 5), np.sin((xx + yy) / 8)], -1) * 0.4 + 0.5).astype(
            np.float32
        )
        for t in range(num)
    ]


@pytest.mark.parametrize("codec", ["libx264", "h264", "mpeg4"])
def test_codec_round_trip_keeps_shape_and_count(codec):
    clip = _moving_clip(6, 48, 64)
    out = video_compress(clip, codec, 100_000)
    assert len(out) == 6 and all(f.shape == (48, 64, 3) and f.dtype == np.float32 for f in out)
    assert np.mean([np.abs(a - b).mean() for a, b in zip(out, clip)]) < 0.05
    again = video_compress(clip, codec, 100_000)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))  # reproducible bytes


def test_codec_bitrate_matters_and_odd_sizes_and_single_frames():
    clip = _moving_clip(8, 64, 64)
    rng = np.random.default_rng(0)
    clip = [f + rng.normal(0, 0.05, f.shape).astype(np.float32) for f in clip]
    low = video_compress(clip, "libx264", 10_000)
    high = video_compress(clip, "libx264", 100_000)
    err = [np.mean([np.abs(a - b).mean() for a, b in zip(o, clip)]) for o in (low, high)]
    assert err[0] > err[1]
    odd = video_compress(_moving_clip(3, 33, 45), "libx264", 50_000)
    assert [f.shape for f in odd] == [(33, 45, 3)] * 3
    single = video_compress(_moving_clip(1, 16, 16), "mpeg4", 50_000)
    assert len(single) == 1 and single[0].shape == (16, 16, 3)


def test_codec_rescales_frames_to_the_size_of_frame_zero():
    clip = _moving_clip(3, 32, 32)
    clip[1] = _moving_clip(2, 40, 36)[1]
    out = video_compress(clip, "mpeg4", 80_000)
    assert [f.shape for f in out] == [(32, 32, 3)] * 3


def test_poisson_inverse_cdf_at_the_extremes():
    levels = np.array([0, 1, 128, 255], np.uint8)
    rates = levels.astype(np.float64) * 256 / 255
    # the largest draw must still give a plausible count (no run-off to the end of the table)
    top = noise.poisson_inverse_cdf(levels, np.full(4, (1 << 30) - 1, np.int32), 256)
    assert top[0] == 0
    assert np.all(top[1:] > rates[1:]) and np.all(top[1:] < rates[1:] + 8 * np.sqrt(rates[1:]) + 8)
    # the smallest draw gives the bottom of the distribution, the middle one its median
    bottom = noise.poisson_inverse_cdf(levels, np.zeros(4, np.int32), 256)
    np.testing.assert_array_equal(bottom[:2], [0, 0])
    assert np.all(bottom[2:] > rates[2:] - 8 * np.sqrt(rates[2:]))
    middle = noise.poisson_inverse_cdf(levels, np.full(4, 1 << 29, np.int32), 256)
    np.testing.assert_allclose(middle, rates, atol=1.0)


def test_poisson_min_vals_keeps_flat_graphics_as_noisy_as_photographs():
    # The reference scales shot noise by the number of distinct values: a flat frame (1 value, vals = 1) gets
    # noise of std sqrt(v) -- far outside [0, 1], so clipping later moves its mean colour. min_vals=256 treats it
    # as a photograph (std sqrt(v / 256)).
    flat = [np.full((64, 64, 3), 0.75, np.float32)]
    reference = noise.add_poisson_noise(flat, [1.0], False, np.random.default_rng(0))[0]
    photo_like = noise.add_poisson_noise(flat, [1.0], False, np.random.default_rng(0), min_vals=256)[0]
    assert reference.std() > 0.6 and np.clip(reference, 0, 1).mean() < 0.6
    assert 0.03 < photo_like.std() < 0.08 and abs(np.clip(photo_like, 0, 1).mean() - 0.75) < 0.01
    # A frame with many distinct values is unchanged by the option.
    ramp = [np.linspace(0, 1, 64 * 64 * 3, dtype=np.float32).reshape(64, 64, 3)]
    a = noise.add_poisson_noise(ramp, [1.0], True, np.random.default_rng(1))[0]
    b = noise.add_poisson_noise(ramp, [1.0], True, np.random.default_rng(1), min_vals=256)[0]
    np.testing.assert_array_equal(a, b)
