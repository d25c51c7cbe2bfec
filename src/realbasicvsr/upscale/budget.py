"""The memory budget: window, tiles, stripes, SPyNet batch and cleaning chunk planned so that a run's peak fits.

Users should never have to guess `--window` or `--tile`. `plan_memory` estimates the peak of every configuration
from the measured cost of each stage per LR pixel (`COSTS`; `benchmarks/bench_upscale.py budget` measures them and
checks the estimate against real peaks), keeps those under the budget and takes the fastest by a work model,
preferring, at equal speed, the one closest to untiled. On a CPU the budget bounds the whole process's peak resident
memory (the estimate starts from what the process holds when it plans: libraries, weights); on CUDA the peak
allocated GPU memory. The default budget is a safe share of what is free (`automatic_budget`).

Only the window and the tiles change the output (the look-ahead truncation and the tile blend: both far below what
an eye sees, docs/upscaling.md); stripes, the SPyNet batch and the cleaning chunk change nothing but float rounding.
An explicit window or tile is kept as given.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from itertools import product

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import human_bytes
from realbasicvsr.upscale import memory
from realbasicvsr.upscale.config import DEFAULT_STRIPE_PIXELS, DEFAULT_WINDOW, UpscaleConfig, output_size
from realbasicvsr.upscale.tiles import crop_sizes, grid_shape

GB = 1000**3
WINDOW_CHOICES = (DEFAULT_WINDOW, 24, 16, 12, 8, 6, 4, 3, 2, 1)
TILE_CHOICES = (0, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)
STRIPE_CHOICES = (DEFAULT_STRIPE_PIXELS, 128 * 128, 64 * 64, 32 * 32)
CHUNK_CHOICES = (0, 8, 2, 1)  # frames per call of the cleaning module; 0 = the whole window at once
FLOW_BATCH_CHOICES = (1 << 30, 1 << 28, 1 << 26, 0)  # bytes of SPyNet work per call; 0 = one pair at a time
MIN_TILE_HALOS = 2  # planned tiles are at least twice the halo: smaller ones compute mostly context
MIN_STRIPE_ROWS = 8  # fewer rows per stripe and the 2 x 2 rows of context cost more than half the work again
# Share of the free memory the automatic budget takes: the rest is for the system, the page cache and other
# programs (CPU), or for the CUDA context and the allocator's fragmentation (GPU).
CPU_SHARE, CUDA_SHARE = 0.75, 0.85


@dataclass(frozen=True)
class StageCosts:
    """Bytes per LR pixel (fp32) unless said otherwise, fitted to peaks measured on the full c64b20 model
    (`bench_upscale.py budget`: 320x180, windows of 2 and 6 frames, whole frames and tiles, large and small stripes;
    the estimate is within ~15 % of each); the feature costs are per channel of the model's width (64 official)."""

    frame: int = 12  # one RGB frame in float32
    span_frame: int = 80  # per frame of a model call: the crop, cleaned frames, per-frame copies, look-ahead, flows
    kept_frame: int = 100  # per kept frame besides its backward feature: forward flows, buffers of the branch
    feature_per_channel: int = 4  # one propagation feature map: 256 B at 64 channels
    cleaning_per_channel: int = 16  # the cleaning module's working tensors per frame of a call (~4 feature maps)
    step_per_channel: int = 14  # one propagation step (concatenation, residual blocks)
    x4_per_channel: int = 170  # the x4 stage of one LR pixel (fusion, two pixel shuffles, 64-channel HR conv)
    spynet: int = 900  # SPyNet, per pixel padded to multiples of 32, per frame pair
    encoder: float = 2.0  # per output pixel per frame the encoder holds (x264/x265 look-ahead, references)
    encoder_frames: int = 48
    first_run: int = 100 << 20  # bytes the first model call adds for good (oneDNN and OpenMP caches, reordered weights)
    safety: float = 1.2  # allocator slack and buffers too small to model


COSTS = StageCosts()


@dataclass(frozen=True)
class MemoryPlan:
    """How a run splits its work, and its estimated peak (bytes; the process's or the GPU's, see `device`)."""

    window: int
    overlap: int
    tile: int  # 0 = whole frames
    tile_halo: int
    grid: tuple[int, int]  # tile rows, columns
    stripe_pixels: int
    flow_batch_bytes: int
    cleaning_chunk: int  # 0 = the whole window
    estimate: int
    budget: int | None
    device: str

    def line(self) -> str:
        """One line for the user, e.g. `plan: window 30 + 12, whole frames, stripes 256x256; est. peak 5.4 GB`."""
        tiles = "whole frames" if self.grid == (1, 1) else (
            f"tiles {self.grid[1]}x{self.grid[0]} of {self.tile} (halo {self.tile_halo})"
        )  # fmt: skip
        side = math.isqrt(self.stripe_pixels)
        stripes = f"stripes {side}x{side}" if side * side == self.stripe_pixels else f"stripes {self.stripe_pixels} px"
        if self.cleaning_chunk:  # the pieces that change only float rounding, named when they are not the default
            stripes += f", cleaning {self.cleaning_chunk} frame{'s' if self.cleaning_chunk > 1 else ''} a call"
        if self.flow_batch_bytes != FLOW_BATCH_CHOICES[0]:
            stripes += ", SPyNet " + (
                f"{human_bytes(self.flow_batch_bytes)} a call" if self.flow_batch_bytes else "1 pair a call"
            )
        what = "GPU peak" if self.device.startswith("cuda") else "peak"
        budget = "" if self.budget is None else f" of a {human_bytes(self.budget)} budget"
        estimate = f"est. {what} {human_bytes(self.estimate)}{budget}"
        return f"plan: window {self.window} + {self.overlap}, {tiles}, {stripes}; {estimate}"


