"""Gamut-covering training data (issue 21): generated graphics canvases and the colour jitter of the GT."""

from __future__ import annotations

import numpy as np
import pytest

from realbasicvsr.errors import ConfigError
from realbasicvsr.train.graphics import KINDS, colour_matrix, graphics_canvas, jitter_colours


def _saturated_fraction(pixels: np.ndarray, hue: str) -> float:
    p = pixels.reshape(-1, 3).astype(np.int16)
    r, g, b = p[:, 0], p[:, 1], p[:, 2]
    # Strongly saturated: the hue's channels at least 120 levels above the others.
    if hue == "blue":
        return float((b - np.maximum(r, g) > 120).mean())
    return float((np.minimum(g, b) - r > 120).mean())  # cyan


def test_colour_matrix_rotates_hue_and_keeps_greys():
    for hue, saturation in ((0, 1), (37, 2.0), (200, 0.5)):
        grey = colour_matrix(hue, saturation) @ np.array([90.0, 90.0, 90.0])
        assert np.allclose(grey, 90.0)
    assert np.allclose(colour_matrix(120, 1) @ [255, 0, 0], [0, 255, 0], atol=1e-9)
    assert np.allclose(colour_matrix(240, 1) @ [255, 0, 0], [0, 0, 255], atol=1e-9)
    assert np.allclose(colour_matrix(0, 2) @ [150, 100, 100], [183.33, 83.33, 83.33], atol=0.01)


def test_jitter_reaches_the_colours_photographs_lack():
    # A warm, desaturated picture (like most of the bundled photographs) jittered many times covers saturated
    # blue and cyan, and one call changes every frame of a clip the same way.
    rng = np.random.default_rng(0)
    warm = np.stack([np.full((8, 8, 3), (170, 120, 90), np.uint8), np.full((8, 8, 3), (90, 60, 40), np.uint8)])
    assert _saturated_fraction(warm, "blue") == 0 and _saturated_fraction(warm, "cyan") == 0
    outs = [jitter_colours(warm, rng) for _ in range(300)]
    assert any(_saturated_fraction(o, "blue") > 0 for o in outs)
    assert any(_saturated_fraction(o, "cyan") > 0 for o in outs)
    one = outs[0]
    assert one.dtype == np.uint8 and one.shape == warm.shape
    # Same matrix for both frames: the ratio of the two (flat) frames' distances from grey is kept.
    assert len({tuple(f.reshape(-1, 3)[0]) for f in one}) == 2
    with pytest.raises(ValueError, match="max_saturation"):
        jitter_colours(warm, rng, max_saturation=0.1)


@pytest.mark.parametrize("kind", KINDS)
def test_each_graphics_kind_is_a_seeded_picture_with_saturated_colours(kind):
    image = graphics_canvas(kind, np.random.default_rng(3), size=(96, 128))
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    assert np.array_equal(image, graphics_canvas(kind, np.random.default_rng(3), size=(96, 128)))
    assert image.std() > 5  # not blank


def test_the_canvases_cover_blue_and_cyan():
    rng = np.random.default_rng(0)
    canvases = np.stack([graphics_canvas(KINDS[k % len(KINDS)], rng, size=(96, 128)) for k in range(18)])
    assert _saturated_fraction(canvases, "blue") > 0.005 and _saturated_fraction(canvases, "cyan") > 0.005


def test_unknown_kind_and_bad_probability_are_refused():
    from realbasicvsr.train.config import DataConfig

    with pytest.raises(ValueError, match="unknown graphics kind"):
        graphics_canvas("photo", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="colour_jitter"):
        DataConfig(colour_jitter=1.5)


def test_training_samples_are_jittered_only_when_asked(tmp_path):
    from PIL import Image

    from realbasicvsr.train.config import DataConfig
    from realbasicvsr.train.data import TrainDataset, scan_clips

    clip = tmp_path / "data" / "warm"
    clip.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 32, 3), (170, 120, 90), np.uint8)).save(clip / f"{i:08d}.png")
    clips = scan_clips(tmp_path / "data", min_frames=4, min_size=32)
    plain = DataConfig(degradation=None, num_frames=4, gt_size=32, batch_size=1, workers=0, mirror=False)
    jittered = DataConfig(degradation=None, num_frames=4, gt_size=32, batch_size=1, workers=0, mirror=False,
                          colour_jitter=1.0)  # fmt: skip
    base = TrainDataset(clips, plain, seed=0)[(0, 0)]["gt"]
    assert np.allclose(base[:, :, 0, 0].numpy() * 255, [170, 120, 90], atol=0.5)
    moved = [TrainDataset(clips, jittered, seed=s)[(0, 0)]["gt"][0, :, 0, 0].numpy() * 255 for s in range(4)]
    assert all(np.abs(m - [170, 120, 90]).max() > 1 for m in moved)


def test_clean_fraction_mixes_in_plain_pairs(tmp_path):
    from PIL import Image

    from realbasicvsr.train.config import DataConfig
    from realbasicvsr.train.data import TrainDataset, bicubic_pair, scan_clips

    clip = tmp_path / "data" / "ramp"
    clip.mkdir(parents=True)
    ramp = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    for i in range(4):
        Image.fromarray(np.roll(ramp, i, axis=1)).save(clip / f"{i:08d}.png")
    clips = scan_clips(tmp_path / "data", min_frames=4, min_size=64)
    common = {"num_frames": 4, "gt_size": 64, "batch_size": 1, "workers": 0, "mirror": False}
    plain = TrainDataset(clips, DataConfig(clean_fraction=1.0, **common), seed=0)[(0, 0)]
    gt = (plain["gt"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(plain["lq"].numpy(), bicubic_pair(gt, False)["lq"])
    assert np.array_equal(plain["gt_usm"].numpy(), plain["gt"].numpy())  # no sharpening in a plain pair
    degraded = TrainDataset(clips, DataConfig(clean_fraction=0.0, **common), seed=0)[(0, 0)]
    assert not np.array_equal(degraded["gt_usm"].numpy(), degraded["gt"].numpy())
    with pytest.raises(ConfigError, match="clean_fraction"):
        DataConfig(clean_fraction=-0.1)
