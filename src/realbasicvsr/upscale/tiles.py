"""Spatial tiles through the whole network: a fixed grid over the frame, each tile run on its own across time.

A tile is a rectangle of the LR frame (its core) widened by `halo` pixels of context on every side that has a
neighbour (clipped at the frame's edges, which are true edges for the untiled model too). Every tile runs the
whole model on its crop (cleaning, SPyNet, both propagation branches, the x4 stage) with its own stream state, so
its propagation is temporally consistent: the grid never moves. Memory is then that of one tile, plus the output
frames of one window, which are blended in place.

Blending: along each axis, a tile's weight is 1 over its core, and across each boundary with a neighbour it falls
linearly from 1 to 0 over the `halo` pixels centred on the boundary, while the neighbour's rises from 0 to 1; so the
weights sum to 1 everywhere, and the outer half of every halo (the context nearest the crop's edge, the least
like the untiled result) gets weight 0. The 2-D weight is the product of the two axes' weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from realbasicvsr.errors import ConfigError

# Chosen by measurement (benchmarks/bench_upscale.py tiles): see docs/upscaling.md, "Tiles".
DEFAULT_TILE_HALO = 32
SCALE = 4  # the model's upscale factor


@dataclass(frozen=True)
class Tile:
    """One tile of a grid, in LR pixels: the crop the model runs on ([top, bottom) x [left, right)), and the
    1-D blend weights of its x4 output along each axis (lengths 4 * crop height, 4 * crop width)."""

    top: int
    bottom: int
    left: int
    right: int
    weight_y: torch.Tensor
    weight_x: torch.Tensor


def tile_grid(height: int, width: int, tile: int, halo: int = DEFAULT_TILE_HALO) -> list[Tile]:
    """The grid of an LR frame of `height` x `width` for tiles of about `tile` x `tile` core pixels; one tile
    (the whole frame, weight 1) when `tile` is 0 or not smaller than the frame."""
    if tile < 0 or halo < 0:
        raise ConfigError(f"tile and halo must be >= 0, got tile {tile}, halo {halo}", option="tile")
    rows = _axis(height, tile, halo)
    columns = _axis(width, tile, halo)
    return [Tile(top, bottom, left, right, wy, wx) for top, bottom, wy in rows for left, right, wx in columns]


def crop_sizes(height: int, width: int, tile: int, halo: int = DEFAULT_TILE_HALO) -> list[tuple[int, int]]:
    """(height, width) of each crop of `tile_grid(height, width, tile, halo)`, without its blend weights (cheap:
    the memory planner weighs many grids)."""
    rows = [end - start for start, end in _spans(height, tile, halo)]
    columns = [end - start for start, end in _spans(width, tile, halo)]
    return [(h, w) for h in rows for w in columns]


def grid_shape(height: int, width: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of tiles of `tile_grid` for a frame of `height` x `width`."""
    return _count(height, tile), _count(width, tile)


def _count(length: int, tile: int) -> int:
    return 1 if tile == 0 else max(1, math.ceil(length / tile))


def _spans(length: int, tile: int, halo: int) -> list[tuple[int, int]]:
    """(crop start, crop end) of each tile along one axis: cores of nearly equal size, widened by the halo."""
    count = _count(length, tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [
        (max(0, bounds[i] - halo) if i > 0 else 0, min(length, bounds[i + 1] + halo) if i < count - 1 else length)
        for i in range(count)
    ]


def _axis(length: int, tile: int, halo: int) -> list[tuple[int, int, torch.Tensor]]:
    """(crop start, crop end, x4 weights) of each tile along one axis: cores of nearly equal size."""
    count = _count(length, tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    out = []
    for i, (start, end) in enumerate(_spans(length, tile, halo)):
        position = torch.arange(start * SCALE, end * SCALE, dtype=torch.float64) + 0.5  # HR pixel centres
        weight = torch.ones_like(position)
        ramp = max(1, halo) * SCALE
        if i > 0:  # rises over the halo centred on the boundary with the previous tile
            weight = torch.minimum(weight, ((position - bounds[i] * SCALE) / ramp + 0.5).clamp(0, 1))
        if i < count - 1:  # falls over the halo centred on the boundary with the next tile
            weight = torch.minimum(weight, ((bounds[i + 1] * SCALE - position) / ramp + 0.5).clamp(0, 1))
        out.append((start, end, weight))
    # Exactly a partition of unity (the ramps sum to 1 up to rounding; divide by the sum to make it exact).
    total = torch.zeros(length * SCALE, dtype=torch.float64)
    for start, end, weight in out:
        total[start * SCALE : end * SCALE] += weight
    return [(start, end, (weight / total[start * SCALE : end * SCALE]).float()) for start, end, weight in out]


def crop(frames: torch.Tensor, tile: Tile) -> torch.Tensor:
    """The tile's region of LR frames (..., h, w)."""
    return frames[..., tile.top : tile.bottom, tile.left : tile.right]


def add_tile(canvas: torch.Tensor, hr: torch.Tensor, tile: Tile) -> None:
    """Add a tile's x4 output (n, 3, 4*crop_h, 4*crop_w) into `canvas` (n, 3, 4h, 4w), weighted, in place."""
    weight = tile.weight_y.to(hr.device)[:, None] * tile.weight_x.to(hr.device)[None, :]
    region = canvas[..., tile.top * SCALE : tile.bottom * SCALE, tile.left * SCALE : tile.right * SCALE]
    region.add_(hr.float() * weight)
