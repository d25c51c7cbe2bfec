"""The golden-tensor cases: a seeded small RealBasicVSR, its input clip, and every output path we keep exact.

`scripts/make_golden.py` runs `compute_all()` and records the results in tests/golden/; `tests/test_golden.py` runs
the same cases and checks them bit for bit. Nothing here reads ../shared.

Why the weights are not stored: SPyNet alone has 1.4 M parameters (5.8 MB in fp32) whatever `mid_channels` is, and
the x4 stage has ~60 k more. Instead they come from an exact integer hash of (parameter name, element index), scaled
to PyTorch's default-init bound: integer arithmetic and one correctly rounded fp32 multiply, so the same bits on
every machine and PyTorch version (the recorded sha256 of the weights checks this). The outputs are stored as a
sha256 of their bytes (the bitwise check) plus a strided subset of values (to say how far off a mismatch is, and
for a tolerance check where the machine differs from the one that recorded them).
"""

from __future__ import annotations

import hashlib
import math
import platform
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from realbasicvsr.models import ModelConfig, RealBasicVSR, fused
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.windows import Upscaler

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
CONFIG = ModelConfig(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=1)
CLIP_SHAPE = (1, 7, 3, 12, 16)  # n, t, c, h, w
# The benchmark setting. With these weights the cleaning residue's mean |r| is ~21/255 at every pass, so it never
# stops early: 3 passes, with a wide margin (tests/test_models.py checks a stop after 2 on the reference model).
MULTIPASS_THRESHOLD = 5.0
SUBSET_SIZE = 128


