"""How to run the model for upscaling: `UpscaleConfig`, the device choice and the output size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Chosen by measurement (benchmarks/bench_upscale.py, README): with the forward state carried exactly, 12 frames of
# look-ahead put the windowed output within ~50 dB PSNR of the whole-clip output on real footage.
DEFAULT_WINDOW = 30
DEFAULT_OVERLAP = 12
# The x4 stage needs ~16 kB per LR pixel in fp32 (reference_baselines.md 2.2): 15 GB for one 720p frame. It is
# purely convolutional, so it runs in horizontal stripes of at most this many LR pixels (256x256; 1 GB), each
# with STRIPE_HALO rows of context above and below; frames up to that size run in one piece, as before.
DEFAULT_STRIPE_PIXELS = 256 * 256


@dataclass(frozen=True)
class UpscaleConfig:
    """How to run the model. `out_size` (width, height) or `outscale` (relative to the input) resize the x4 output
    with an antialiased bicubic filter; both None keeps x4."""

    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    device: str = "cpu"
    dtype: str = "fp32"
    channels_last: bool = True  # NHWC weights and activations: faster with oneDNN on CPU and on CUDA
    outscale: float | None = None
    out_size: tuple[int, int] | None = None
    stripe_pixels: int = DEFAULT_STRIPE_PIXELS  # LR pixels per stripe of the x4 stage; 0 = whole frames

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 frame, got {self.window}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.outscale is not None and self.outscale <= 0:
            raise ValueError(f"outscale must be positive, got {self.outscale}")
        if self.stripe_pixels < 0:
            raise ValueError(f"stripe_pixels must be >= 0 (0 = whole frames), got {self.stripe_pixels}")


def pick_device(name: str = "auto") -> str:
    """'auto' -> cuda if available, else mps, else cpu; other names are checked for availability."""
    from realbasicvsr.errors import UserError

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but this PyTorch has no usable CUDA GPU; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for but Apple MPS is not available here; use --device cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return name


def output_size(width: int, height: int, options: UpscaleConfig) -> tuple[int, int]:
    """(width, height) of the output frames for an input of `width` x `height`."""
    if options.out_size is not None:
        return options.out_size
    if options.outscale is not None:
        return max(1, round(width * options.outscale)), max(1, round(height * options.outscale))
    return 4 * width, 4 * height
