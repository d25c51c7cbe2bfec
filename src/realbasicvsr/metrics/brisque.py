"""BRISQUE (Mittal, Moorthy & Bovik 2012) as computed by the LIVE MATLAB release (`brisquescore.m`).

The release computes 36 features in MATLAB (`brisque_feature.m`: MSCN with `filter2`, i.e. zero padding; one GGD
fit of the MSCN and four AGGD fits of neighbour products at two scales, the second after MATLAB bicubic
`imresize(.., 0.5)`), writes them to a text file with `%f`, scales them with libsvm `svm-scale -r allrange`
(which prints `%g`) and predicts with `svm-predict` on the epsilon-SVR RBF model `allmodel`. Both text round
trips are reproduced here, because they round the features (6 decimals, then 6 significant digits) before the
SVR sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.special import gamma as gamma_fn

from realbasicvsr.metrics.color import ConvertTo, prepare
from realbasicvsr.metrics.imresize import imresize
from realbasicvsr.metrics.nss import fit_aggd, fit_ggd, mscn, paired_products
from realbasicvsr.metrics.params import param_file

_BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@dataclass(frozen=True)
class SVRModel:
    """A libsvm epsilon-SVR with RBF kernel: predict(x) = sum_i coef_i exp(-gamma |x - sv_i|^2) - rho."""

    gamma: float
    rho: float
    coefs: np.ndarray  # (n_sv,)
    support_vectors: np.ndarray  # (n_sv, n_features)

    def predict(self, features: np.ndarray) -> np.ndarray:
        features = np.atleast_2d(features)
        # squared distances from explicit differences, as libsvm's k_function forms them
        sq_dist = ((features[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-self.gamma * sq_dist) @ self.coefs - self.rho


def parse_libsvm_model(text: str, n_features: int = 36) -> SVRModel:
    """Read a libsvm text model (epsilon_svr, rbf); sparse `index:value` entries, missing ones are 0."""
    lines = text.splitlines()
    header: dict[str, str] = {}
    start = None
    for number, line in enumerate(lines):
        key, _, value = line.strip().partition(" ")
        if key == "SV":
            start = number + 1
            break
        header[key] = value
    if start is None or header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError("not a libsvm epsilon_svr model with an rbf kernel")
    rows = [line.split() for line in lines[start:] if line.strip()]
    coefs = np.array([float(row[0]) for row in rows])
    vectors = np.zeros((len(rows), n_features))
    for i, row in enumerate(rows):
        for item in row[1:]:
            index, value = item.split(":")
            vectors[i, int(index) - 1] = float(value)
    if len(rows) != int(header.get("total_sv", len(rows))):
        raise ValueError(f"model says total_sv {header.get('total_sv')} but holds {len(rows)} support vectors")
    return SVRModel(float(header["gamma"]), float(header["rho"].split()[0]), coefs, vectors)


def parse_libsvm_range(text: str) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Read an `svm-scale -s` range file: (lower, upper, feature_min, feature_max)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ["x"]:
        raise ValueError("not an svm-scale range file (first line must be 'x')")
    lower, upper = float(lines[1][0]), float(lines[1][1])
    table = np.array([[float(v) for v in line] for line in lines[2:]])
    order = np.argsort(table[:, 0])
    return lower, upper, table[order, 1], table[order, 2]


@cache
def _load(model_path: Path, range_path: Path) -> tuple[SVRModel, tuple[float, float, np.ndarray, np.ndarray]]:
    return parse_libsvm_model(model_path.read_text()), parse_libsvm_range(range_path.read_text())


def _round_significant(values: np.ndarray, digits: int = 6) -> np.ndarray:
    """Round to `digits` significant digits, what C's `%g` prints."""
    return np.array([float(f"{v:.{digits}g}") for v in values])


def svm_scale(features: np.ndarray, lower: float, upper: float, fmin: np.ndarray, fmax: np.ndarray) -> np.ndarray:
    """libsvm svm-scale: map [min, max] of each feature to [lower, upper] (no clipping outside the range).

    svm-scale drops a feature whose min equals its max; a dropped entry reads as 0 in libsvm's sparse format.
    """
    span = np.where(fmax == fmin, 1.0, fmax - fmin)
    scaled = lower + (upper - lower) * (features - fmin) / span
    scaled = np.where(features == fmin, lower, scaled)
    scaled = np.where(features == fmax, upper, scaled)
    return np.where(fmax == fmin, 0.0, scaled)


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a 2-D float64 image on the 0..255 scale."""
    features: list[float] = []
    for scale in (1, 2):
        coeffs = mscn(image, "zero")
        shape, std = fit_ggd(coeffs.reshape(1, -1))
        features += [shape[0], std[0] ** 2]
        for pair in paired_products(coeffs[None], _BRISQUE_SHIFTS):
            alpha, left_std, right_std = fit_aggd(pair)
            alpha, left_std, right_std = alpha[0], left_std[0], right_std[0]
            const = np.sqrt(gamma_fn(1 / alpha)) / np.sqrt(gamma_fn(3 / alpha))
            mean = (right_std - left_std) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha)) * const
            features += [alpha, mean, left_std**2, right_std**2]
        if scale == 1:
            image = imresize(image, scale=0.5)
    return np.array(features)


def brisque(
    image: np.ndarray,
    *,
    convert_to: ConvertTo = "y",
    crop_border: int = 0,
    params_dir: str | Path | None = None,
) -> float:
    """BRISQUE of an HxWx3 RGB image (uint8, or float in [0, 1]); lower is better (about 0..100).

    Args:
        image: RGB image, or an HxW grey image used as is.
        convert_to: "y" (MATLAB rgb2ycbcr Y, RealBasicVSR's table) or "gray" (MATLAB rgb2gray, the release).
        crop_border: pixels shaved on each side after conversion.
        params_dir: folder with `brisque/allmodel` and `brisque/allrange`; defaults to $REALBASICVSR_IQA_DIR
            or a download.
    """
    plane = prepare(image, convert_to, crop_border, single_plane=True)
    if min(plane.shape) < 8:
        raise ValueError(f"BRISQUE needs an image of at least 8x8 pixels, got {plane.shape[:2]}")
    model, (lower, upper, fmin, fmax) = _load(
        param_file("brisque/allmodel", params_dir), param_file("brisque/allrange", params_dir)
    )
    # fprintf('%f') in brisquescore.m, then '%g' in svm-scale's output.
    features = np.round(brisque_features(plane), 6)
    scaled = _round_significant(svm_scale(features, lower, upper, fmin, fmax))
    # svm-predict prints the prediction with '%g' as well; that is the number MATLAB loads.
    return float(_round_significant(model.predict(scaled))[0])
