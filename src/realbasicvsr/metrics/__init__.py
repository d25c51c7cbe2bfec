"""Image-quality metrics that reproduce the MATLAB code behind RealBasicVSR's table.

    from realbasicvsr.metrics import niqe, brisque, nrqm, perceptual_index, psnr, ssim

Every function takes an HxWx3 RGB image (uint8, or float in [0, 1]), works in float64 and has `convert_to`
("y": MATLAB rgb2ycbcr Y; "gray": MATLAB rgb2gray) and `crop_border`. The no-reference metrics read their
parameter files from `params_dir=`, $REALBASICVSR_IQA_DIR or a checked download (see params.py).
Requires scipy (`pip install realbasicvsr[metrics]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    import scipy  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("realbasicvsr.metrics needs scipy: pip install 'realbasicvsr[metrics]'") from error

from realbasicvsr.metrics.brisque import brisque
from realbasicvsr.metrics.color import ConvertTo
from realbasicvsr.metrics.full_reference import psnr, ssim
from realbasicvsr.metrics.niqe import niqe
from realbasicvsr.metrics.nrqm import nrqm

PIRM_CROP_BORDER = 4


def perceptual_index(
    image: np.ndarray,
    *,
    convert_to: ConvertTo = "y",
    crop_border: int = PIRM_CROP_BORDER,
    params_dir: str | Path | None = None,
    model_path: str | Path | None = None,
) -> float:
    """PIRM2018 perceptual index ((10 - NRQM) + NIQE) / 2; lower is better.

    The defaults are the PIRM2018 protocol (`evaluate_results.m`): Y channel of rgb2ycbcr, 4-pixel shave,
    both scores on the same shaved image.
    """
    kwargs = {"convert_to": convert_to, "crop_border": crop_border, "params_dir": params_dir}
    return ((10.0 - nrqm(image, model_path=model_path, **kwargs)) + niqe(image, **kwargs)) / 2.0


# name -> (function, needs ground truth, higher is better)
METRICS = {
    "psnr": (psnr, True, True),
    "ssim": (ssim, True, True),
    "niqe": (niqe, False, False),
    "brisque": (brisque, False, False),
    "nrqm": (nrqm, False, True),
    "pi": (perceptual_index, False, False),
}

__all__ = ["METRICS", "PIRM_CROP_BORDER", "brisque", "niqe", "nrqm", "perceptual_index", "psnr", "ssim"]