def parse_memory(text: str) -> int:
    """'6G', '6GB', '6GiB', '1.5T', '512M' or a plain byte count -> bytes. G / GiB are binary (as Docker's 6g),
    GB is decimal."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not match:
        raise UserError(f"memory {text!r} is not a size; write it like 6G, 6GB, 6GiB or 512M", option="max_memory")
    number, unit, suffix = float(match[1]), match[2].upper(), match[3] or ""
    base = 1000 if suffix.upper() == "B" and unit else 1024
    value = int(number * base ** " KMGT".index(unit or " "))
    if value <= 0:
        raise UserError(f"memory {text!r} must be more than 0 bytes", option="max_memory")
    return value


def automatic_budget(device: str) -> int:
    """The default budget: what the process holds now plus a safe share of what is free (RAM, within a cgroup's
    limit, on a CPU; GPU memory on CUDA)."""
    if device.startswith("cuda"):
        used, free = memory.cuda_used_and_free(device)
        return used + int(CUDA_SHARE * free)
    return memory.resident_bytes() + int(CPU_SHARE * memory.available_bytes())


def plan_memory(
    options: UpscaleConfig,
    width: int,
    height: int,
    *,
    batch: int = 1,
    mid_channels: int = 64,
    held: int | None = None,
    video_output: bool = True,
    frames: int | None = None,
) -> MemoryPlan:
    """The plan for frames of `width` x `height` (`batch` streams side by side) under `options.max_memory` (None:
    `automatic_budget`). `held` is what the process (CPU) or the GPU holds before the run (default: measured now);
    `frames`, the most frames one stream has (a short clip never fills a long window). An explicit
    `options.window` / `options.tile` is kept. Raises `UserError` naming the smallest budget that works when none
    fits."""
    device = options.device
    on_cuda = device.startswith("cuda")
    if held is None:
        held = memory.cuda_used_and_free(device)[0] if on_cuda else memory.resident_bytes()
    budget = options.max_memory if options.max_memory is not None else automatic_budget(device)
    out_w, out_h = output_size(width, height, options)
    output_pixels = out_w * out_h if video_output and not on_cuda else 0  # the encoder runs on the CPU
    windows = WINDOW_CHOICES if options.window is None else (options.window,)
    tiles = TILE_CHOICES if options.tile is None else (options.tile,)
    low = 0.5 if options.dtype in ("bf16", "fp16") else 1.0
    best: tuple[tuple[float, int, int], MemoryPlan] | None = None
    smallest: int | None = None
    grids = {tile: Counter(crop_sizes(height, width, tile, options.tile_halo)) for tile in tiles}
    for window, tile, stripe, chunk, flow in product(windows, tiles, STRIPE_CHOICES, CHUNK_CHOICES, FLOW_BATCH_CHOICES):
        if options.tile is None and tile and (tile >= max(width, height) or tile < MIN_TILE_HALOS * options.tile_halo):
            continue  # the same grid as whole frames, or tiles that are mostly halo (3x3 the work at tile = halo)
        crops = grids[tile]
        if stripe != STRIPE_CHOICES[0] and max(stripe // w for _, w in crops) < MIN_STRIPE_ROWS:
            continue
        span = window + options.overlap if frames is None else max(1, min(window + options.overlap, frames))
        estimate = held + estimate_work(
            width, height, crops, min(window, span), span - min(window, span), stripe, chunk, flow, batch,
            mid_channels, output_pixels, low,
        )  # fmt: skip
        smallest = estimate if smallest is None else min(smallest, estimate)
        if estimate > budget:
            continue
        # Fastest first; at the same speed (within 1 %) the fewest knobs moved from the unplanned computation (which
        # is exact: the same values as the whole model at once, bit for bit), then the smaller peak.
        cost = round(relative_time(width, height, crops, window, options.overlap, stripe, chunk, flow), 2)
        moved = (stripe != STRIPE_CHOICES[0]) + (chunk != CHUNK_CHOICES[0]) + (flow != FLOW_BATCH_CHOICES[0])
        plan = MemoryPlan(
            window, options.overlap, tile, options.tile_halo, grid_shape(height, width, tile), stripe, flow, chunk,
            estimate, budget, device,
        )  # fmt: skip
        if best is None or (cost, moved, estimate) < best[0]:
            best = ((cost, moved, estimate), plan)
    if best is None:
        assert smallest is not None
        needed = math.ceil(smallest / GB * 10) / 10
        raise UserError(
            f"{width}x{height} frames need at least {needed:.1f} GB here even in the smallest plan (the budget is "
            f"{human_bytes(budget)}); give --max-memory {needed:.1f}GB or more, or a smaller output size",
            option="max_memory",
        )
    return best[1]


def apply_plan(options: UpscaleConfig, plan: MemoryPlan) -> UpscaleConfig:
    """`options` with the plan's window, tile and stripes (the SPyNet batch and cleaning chunk are the Upscaler's)."""
    return replace(options, window=plan.window, tile=plan.tile, stripe_pixels=plan.stripe_pixels)


def shrink(plan: MemoryPlan) -> MemoryPlan:
    """The plan after the device ran out of memory anyway (an estimate is not a guarantee: another program took
    memory, or fragmentation): half the window, the smallest stripes, one frame per cleaning call, one SPyNet pair
    per call. The tiles stay: a stream's grid cannot change without breaking its propagation."""
    return replace(
        plan, window=max(1, plan.window // 2), stripe_pixels=min(plan.stripe_pixels, STRIPE_CHOICES[-2]),
        cleaning_chunk=1, flow_batch_bytes=0,
    )  # fmt: skip


def estimate_work(
    width: int,
    height: int,
    crops: Counter[tuple[int, int]],
    window: int,
    overlap: int,
    stripe: int,
    chunk: int,
    flow_batch: int,
    batch: int,
    mid: int,
    output_pixels: int,
    low_precision: float = 1.0,
) -> int:
    """Bytes a run adds at its peak on top of what it holds before: see `StageCosts`. Tiles run one after another,
    so the largest crop counts, plus the frames of the window and (tiled) the window's x4 output canvas."""
    c = COSTS
    frame_pixels = width * height
    span = window + overlap  # frames in one call of the model
    # The window's LR frames as decoded and stacked, and, with tiles, the blended x4 outputs of its kept frames.
    resident = 2 * span * c.frame * frame_pixels
    if crops.total() > 1:
        resident += window * 16 * c.frame * frame_pixels
    # Every tile's stream state lives from one window to the next: its forward feature, last frame and look-ahead.
    resident += sum(h * w * n for (h, w), n in crops.items()) * (
        c.feature_per_channel * mid * low_precision + c.frame * (overlap + 1)
    )
    h, w = max(crops, key=lambda hw: hw[0] * hw[1])
    pixels = h * w
    # One tile's window: its crop, cleaned frames, per-frame copies, look-ahead, flows, and the backward features of
    # the kept frames (the largest term: 4 bytes x channels per pixel per frame).
    tile_resident = span * c.span_frame + window * (c.kept_frame + c.feature_per_channel * mid * low_precision)
    padded = -(-h // 32) * 32 * (-(-w // 32) * 32)
    pairs = span - 1 if flow_batch >= (span - 1) * c.spynet * padded else max(1, flow_batch // (c.spynet * padded))
    rows = h if stripe == 0 else min(h, max(1, stripe // w) + 4)
    transient = max(
        (span if chunk == 0 else min(chunk, span)) * c.cleaning_per_channel * mid * pixels,
        pairs * c.spynet * padded,
        c.step_per_channel * mid * pixels + rows * w * c.x4_per_channel * mid + 16 * c.frame * pixels,
    )
    work = c.first_run + batch * (resident + pixels * tile_resident + low_precision * transient)
    encoder = (c.encoder_frames * c.encoder + 8 * 3) * output_pixels
    return int(c.safety * (work + encoder))


def relative_time(
    width: int,
    height: int,
    crops: Counter[tuple[int, int]],
    window: int,
    overlap: int,
    stripe: int,
    chunk: int,
    flow_batch: int = FLOW_BATCH_CHOICES[0],
) -> float:
    """Model work per output frame, relative to whole frames with no look-ahead: the cleaning, SPyNet and the
    backward branch run over the look-ahead too; the forward branch and x4 stage only over kept frames; each
    tile also computes its halo, and each stripe 2 x 2 extra rows."""
    per_window_frame, per_kept_frame = 0.45, 0.55  # shares of one frame's work (bench_model's stage profile)
    total = 0.0
    for (h, w), count in crops.items():
        rows = h if stripe == 0 else max(1, stripe // w)
        stripe_overhead = min(h, rows + 4) / min(h, rows) if rows < h else 1.0
        total += count * h * w * (per_window_frame * (window + overlap) / window + per_kept_frame * stripe_overhead)
    # One frame per cleaning call, or one SPyNet pair per call, keeps a GPU's cores less busy on small frames.
    small_calls = 1.0 + (0.02 if chunk == 1 else 0.0) + (0.02 if flow_batch == 0 else 0.0)
    return total * small_calls / (width * height)
