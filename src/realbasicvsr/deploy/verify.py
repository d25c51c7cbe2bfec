"""`verify_onnx`: the exported graphs in onnxruntime against the PyTorch model on a real clip, through the same
streaming windows (`Upscaler`), frame by frame: the largest absolute difference of the x4 outputs and their PSNR.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from realbasicvsr.deploy.runner import load_onnx_model
from realbasicvsr.errors import UserError
from realbasicvsr.models.realbasicvsr import RealBasicVSR

FP32_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| over a whole clip, fp32 (issue 18)
FP16_TOLERANCE = 5e-2  # half-precision graphs against the fp32 model: a sanity bound, not parity


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_onnx` measured: frames compared, the largest absolute difference of the raw outputs, the PSNR
    of the outputs clamped to [0, 1] (onnxruntime against PyTorch), the bound, and the time of each backend."""

    frames: int
    width: int
    height: int
    max_abs_diff: float
    psnr_db: float
    tolerance: float
    onnx_seconds: float
    torch_seconds: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        psnr = "inf" if math.isinf(self.psnr_db) else f"{self.psnr_db:.1f}"
        return (
            f"onnxruntime vs PyTorch over {self.frames} frames of {self.width}x{self.height}: max abs diff "
            f"{self.max_abs_diff:.3g} (bound {self.tolerance:g}), PSNR {psnr} dB; {self.onnx_seconds:.1f} s vs "
            f"{self.torch_seconds:.1f} s"
        )


def verify_onnx(
    folder: str | Path,
    weights: str | Path | RealBasicVSR,
    clip: str | Path,
    *,
    max_frames: int | None = None,
    window: int | None = None,
    overlap: int | None = None,
    threads: int | None = None,
) -> VerifyReport:
    """Upscale `clip` (a video, image folder or image; its first `max_frames` frames, default all) with the graphs
    in `folder` and with `weights` in PyTorch fp32, both through `Upscaler` with the same windows (`window`,
    `overlap`: default UpscaleConfig's), and compare every output frame. The PyTorch model cleans by the rule
    the manifest names. Raises `UserError` when the largest difference is over the bound (1e-4 for fp32 graphs).
    """
    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.windows import Upscaler, to_tensor

    reference = _reference_model(weights)
    onnx_model, _ = load_onnx_model(folder, expect=reference.config, threads=threads)
    manifest = onnx_model.manifest
    reference.cleaning_passes = manifest.cleaning_passes
    reference.cleaning_threshold = manifest.cleaning_threshold
    reference.max_cleaning_passes = manifest.max_cleaning_passes
    info = probe(clip)
    manifest.check_size(info.width, info.height)
    defaults = UpscaleConfig()
    config = UpscaleConfig(
        window=window or defaults.window, overlap=defaults.overlap if overlap is None else overlap, device="cpu"
    )

    def frames() -> Iterator[torch.Tensor]:
        return (to_tensor(frame.image) for frame in read_frames(info, 0, max_frames))

    timed_onnx = _Timed(Upscaler(onnx_model, config).iter_tensors(frames()))
    timed_torch = _Timed(Upscaler(reference, config).iter_tensors(frames()))
    count, worst, squared, values = 0, 0.0, 0.0, 0
    for ours, theirs in zip(timed_onnx, timed_torch, strict=True):
        worst = max(worst, float((ours - theirs).abs().max()))
        squared += float((ours.clamp(0, 1).double() - theirs.clamp(0, 1).double()).pow(2).sum())
        values += ours.numel()
        count += 1
    if count == 0:
        raise UserError(f"{clip} has no frames to compare; give a clip with at least one frame")
    mse = squared / values
    report = VerifyReport(
        frames=count,
        width=info.width,
        height=info.height,
        max_abs_diff=worst,
        psnr_db=math.inf if mse == 0 else 10 * math.log10(1.0 / mse),
        tolerance=FP16_TOLERANCE if manifest.precision == "fp16" else FP32_TOLERANCE,
        onnx_seconds=timed_onnx.seconds,
        torch_seconds=timed_torch.seconds,
    )
    if not report.passed:
        raise UserError(
            f"the ONNX graphs in {folder} do not match PyTorch: {report.summary()}; export again (another torch or "
            "onnxruntime version, or a damaged folder) and report it if it persists"
        )
    return report


def _reference_model(weights: str | Path | RealBasicVSR) -> RealBasicVSR:
    if isinstance(weights, RealBasicVSR):
        import copy

        return copy.deepcopy(weights).float().eval()  # its cleaning settings are set to the manifest's
    from realbasicvsr.weights.release import load_generator

    return load_generator(weights)


class _Timed:
    """An iterator that adds up the time spent producing its items."""

    def __init__(self, items: Iterator[torch.Tensor]) -> None:
        self.items, self.seconds = items, 0.0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return next(self.items)
        finally:
            self.seconds += time.perf_counter() - start
