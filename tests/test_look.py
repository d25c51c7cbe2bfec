"""Grain and colour fix through the upscaler and the command line: the same grain for a frame however the run is
cut into segments, and the colour fix undoing a model's colour shift (real footage, FFV1 in, PNG out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import pass_through_model
from realbasicvsr.cli import main
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.upscale.finish import color_error
from realbasicvsr.upscale.windows import to_tensor
from realbasicvsr.weights import save_release
from test_strength import real_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def frames_of(folder: Path) -> np.ndarray:
    return np.stack([f.image for f in read_frames(probe(folder))]).astype(np.float64)


def upscale(source: Path, out: Path, weights: Path, *flags: object) -> np.ndarray:
    argv = ["upscale", str(source), str(out), "--weights", str(weights), "--quiet", "--scenes", "off"]
    assert main([*argv, *map(str, flags)]) == 0
    return frames_of(out)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A generator whose output is the bilinear x4 of its input (zero residuals)."""
    return save_release(pass_through_model(), tmp_path_factory.mktemp("w") / "plain.safetensors")


def test_grain_is_the_same_however_the_run_is_segmented(tmp_path, plain):
    source = real_clip(tmp_path / "car.mkv", frames=8)
    whole = upscale(source, tmp_path / "whole", plain, "--grain", 4)
    pieces = upscale(source, tmp_path / "pieces", plain, "--grain", 4, "--segment-frames", 3, "--window", 2)
    clean = upscale(source, tmp_path / "clean", plain)
    other = upscale(source, tmp_path / "other", plain, "--grain", 4, "--grain-seed", 1)
    assert np.array_equal(whole, pieces)
    added = whole - clean
    assert abs(added.mean()) < 0.5 and 1.5 < added.std() < 5  # zero-mean, about 4 levels (less off mid-grey)
    assert np.array_equal(added[..., 0], added[..., 2]) or np.abs(added[..., 0] - added[..., 2]).max() <= 1  # luma
    assert not np.array_equal(whole, other)
    assert not np.array_equal(added[0], added[1])  # new grain each frame


def test_color_fix_undoes_a_models_colour_shift(tmp_path):
    source = real_clip(tmp_path / "car.mkv", frames=4)
    model = pass_through_model()
    with torch.no_grad():
        # a magenta-blue cast of unchanged luma (BT.709 weights): a colour shift, which the fix (chroma only) is for
        model.basicvsr.conv_last.bias.copy_(torch.tensor([0.04, -0.02, 0.08]))
    shifted_weights = save_release(model, tmp_path / "shifted.safetensors")
    lq = torch.stack([to_tensor(f.image) for f in read_frames(probe(source))])

    def error(frames: np.ndarray) -> float:
        hr = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        return color_error(hr, lq)["lowpass_abs_levels"]

    shifted = upscale(source, tmp_path / "shifted", shifted_weights)
    fixed = upscale(source, tmp_path / "fixed", shifted_weights, "--color-fix")
    before, after = error(shifted), error(fixed)
    assert before > 8 and after < before / 4, (before, after)
