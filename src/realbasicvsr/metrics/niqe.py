"""NIQE (Mittal, Soundararajan & Bovik 2013) as computed by the LIVE MATLAB release (`computequality.m`).

Protocol of the release, reproduced here: the image is cropped to whole 96x96 blocks; MSCN coefficients use a
7x7 Gaussian (sigma 7/6) with replicate padding; each block gives 18 features (an AGGD fit of the MSCN
and four AGGD fits of neighbour products, circularly shifted inside the block); the image is halved with MATLAB
bicubic imresize and the same is done with 48x48 blocks; a multivariate Gaussian is fitted to the block
features (blocks with NaN features dropped, like `nanmean`/`nancov`) and compared with the pristine model.
The 0.75 sharpness threshold of the release is a training-time choice (it selected the pristine patches); at
test time the release scores every block, and so does this code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from scipy.special import gamma as gamma_fn

from realbasicvsr.errors import UserError
from realbasicvsr.metrics.color import ConvertTo, prepare
from realbasicvsr.metrics.imresize import imresize
from realbasicvsr.metrics.nss import fit_aggd, mscn, paired_products
from realbasicvsr.metrics.params import param_file

BLOCK = 96
_NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@cache
def load_pristine_model(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, cov) of the LIVE pristine model from `modelparameters.mat` or BasicSR's `niqe_pris_params.npz`."""
    if path.suffix == ".npz":
        with np.load(path) as data:
            return data["mu_pris_param"].ravel().astype(np.float64), data["cov_pris_param"].astype(np.float64)
    from scipy.io import loadmat

    data = loadmat(path)
    return data["mu_prisparam"].ravel().astype(np.float64), data["cov_prisparam"].astype(np.float64)


def _to_blocks(array: np.ndarray, size: int) -> np.ndarray:
    rows, cols = array.shape[0] // size, array.shape[1] // size
    return array.reshape(rows, size, cols, size).transpose(2, 0, 1, 3).reshape(rows * cols, size, size)


def _aggd_betas(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit returning the scale parameters beta_l, beta_r (std * sqrt(G(1/a)/G(3/a))), as NIQE uses."""
    alpha, left_std, right_std = fit_aggd(values)
    ratio = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def block_features(image: np.ndarray) -> np.ndarray:
    """(n_blocks, 36) NIQE features of a 2-D float64 image already cropped to whole 96x96 blocks."""
    features = []
    for scale in (1, 2):
        size = BLOCK // scale
        blocks = _to_blocks(mscn(image, "replicate"), size)
        n = blocks.shape[0]
        alpha, beta_l, beta_r = _aggd_betas(blocks.reshape(n, -1))
        scale_feats = [alpha, (beta_l + beta_r) / 2]
        for pair in paired_products(blocks, _NIQE_SHIFTS):
            alpha, beta_l, beta_r = _aggd_betas(pair)
            mean = (beta_r - beta_l) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
            scale_feats += [alpha, mean, beta_l, beta_r]
        features.append(np.stack(scale_feats, axis=1))
        if scale == 1:
            image = imresize(image, scale=0.5)
    return np.concatenate(features, axis=1)


def niqe_from_features(features: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """Distance between the fitted MVG of the block features and the pristine MVG (`nanmean`/`nancov`).
    NaN when fewer than two blocks have finite features (a flat frame, e.g. all black, has no natural-scene
    statistics to fit), as BRISQUE gives NaN there: the score is undefined, which `evaluate` reports and skips."""
    valid = features[~np.isnan(features).any(axis=1)]
    if valid.shape[0] < 2:
        return float("nan")
    mu = np.nanmean(features, axis=0)
    cov = np.cov(valid, rowvar=False)
    diff = mu_pris - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov) / 2) @ diff))


def pristine_model_file(params_dir: str | Path | None) -> Path:
    """`niqe/modelparameters.mat`, or BasicSR's `niqe/niqe_pris_params.npz` (same numbers) when only it is there."""
    try:
        return param_file("niqe/modelparameters.mat", params_dir, allow_download=False)
    except UserError:
        try:
            return param_file("niqe/niqe_pris_params.npz", params_dir, allow_download=False)
        except UserError:
            return param_file("niqe/modelparameters.mat", params_dir)


def niqe(
    image: np.ndarray,
    *,
    convert_to: ConvertTo = "y",
    crop_border: int = 0,
    params_dir: str | Path | None = None,
) -> float:
    """NIQE of an HxWx3 RGB image (uint8, or float in [0, 1]); lower is better.

    Args:
        image: RGB image, or an HxW grey image used as is.
        convert_to: "y" (MATLAB rgb2ycbcr Y, the RealBasicVSR/PIRM protocol) or "gray" (MATLAB rgb2gray,
            what the LIVE release does itself).
        crop_border: pixels shaved on each side after conversion (PIRM2018 uses 4).
        params_dir: folder with `niqe/modelparameters.mat`; defaults to $REALBASICVSR_IQA_DIR or a download.
    """
    plane = prepare(image, convert_to, crop_border, single_plane=True)
    rows, cols = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    if rows * cols < 2:
        raise ValueError(f"NIQE needs an image of at least two 96x96 blocks, got {plane.shape[:2]}")
    plane = plane[: rows * BLOCK, : cols * BLOCK]
    mu_pris, cov_pris = load_pristine_model(pristine_model_file(params_dir))
    return niqe_from_features(block_features(plane), mu_pris, cov_pris)
