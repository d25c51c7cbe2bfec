"""How to run the model for upscaling: `UpscaleConfig`, the device and precision choice, and the output size."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.decode_errors import ON_ERROR_CHOICES, OnError
from realbasicvsr.models.cpu_features import cpu_features, cpu_native_bf16
from realbasicvsr.upscale.finish import MAX_GRAIN, MAX_GRAIN_SIZE
from realbasicvsr.upscale.tiles import DEFAULT_TILE_HALO

Precision = Literal["fp32", "bf16", "fp16"]
# "auto" is resolved by `resolve_dtype` for the device the run uses.
DtypeChoice = Literal["auto", "fp32", "bf16", "fp16"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Chosen by measurement (benchmarks/bench_upscale.py, README): with the forward state carried exactly, 12 frames of
# look-ahead put the windowed output within ~50 dB PSNR of the whole-clip output on real footage.
DEFAULT_WINDOW = 30
DEFAULT_OVERLAP = 12
# The x4 stage needs ~16 kB per LR pixel in fp32 (reference_baselines.md 2.2): 15 GB for one 720p frame. It is
# purely convolutional, so it runs in horizontal stripes of at most this many LR pixels (256x256; 1 GB), each
# with STRIPE_HALO rows of context above and below; frames up to that size run in one piece, as before.
DEFAULT_STRIPE_PIXELS = 256 * 256
# Bounds of the look settings (UpscaleConfig): beyond them the result is no longer a picture anyone wants.
MAX_CLEANING_PASSES = 10
MIN_GRAIN_SIZE = 0.1
ColorFix = Literal["off", "all", "chroma"]
COLOR_FIX_CHOICES = ("off", "all", "chroma")


@dataclass(frozen=True)
class UpscaleConfig:
    """How to run the model. `out_size` (width, height) or `outscale` (relative to the input) resize the x4 output
    with an antialiased bicubic filter; both None keeps x4.

    `device` "auto" and `dtype` "auto" are resolved when a run starts (`resolve_config`): the best device here,
    and fp16 on CUDA, fp32 elsewhere. `on_error` is what damaged input frames do (`realbasicvsr.media.decode_errors`):
    "conceal" keeps FFmpeg's concealment and repeats the previous frame for one that does not decode, with one
    warning that counts them; "stop" ends the run at the first, before any model work (the planning pass).

    Memory (`realbasicvsr.upscale.budget`): `window` and `tile` None are planned, with the stripes of the x4 stage,
    the SPyNet batch and the cleaning chunk, so that the peak stays under `max_memory` bytes (None: a safe share of
    the free RAM, or GPU memory on CUDA); an explicit `window` or `tile` (0 = whole frames) is kept as given.

    The look (issue 15; docs/restoration.md), none of which needs retraining:
    - `strength` 0..1 blends the fidelity (stage 1, no GAN) and the perceptual (stage 2, GAN) weights of a pair
      parameter by parameter (`realbasicvsr.weights.strength`); None runs the weights as given.
    - `cleaning_threshold` (0-255 units) and `cleaning_passes` (exactly N passes, 0 = no cleaning) set the
      cleaning module's dynamic refinement; None keeps the model's (one pass for loaded weights).
    - `grain` (standard deviation in 8-bit levels at mid-grey; 0 = off), `grain_size` (feature size in pixels of
      a 1080-line picture) and `grain_seed` add seeded film grain to the output's luma
      (`realbasicvsr.upscale.finish.add_grain`).
    - `color_fix` "all" matches each output frame's low frequencies (scales above ~2 input pixels) to its input
      frame in OKLab (`realbasicvsr.upscale.finish.color_fix`): colour shifts, blotches and brightness drift
      go; "chroma" corrects the colour (a, b) only and keeps the model's lightness; "off" (default).
    """

    window: int | None = None  # frames per window; None = planned (`upscale.budget`): DEFAULT_WINDOW if it fits
    overlap: int = DEFAULT_OVERLAP
    device: str = "cpu"  # "auto", "cpu", "cuda", "cuda:N" or "mps"
    dtype: DtypeChoice = "fp32"
    channels_last: bool = True  # NHWC weights and activations: faster with oneDNN on CPU and on CUDA
    outscale: float | None = None
    out_size: tuple[int, int] | None = None
    stripe_pixels: int = DEFAULT_STRIPE_PIXELS  # LR pixels per stripe of the x4 stage; 0 = whole frames
    on_error: OnError = "conceal"
    tile: int | None = None  # LR pixels per tile side (the core, before the halo); 0 = whole frames; None = planned
    max_memory: int | None = None  # bytes the run's peak may reach (`upscale.budget`); None = a share of what is free
    tile_halo: int = DEFAULT_TILE_HALO
    strength: float | None = None
    cleaning_threshold: float | None = None
    cleaning_passes: int | None = None
    grain: float = 0.0
    grain_size: float = 1.0
    grain_seed: int = 0
    color_fix: ColorFix = "off"

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise ConfigError(f"window must be at least 1 frame, got {self.window}", option="window")
        if self.max_memory is not None and (isinstance(self.max_memory, bool) or self.max_memory <= 0):
            raise ConfigError(f"max_memory must be a positive byte count, got {self.max_memory}", option="max_memory")
        if self.overlap < 0:
            raise ConfigError(f"overlap must be >= 0, got {self.overlap}", option="overlap")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be auto, {', '.join(DTYPES)}, got {self.dtype!r}", option="dtype")
        if self.outscale is not None and self.outscale <= 0:
            raise ConfigError(f"outscale must be positive, got {self.outscale}", option="outscale")
        if self.on_error not in ON_ERROR_CHOICES:
            raise ConfigError(
                f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {self.on_error!r}", option="on_error"
            )
        if (self.tile or 0) < 0 or self.tile_halo < 0:
            raise ConfigError(
                f"tile and tile_halo must be >= 0 (tile 0 = whole frames), got {self.tile}, {self.tile_halo}",
                option="tile",
            )
        if self.stripe_pixels < 0:
            raise ConfigError(f"stripe_pixels must be >= 0 (0 = whole frames), got {self.stripe_pixels}")
        self._check_look()

    def _check_look(self) -> None:
        checks = (
            ("strength", self.strength, 0.0, 1.0, "0 = the fidelity model, 1 = the perceptual (GAN) model"),
            ("cleaning_threshold", self.cleaning_threshold, 0.0, 255.0, "in 0-255 units; 255 = one pass"),
            ("cleaning_passes", self.cleaning_passes, 0, MAX_CLEANING_PASSES, "0 = no cleaning"),
            ("grain", self.grain, 0.0, MAX_GRAIN, "8-bit levels at mid-grey; 0 = off, 2-6 is typical"),
            ("grain_size", self.grain_size, MIN_GRAIN_SIZE, MAX_GRAIN_SIZE, "pixels of a 1080-line picture"),
            ("grain_seed", self.grain_seed, 0, 2**63 - 1, "any whole number >= 0"),
        )
        if self.color_fix not in COLOR_FIX_CHOICES:
            raise ConfigError(
                f"color_fix must be one of {', '.join(COLOR_FIX_CHOICES)}, got {self.color_fix!r}", option="color_fix"
            )
        for name, value, low, high, meaning in checks:
            if value is None:
                continue
            whole = isinstance(low, int)
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                raise ConfigError(f"{name} must be a {'whole ' if whole else ''}number, got {value!r}", option=name)
            if not low <= value <= high:  # also refuses NaN
                raise ConfigError(f"{name} must be in {low}..{high} ({meaning}), got {value}", option=name)


def pick_device(name: str = "auto") -> str:
    """'auto' -> cuda if available, else mps, else cpu; other names are checked for availability."""
    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if mps and mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device 'cuda' was asked for but this PyTorch has no usable CUDA GPU; use the device 'cpu'",
            option="device",
        )
    if name == "mps" and not (mps and mps.is_available()):
        raise UserError(
            "device 'mps' was asked for but Apple MPS is not available here; use the device 'cpu'", option="device"
        )
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps", option="device")
    return name


def resolve_dtype(dtype: DtypeChoice, device: str) -> Precision:
    """What `dtype` means on `device`. "auto" is fp16 on CUDA, bf16 autocast on a CPU with native bf16 (AMX or
    AVX512-BF16, `realbasicvsr.models.cpu_features`; measured 45+ dB from fp32 on real clips, docs/performance.md)
    and fp32 elsewhere (MPS included); fp16 is CUDA-only. fp32 is the exact reference path. (A window that gives
    NaN/Inf in reduced precision is redone in fp32 by the `Upscaler`.)"""
    on_cuda = device.startswith("cuda")
    if dtype == "auto":
        if on_cuda:
            return "fp16"
        return "bf16" if device == "cpu" and cpu_native_bf16() else "fp32"
    if dtype == "fp16" and not on_cuda:
        raise ConfigError(f"dtype fp16 needs a CUDA device (this run uses {device}); use bf16 or fp32", option="dtype")
    return dtype


def precision_line(options: UpscaleConfig) -> str:
    """One line for the user saying which precision a resolved run uses, and why."""
    if options.dtype == "fp16":
        return "precision: fp16 autocast on CUDA (--dtype fp32 for the exact reference path)"
    if options.device != "cpu":
        what = "bf16 autocast" if options.dtype == "bf16" else "fp32, the exact reference path"
        return f"precision: {what} on {options.device}"
    cpu = cpu_features()
    if options.dtype == "bf16" and cpu.native_bf16:
        return f"precision: bf16 autocast, native on {cpu.line()} (--dtype fp32 for the exact reference path)"
    if options.dtype == "bf16":
        return (
            f"precision: bf16 autocast, emulated on {cpu.line()}: slower than fp32 here (no AMX or AVX512-BF16); "
            "--dtype fp32 is faster"
        )
    if cpu.native_bf16:
        return f"precision: fp32, the exact reference path (--dtype auto would use bf16 on {cpu.line()})"
    return f"precision: fp32, the exact reference path ({cpu.line()} has no native bf16)"


def resolve_config(config: UpscaleConfig) -> UpscaleConfig:
    """`config` with its device and dtype settled for this machine: "auto" resolved, the device checked."""
    device = pick_device(config.device)
    return replace(config, device=device, dtype=resolve_dtype(config.dtype, device))


def output_size(width: int, height: int, options: UpscaleConfig) -> tuple[int, int]:
    """(width, height) of the output frames for an input of `width` x `height`."""
    if options.out_size is not None:
        return options.out_size
    if options.outscale is not None:
        return max(1, round(width * options.outscale)), max(1, round(height * options.outscale))
    return 4 * width, 4 * height