def golden_weights(model: RealBasicVSR) -> None:
    """Fill every parameter with hash-uniform values in +-1/sqrt(fan_in) (PyTorch's default conv init range)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, param in params.items():
            weight = params[name.removesuffix("bias") + "weight"] if name.endswith(".bias") else param
            fan_in = math.prod(weight.shape[1:])
            bound = torch.tensor(2.0 / math.sqrt(fan_in), dtype=torch.float32)
            param.copy_((_hash_uniform(param.numel(), zlib.crc32(name.encode())) * bound).view_as(param))


def _hash_uniform(count: int, salt: int) -> torch.Tensor:
    """`count` values in [-0.5, 0.5) from integer hashing only (LCG steps mod 2^31 with xor-shifts between)."""
    x = torch.arange(count, dtype=torch.int64) + (salt % (1 << 31))
    for _ in range(3):
        x = (x * 1103515245 + 12345) % (1 << 31)  # < 2^62: no overflow
        x = x ^ (x >> 16)
    return (x >> 7).to(torch.float32) / (1 << 24) - 0.5  # 24-bit integers and a power of 2: exact


def weights_digest(model: RealBasicVSR) -> str:
    return digest(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))


def make_model(threshold: float = 255.0, **kwargs: object) -> RealBasicVSR:
    model = RealBasicVSR(CONFIG, cleaning_threshold=threshold, **kwargs)
    golden_weights(model)
    return model.eval()


def make_clip() -> torch.Tensor:
    """uint8 (n, t, 3, h, w): smooth colours drifting 1 px right and 1 px down per frame and brightening, so that
    SPyNet has motion to find and the propagation carries real information."""
    _, t, _, h, w = CLIP_SHAPE
    yy, xx = torch.meshgrid(
        torch.arange(h + t, dtype=torch.float64), torch.arange(w + t, dtype=torch.float64), indexing="ij"
    )
    scene = torch.stack([torch.sin(xx / 3.0), torch.cos(yy / 4.0), torch.sin((xx + yy) / 5.0)]) * 0.4 + 0.5
    frames = torch.stack([scene[:, i : i + h, i : i + w] * 0.8 + 0.02 * i for i in range(t)])
    return (frames * 255).round().clamp(0, 255).to(torch.uint8).unsqueeze(0)


def to_lq(clip: torch.Tensor) -> torch.Tensor:
    return clip.to(torch.float32) / 255.0  # as to_tensor: x / 255, correctly rounded


@contextmanager
def spynet_cap(nbytes: int) -> Iterator[None]:
    """Set the memory cap of one SPyNet call (1 = one frame pair per call)."""
    import realbasicvsr.models.basicvsr as module

    old = module.SPYNET_BATCH_BYTES
    module.SPYNET_BATCH_BYTES = nbytes
    try:
        yield
    finally:
        module.SPYNET_BATCH_BYTES = old


# ------------------------------------------------------------------------------------------------------ the cases
Outputs = dict[str, torch.Tensor]


def _forward(lq: torch.Tensor, threshold: float, channels_last: bool = False, **kwargs: object) -> Outputs:
    model = make_model(threshold, **kwargs).use_channels_last(channels_last)
    with torch.inference_mode():
        hr, cleaned = model(lq)
    return {"hr": hr, "cleaned": cleaned, "passes": torch.tensor(model.last_cleaning_passes)}


def _iter_frames(lq: torch.Tensor) -> Outputs:
    model = make_model(MULTIPASS_THRESHOLD)
    with torch.inference_mode():
        hr = torch.stack(list(model.iter_frames(lq)), dim=1)
    return {"hr": hr, "passes": torch.tensor(model.last_cleaning_passes)}


def _upscaler(
    lq: torch.Tensor, threshold: float = 255.0, spynet_bytes: int | None = None, **options: object
) -> Outputs:
    model = make_model(threshold)
    upscaler = Upscaler(model, UpscaleConfig(**options))
    if spynet_bytes is None:
        hr = torch.stack(list(upscaler.iter_tensors(list(lq[0]))))
    else:
        with spynet_cap(spynet_bytes):
            hr = torch.stack(list(upscaler.iter_tensors(list(lq[0]))))
    return {"hr": hr, "passes": torch.tensor(model.last_cleaning_passes)}


def cases() -> dict[str, Callable[[torch.Tensor], Outputs]]:
    """name -> function of the golden lq (1, 7, 3, 12, 16) float; each builds its own model (Upscaler converts the
    model in place)."""
    mirrored = lambda lq: torch.cat([lq[:, :3], lq[:, :3].flip(1)], dim=1)  # noqa: E731
    batch2 = lambda lq: torch.cat([lq, lq.flip(-1)])  # noqa: E731
    stripes = 3 * CLIP_SHAPE[-1]  # 3-row stripes of the 12-row frame
    return {
        "forward_t255": lambda lq: _forward(lq, 255.0),
        "forward_multipass": lambda lq: _forward(lq, MULTIPASS_THRESHOLD),
        "forward_multipass_chunked": lambda lq: _forward(lq, MULTIPASS_THRESHOLD, cleaning_chunk=3),
        "forward_channels_last": lambda lq: _forward(lq, MULTIPASS_THRESHOLD, channels_last=True),
        "forward_mirrored": lambda lq: _forward(mirrored(lq), 255.0),
        "forward_batch2": lambda lq: _forward(batch2(lq), 255.0),
        "iter_frames_multipass": _iter_frames,
        "upscaler_whole": lambda lq: _upscaler(lq, window=50, overlap=0, channels_last=False),
        "upscaler_w2_o1": lambda lq: _upscaler(lq, window=2, overlap=1, channels_last=False),
        "upscaler_w3_o2": lambda lq: _upscaler(lq, window=3, overlap=2, channels_last=False),
        "upscaler_w3_o2_channels_last": lambda lq: _upscaler(lq, window=3, overlap=2, channels_last=True),
        "upscaler_w3_o0": lambda lq: _upscaler(lq, window=3, overlap=0, channels_last=False),
        "upscaler_w1_o2": lambda lq: _upscaler(lq, window=1, overlap=2, channels_last=False),
        "upscaler_w3_o2_multipass": lambda lq: _upscaler(
            lq, MULTIPASS_THRESHOLD, window=3, overlap=2, channels_last=False
        ),
        "upscaler_mirrored": lambda lq: _upscaler(mirrored(lq), window=6, overlap=0, channels_last=False),
        "upscaler_outscale": lambda lq: _upscaler(lq, window=3, overlap=1, outscale=1.5, channels_last=False),
        "upscaler_stripes_capped": lambda lq: _upscaler(
            lq, spynet_bytes=1, window=3, overlap=2, stripe_pixels=stripes, channels_last=False
        ),
        "upscaler_stripes_capped_channels_last": lambda lq: _upscaler(
            lq, spynet_bytes=1, window=3, overlap=2, stripe_pixels=stripes, channels_last=True
        ),
    }


# ----------------------------------------------------------------------------------------------- the recording
def digest(x: torch.Tensor) -> str:
    """sha256 of the values in logical (row-major) order, whatever the memory format."""
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def subset(x: torch.Tensor) -> torch.Tensor:
    flat = x.detach().cpu().reshape(-1)
    return flat[(torch.arange(SUBSET_SIZE) * 7919) % flat.numel()].clone()


def environment() -> dict[str, object]:
    """What decides the rounding of fp32 kernels: bitwise equality is only expected where all of these match."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "fused_convolutions": fused._HAS_FUSED,
    }
