"""Plan sampling statistics, random walks, determinism, JSON round trips and the training sample."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("scipy")

from realbasicvsr.degrade import (
    DegradationConfig,
    apply_plan,
    make_training_sample,
    official,
    plan_from_json,
    plan_to_json,
    sample_plan,
)
from realbasicvsr.degrade.plan import BlurStep, CodecStep, JpegStep, NoiseStep, ResizeStep
from realbasicvsr.degrade.training_sample import make_training_sample_with_plan

NUM_PLANS = 3000


@pytest.fixture(scope="module")
def plans():
    rng = np.random.default_rng(1234)
    return [sample_plan(official(), 2, (64, 64), rng) for _ in range(NUM_PLANS)]


def _close(count, total, p):
    """Binomial frequency within 4.5 standard deviations."""
    return abs(count / total - p) <= 4.5 * math.sqrt(p * (1 - p) / total) + 1e-12


def _steps(plans, stage):
    return [s for plan in plans for s in plan.steps if s.stage == stage]


def test_skip_probabilities_and_final_order(plans):
    stages = Counter(stage for plan in plans for stage in plan.stages())
    for stage in ("blur1", "resize1", "noise1", "jpeg1", "codec1", "resize2", "noise2", "jpeg2"):
        assert stages[stage] == NUM_PLANS
    for stage in ("blur2", "sinc_final"):
        assert _close(stages[stage], NUM_PLANS, 0.8)
    orders = Counter(plan.final_order for plan in plans)
    assert _close(orders[("codec", "resize+sinc")], NUM_PLANS, 0.5)
    for plan in plans:  # the grouped steps stay together and resize comes before sinc
        names = plan.stages()
        i = names.index("resize_final")
        assert names[-1] in ("codec_final", "resize_final", "sinc_final")
        if "sinc_final" in names:
            assert names.index("sinc_final") == i + 1
        if plan.final_order[0] == "codec":
            assert names.index("codec_final") < i
        else:
            assert names[-1] == "codec_final"


def test_kernel_choice_frequencies(plans):
    cfg = official().blur1
    steps = _steps(plans, "blur1")
    types = Counter(s.kernel_type for s in steps)
    for kernel_type, p in zip(cfg.kernel_types, cfg.kernel_probs):
        assert _close(types[kernel_type], len(steps), p), kernel_type
    sizes = Counter(s.kernel_size for s in steps)
    assert set(sizes) == set(cfg.kernel_sizes)
    for size in cfg.kernel_sizes:
        assert _close(sizes[size], len(steps), 1 / len(cfg.kernel_sizes))
    assert {s.kernel_type for s in _steps(plans, "sinc_final")} == {"sinc"}


def test_resize_noise_codec_frequencies(plans):
    resize = _steps(plans, "resize1")
    modes = Counter(s.mode for s in resize)
    for mode, p in zip(("up", "down", "keep"), (0.2, 0.7, 0.1)):
        assert _close(modes[mode], len(resize), p)
    for mode, p in zip(("up", "down", "keep"), (0.3, 0.4, 0.3)):
        assert _close(Counter(s.mode for s in _steps(plans, "resize2"))[mode], NUM_PLANS, p)
    interps = Counter(s.interpolation for s in resize + _steps(plans, "resize_final"))
    for name in ("bilinear", "area", "bicubic"):
        assert _close(interps[name], 2 * NUM_PLANS, 1 / 3)
    for s in resize:
        start = s.scales[0]
        assert {"up": 1 <= start <= 1.5, "down": 0.15 <= start <= 1, "keep": start == 1}[s.mode]
    noise = _steps(plans, "noise1") + _steps(plans, "noise2")
    assert _close(Counter(s.kind for s in noise)["gaussian"], len(noise), 0.5)
    assert _close(sum(s.gray for s in noise), len(noise), 0.4)
    codecs = _steps(plans, "codec1") + _steps(plans, "codec_final")
    for name in ("libx264", "h264", "mpeg4"):
        assert _close(Counter(s.codec for s in codecs)[name], len(codecs), 1 / 3)
    rates = np.array([s.bitrate for s in codecs])
    assert rates.min() >= 10_000 and rates.max() <= 100_000
    assert abs(rates.mean() - 55_000) < 4.5 * 26_000 / math.sqrt(len(rates))
    qualities = np.array([s.qualities[0] for s in _steps(plans, "jpeg1")])
    assert qualities.min() >= 30 and qualities.max() <= 95 and abs(qualities.mean() - 62.5) < 1.5


@pytest.fixture(scope="module")
def long_plans():
    rng = np.random.default_rng(99)
    return [sample_plan(official(), 30, (64, 64), rng) for _ in range(300)]


def _check_walk(values, bounds, step):
    values = np.asarray(values)
    assert values.min() >= bounds[0] - 1e-12 and values.max() <= bounds[1] + 1e-12
    assert np.all(np.abs(np.diff(values)) <= step + 1e-12)


def test_walks_stay_in_range_and_move_at_most_one_step(long_plans):
    cfg = official()
    moved = 0
    for plan in long_plans:
        for s in plan.steps:
            if isinstance(s, BlurStep):
                blur = getattr(cfg, s.stage)
                assert len(s.sigma_x) == 30
                _check_walk(s.sigma_x, blur.sigma_range, blur.sigma_step)
                _check_walk(s.omega, blur.omega_range or (math.pi / 5, math.pi), blur.omega_step)
                if s.kernel_type.startswith("plateau"):
                    _check_walk(s.beta_walk, blur.beta_plateau_range, blur.beta_plateau_step)
                else:
                    _check_walk(s.beta_walk, blur.beta_gaussian_range, blur.beta_gaussian_step)
                if s.kernel_type in ("iso", "generalized_iso", "plateau_iso"):
                    assert s.sigma_y == s.sigma_x and set(s.rotation) == {0.0}
                elif s.kernel_type != "sinc":
                    _check_walk(s.sigma_y, blur.sigma_range, blur.sigma_step)
                    _check_walk(s.rotation, blur.rotation_range, blur.rotation_step)
                if s.kernel_type.startswith(("generalized", "plateau")):  # the redrawn beta lies between b and 1
                    for b, used in zip(s.beta_walk, s.beta):
                        assert min(b, 1) <= used <= max(b, 1)
                    moved += len(set(s.beta)) > 1
            elif isinstance(s, ResizeStep) and s.mode != "target":
                resize = getattr(cfg, s.stage)
                _check_walk(s.scales, resize.scale_range, resize.scale_step)
            elif isinstance(s, NoiseStep):
                noise = getattr(cfg, s.stage)
                if s.kind == "gaussian":
                    _check_walk(s.levels, noise.gaussian_sigma_range, noise.gaussian_sigma_step)
                else:
                    _check_walk(s.levels, noise.poisson_scale_range, noise.poisson_scale_step)
            elif isinstance(s, JpegStep):
                assert all(isinstance(q, int) for q in s.qualities)
                _check_walk(s.qualities, (30, 95), 3)
    assert moved > 0
    # the walks really move: the first-order sigma changes along the clip
    assert any(len(set(s.sigma_x)) == 30 for p in long_plans for s in p.steps if s.stage == "blur1")


def test_default_omega_range_depends_on_kernel_size(long_plans):
    for plan in long_plans:
        for s in plan.steps:
            if s.stage == "blur1" and s.kernel_type == "sinc":
                low = math.pi / 3 if s.kernel_size < 13 else math.pi / 5
                assert min(s.omega) >= low - 1e-12


def test_plan_determinism_and_json_round_trip():
    a = sample_plan(official(), 5, (16, 16), np.random.default_rng(7))
    b = sample_plan(official(), 5, (16, 16), np.random.default_rng(7))
    c = sample_plan(official(), 5, (16, 16), np.random.default_rng(8))
    assert a == b and a != c
    text = plan_to_json(a)
    json.loads(text)  # plain JSON
    assert plan_from_json(text) == a
    bad = json.loads(text)
    bad["steps"][0]["op"] = "sharpen"
    with pytest.raises(ValueError, match="unknown degradation op"):
        plan_from_json(json.dumps(bad))


def test_config_validation():
    with pytest.raises(ValueError, match="kernel_probs"):
        DegradationConfig(blur1=official().blur1.__class__(kernel_probs=(0.5, 0.5)))
    with pytest.raises(ValueError, match="odd"):
        DegradationConfig(usm_kernel_size=50)


def _clip(num, height, width, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / 4), np.cos(yy / 5), np.sin((xx + yy) / 7)], -1) * 0.35 + 0.5
    return np.stack([np.roll(base, t, 1) + rng.normal(0, 0.02, base.shape) for t in range(num)]).clip(0, 1)


def test_apply_plan_is_deterministic_and_has_the_target_size():
    clip = _clip(4, 37, 51).transpose(0, 3, 1, 2).astype(np.float32)  # odd sizes
    plan = sample_plan(official(), 4, (10, 12), np.random.default_rng(3))
    out = apply_plan(clip, plan)
    assert out.shape == (4, 3, 10, 12) and out.dtype == np.float32
    assert np.allclose(out * 255, np.round(out * 255), atol=1e-4) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out, apply_plan(clip, plan))
    single = apply_plan(clip[:1], sample_plan(official(), 1, (10, 12), np.random.default_rng(3)))
    assert single.shape == (1, 3, 10, 12)
    with pytest.raises(ValueError, match="frames"):
        apply_plan(clip[:2], plan)


@pytest.fixture(scope="module")
def gt_frames():
    return (_clip(5, 32, 48) * 255).round().astype(np.uint8)


def test_training_sample_shapes_mirror_and_ranges(gt_frames):
    sample, plan = make_training_sample_with_plan(gt_frames, np.random.default_rng(0))
    assert plan.num_frames == 10
    assert sample["gt"].shape == sample["gt_usm"].shape == (10, 3, 32, 48)
    assert sample["lq"].shape == (10, 3, 8, 12)
    for value in sample.values():
        assert value.dtype == np.float32 and value.min() >= 0 and value.max() <= 1
    np.testing.assert_array_equal(sample["gt"][:5], sample["gt"][5:][::-1])
    np.testing.assert_array_equal(sample["gt_usm"][:5], sample["gt_usm"][5:][::-1])
    np.testing.assert_allclose(sample["gt"][0].transpose(1, 2, 0), gt_frames[0] / 255, atol=1e-6)
    assert not np.allclose(sample["gt_usm"], sample["gt"])  # sharpening changed the edges
    plain = make_training_sample(gt_frames, np.random.default_rng(0), mirror=False, scale=2)
    assert plain["gt"].shape == (5, 3, 32, 48) and plain["lq"].shape == (5, 3, 16, 24)


def test_training_sample_is_deterministic_and_leaves_global_rngs_alone(gt_frames):
    torch = pytest.importorskip("torch")
    np.random.seed(5)
    random.seed(5)
    torch.manual_seed(5)
    states = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    a = make_training_sample(gt_frames, np.random.default_rng(11))
    b = make_training_sample(gt_frames, np.random.default_rng(11))
    c = make_training_sample(gt_frames, np.random.default_rng(12))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["lq"], c["lq"])
    np.testing.assert_array_equal(np.random.get_state()[1], states[0])
    assert random.getstate() == states[1]
    assert torch.equal(torch.get_rng_state(), states[2])


def test_training_sample_rejects_bad_input(gt_frames):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uint8"):
        make_training_sample(gt_frames.astype(np.float32), rng)
    with pytest.raises(ValueError, match="multiple"):
        make_training_sample(gt_frames[:, :30], rng)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        make_training_sample(gt_frames[..., :2], rng)


class _Samples:
    """Map-style dataset: the sample of index i depends only on (seed, i)."""

    def __init__(self, gt):
        self.gt = gt

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return make_training_sample(self.gt, np.random.default_rng([2024, index]))["lq"]


def test_same_samples_whatever_the_number_of_workers(gt_frames):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    single = [b for b in DataLoader(_Samples(gt_frames), batch_size=None, num_workers=0)]
    multi = [b for b in DataLoader(_Samples(gt_frames), batch_size=None, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(single, multi))
    assert not torch.equal(single[0], single[1])


def test_codec_steps_carry_the_reference_flags():
    plan = sample_plan(official(), 3, (8, 8), np.random.default_rng(0))
    codec = [s for s in plan.steps if isinstance(s, CodecStep)]
    assert codec and all(s.wrap_out_of_range and not s.x264_mbtree and s.x264_preset is None for s in codec)


def test_fast_preset_only_changes_the_x264_preset():
    from realbasicvsr.degrade import fast

    a = sample_plan(official(), 3, (8, 8), np.random.default_rng(4))
    b = sample_plan(fast(), 3, (8, 8), np.random.default_rng(4))
    assert a.stages() == b.stages()
    for sa, sb in zip(a.steps, b.steps):
        if isinstance(sa, CodecStep):
            assert sa.x264_preset is None and sb.x264_preset == "veryfast"
            assert (sa.codec, sa.bitrate) == (sb.codec, sb.bitrate)
        else:
            assert sa == sb
    clip = _clip(3, 16, 16).transpose(0, 3, 1, 2).astype(np.float32)
    assert apply_plan(clip, b).shape == (3, 3, 8, 8)


def test_training_sample_accepts_flipped_and_transposed_views(gt_frames):
    view = gt_frames[:, ::-1, ::-1].transpose(0, 2, 1, 3)  # what crop/flip/transpose augmentations hand over
    a = make_training_sample(view, np.random.default_rng(1))
    b = make_training_sample(np.ascontiguousarray(view), np.random.default_rng(1))
    assert a["lq"].shape == (10, 3, 12, 8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_poisson_min_vals_reaches_the_plan_and_old_plans_still_load():
    from realbasicvsr.train.config import degradation_from_value

    config = degradation_from_value({"noise1": {"poisson_min_vals": 256, "type_probs": [0.0, 1.0]}})
    plan = sample_plan(config, 3, (16, 16), np.random.default_rng(0))
    noise = [s for s in plan.steps if s.stage == "noise1"]
    assert noise and noise[0].kind == "poisson" and noise[0].poisson_min_vals == 256
    assert plan_from_json(plan_to_json(plan)) == plan
    old = json.loads(plan_to_json(plan))
    for step in old["steps"]:
        step.pop("poisson_min_vals", None)  # a plan written before the option existed
    assert next(s for s in plan_from_json(json.dumps(old)).steps if s.stage == "noise1").poisson_min_vals == 1
    with pytest.raises(ValueError, match="poisson_min_vals"):
        degradation_from_value({"noise1": {"poisson_min_vals": 100}})
