"""NRQM (Ma, Yang, Yang & Yang, CVIU 2017), the "Ma" score of PIRM2018, and its three feature groups.

The original MATLAB code (chaoma99/sr-metric `quality_predict.m`) computes three feature vectors, feeds each
to its own regression forest (randomforest-matlab `regRF_predict`, 2000 trees) and combines the three
predictions linearly: score = [1 s1 s2 s3] * model.linear. The model file is a MATLAB struct that we read
with scipy; it is not shipped (see params.py).

Feature groups (all on the 0..255 grey/Y image):
1. local frequency, 18 values: on a 3-level Gaussian pyramid of image/255, 7x7 DCT blocks with stride 3
   give per block a GGD shape, a coefficient of variation and the spread over three orientation groups;
   each is pooled as the mean of its worst 10 % and the mean of all;
2. global GSM, 45 values: a 2-scale 6-orientation steerable pyramid, divisively normalised; GGD shapes per
   band and across scales, SSIM of each band with the high-pass band and between orientations;
3. spatial, 75 values: singular values of the 5x5 distinct-block matrix at each pyramid level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.fft import dctn
from scipy.ndimage import correlate1d
from scipy.special import gammaln

from realbasicvsr.metrics.color import ConvertTo, prepare
from realbasicvsr.metrics.imresize import imresize
from realbasicvsr.metrics.params import NRQM_MODEL, param_file
from realbasicvsr.metrics.steerable import steerable_pyramid

N_FEATURES = (18, 45, 75)


# --------------------------------------------------------------------------------------------- forests
@dataclass(frozen=True)
class RegressionForest:
    """randomforest-matlab regression forest; arrays are (max_nodes, n_trees), indices 1-based as in MATLAB."""

    left: np.ndarray  # lDau
    right: np.ndarray  # rDau
    status: np.ndarray  # nodestatus, -1 = terminal
    threshold: np.ndarray  # upper (x[var] <= threshold goes left)
    value: np.ndarray  # avnode, prediction of a terminal node
    variable: np.ndarray  # mbest, 1-based feature index

    def predict(self, features: np.ndarray) -> float:
        """Mean of the trees' predictions for one feature vector (the C routine predictRegTree, vectorised)."""
        n_trees = self.left.shape[1]
        trees = np.arange(n_trees)
        node = np.zeros(n_trees, dtype=np.int64)
        for _ in range(self.left.shape[0] + 1):
            active = self.status[node, trees] != -1
            if not active.any():
                break
            var = self.variable[node, trees].astype(np.int64) - 1
            go_left = features[np.clip(var, 0, features.size - 1)] <= self.threshold[node, trees]
            child = np.where(go_left, self.left[node, trees], self.right[node, trees]).astype(np.int64) - 1
            node = np.where(active, child, node)
        else:
            raise ValueError("a tree of the NRQM model does not reach a terminal node (corrupt model file)")
        return float(self.value[node, trees].mean())


@dataclass(frozen=True)
class NRQMModel:
    forests: tuple[RegressionForest, RegressionForest, RegressionForest]
    linear: np.ndarray  # (4,)

    def predict(self, f1: np.ndarray, f2: np.ndarray, f3: np.ndarray) -> float:
        scores = [forest.predict(f) for forest, f in zip(self.forests, (f1, f2, f3))]
        return float(np.dot(np.concatenate([[1.0], scores]), self.linear))


# randomforest-matlab's regRF_train returns the fields in this order: lDau, rDau, nodestatus, nrnodes, upper,
# avnode, mbest, ... Fields are read by name; a copy whose names differ is read by these positions instead.
_FOREST_FIELDS = {"lDau": 0, "rDau": 1, "nodestatus": 2, "upper": 4, "avnode": 5, "mbest": 6}


def _field(struct: np.ndarray, name: str) -> np.ndarray:
    names = struct.dtype.names or ()
    if name in names:
        return np.asarray(struct[name][0, 0], dtype=np.float64)
    if len(names) <= max(_FOREST_FIELDS.values()):
        raise ValueError(f"NRQM model forest lacks the field {name!r} (has {', '.join(names)})")
    return np.asarray(struct[names[_FOREST_FIELDS[name]]][0, 0], dtype=np.float64)


@cache
def load_nrqm_model(path: Path) -> NRQMModel:
    """Read Ma et al.'s `model.mat`: struct `model` with `rf` (1x3 cell of regRF structs) and `linear` (4x1)."""
    from scipy.io import loadmat

    data = loadmat(path)
    if "model" not in data:
        raise ValueError(f"{path} has no MATLAB variable 'model' (is it sr-metric's model.mat?)")
    model = data["model"]
    cells = model["rf"][0, 0].ravel()
    linear = np.asarray(model["linear"][0, 0], dtype=np.float64).ravel()
    if cells.size != 3 or linear.size != 4:
        raise ValueError(f"{path}: expected 3 forests and 4 linear weights, got {cells.size} and {linear.size}")
    forests = []
    for cell in cells:
        struct = cell if cell.dtype.names else cell[0, 0]
        forests.append(RegressionForest(*(_field(struct, name) for name in _FOREST_FIELDS)))
    return NRQMModel(tuple(forests), linear)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- features
def _gaussian_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """image and two levels of 3x3 Gaussian (sigma 0.5, zero padding) blur + keep every second pixel."""
    axis = np.array([-1.0, 0.0, 1.0])
    kernel = np.exp(-(axis * axis) / 0.5)
    kernel /= kernel.sum()
    levels = [image]
    for _ in range(2):
        blurred = correlate1d(correlate1d(levels[-1], kernel, axis=0, mode="constant"), kernel, 1, mode="constant")
        levels.append(blurred[1::2, 1::2])
    return levels


def _ggd_shape(values: np.ndarray) -> np.ndarray:
    """GGD shape per row by grid search on 0.03:0.001:10 (var / mean-absolute-deviation^2 matching)."""
    grid = 0.03 + 0.001 * np.arange(9971)
    table = np.exp(gammaln(1 / grid) + gammaln(3 / grid) - 2 * gammaln(2 / grid))
    var = values.var(axis=-1, ddof=1)
    mad = np.abs(values - values.mean(axis=-1, keepdims=True)).mean(axis=-1)
    rho = var / (mad * mad + 1e-7)
    # The table decreases with the shape; search the reversed (increasing) copy. The nearest entry is one of
    # the two neighbours of the insertion point, which gives the same answer as an arg-min over the grid.
    grid, table = grid[::-1], table[::-1]
    idx = np.clip(np.searchsorted(table, rho), 1, table.size - 1)
    nearer_left = np.abs(rho - table[idx - 1]) <= np.abs(rho - table[idx])
    return grid[np.where(nearer_left, idx - 1, idx)]


def _coeff_variation(values: np.ndarray, eps: float) -> np.ndarray:
    magnitude = np.abs(values)
    return magnitude.std(axis=-1, ddof=1) / (magnitude.mean(axis=-1) + eps)


def _dct_blocks(image: np.ndarray, size: int = 7, stride: int = 3) -> np.ndarray:
    """(n, 7, 7) orthonormal DCT-II of overlapping blocks, zero 'same' padding split evenly."""
    height, width = image.shape
    pad_r = (math.ceil(height / stride) - 1) * stride + size - height
    pad_c = (math.ceil(width / stride) - 1) * stride + size - width
    padded = np.pad(image, ((pad_r // 2, pad_r - pad_r // 2), (pad_c // 2, pad_c - pad_c // 2)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))[::stride, ::stride]
    return dctn(windows.reshape(-1, size, size), type=2, norm="ortho", axes=(1, 2))


def _orientation_groups(blocks: np.ndarray) -> list[np.ndarray]:
    """Coefficients of a 7x7 DCT block in three orientation groups (horizontal, diagonal, vertical)."""
    horizontal = [blocks[:, 0, 1:], blocks[:, 1, 2:], blocks[:, 2, 4:], blocks[:, 3, 5:]]
    diagonal = [blocks[:, 1, 1:2], blocks[:, 2, 2:4], blocks[:, 3, 2:5], blocks[:, 4, 3:], blocks[:, 5, 4:]]
    diagonal.append(blocks[:, 6, 4:])
    vertical = [blocks[:, 1:, 0], blocks[:, 2:, 1], blocks[:, 4:, 2], blocks[:, 5:, 3]]
    return [np.concatenate(group, axis=1) for group in (horizontal, diagonal, vertical)]


def local_frequency_features(levels: list[np.ndarray]) -> np.ndarray:
    """Feature group 1 (18 values) from the Gaussian pyramid of image/255."""
    features = []
    for level in levels:
        blocks = _dct_blocks(level)
        ac = blocks.reshape(blocks.shape[0], -1)[:, 1:]
        shape = np.sort(_ggd_shape(ac))
        variation = np.sort(_coeff_variation(ac, 1e-7))
        spread = np.sort(
            np.var(np.stack([_coeff_variation(g, 1e-8) for g in _orientation_groups(blocks)]), axis=0, ddof=1)
        )
        n = shape.size
        features += [shape[: math.ceil(0.1 * n) + 1].mean(), shape.mean()]
        features += [variation[math.floor(0.9 * n) :].mean(), variation.mean()]
        features += [spread[math.floor(0.9 * n) :].mean(), spread.mean()]
    return np.array(features)


def _normalise_band(bands: list[list[np.ndarray]], scale: int, orient: int) -> np.ndarray:
    """Divisive normalisation of one band by its 3x3 neighbourhood, parent and sibling orientations."""
    band = bands[scale][orient]
    h, w = band.shape
    inner = (slice(1, h - 1), slice(1, w - 1))
    columns = [band[dy : dy + h - 2, dx : dx + w - 2] for dy in range(3) for dx in range(3)]
    count = 9
    if scale + 1 < len(bands):
        columns.append(imresize(bands[scale + 1][orient], output_shape=(h, w))[inner])
        count += 1
    columns += [bands[scale][other][inner] for other in range(len(bands[scale])) if other != orient]
    stacked = np.empty(((h - 2) * (w - 2), len(columns)), order="F")  # column writes stay contiguous
    for i, column in enumerate(columns):
        stacked[:, i] = column.ravel()
    cov = stacked.T @ stacked / stacked.shape[0]
    eigval, eigvec = np.linalg.eigh(cov)
    positive = eigval * (eigval > 0)
    total = positive.sum()
    eigval = positive * eigval.sum() / (total if total != 0 else 1.0)  # clip negative eigenvalues, keep trace
    cov = eigvec @ np.diag(eigval) @ eigvec.T
    centre = band[inner].ravel()
    centre = centre - centre.mean()
    z = np.sqrt(np.einsum("ij,ij->i", stacked @ np.linalg.pinv(cov), stacked) / count)
    normalised = np.where(z != 0, centre / np.where(z != 0, z, 1.0), 0.0).reshape(h - 2, w - 2)
    guard = 16 // 2**scale
    normalised = normalised[guard:-guard, guard:-guard]
    return normalised - normalised.mean()


def _ssim_filter(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian (sigma 1.5) applied separably, 'valid' part only."""
    kernel = np.exp(-((np.arange(11) - 5.0) ** 2) / 4.5)
    kernel /= kernel.sum()
    out = correlate1d(correlate1d(x, kernel, axis=0, mode="constant"), kernel, axis=1, mode="constant")
    return out[5:-5, 5:-5]


class _SSIMStats:
    """Local mean and mean of squares of one image, kept so that pairs sharing an image reuse them."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.mu = _ssim_filter(image)
        self.var = _ssim_filter(image * image) - self.mu**2

    def ssim(self, other: _SSIMStats) -> float:
        """SSIM with data range 1 (C1 = 0.01^2, C2 = 0.03^2), mean of the map."""
        c1, c2 = 0.01**2, 0.03**2
        cov = _ssim_filter(self.image * other.image) - self.mu * other.mu
        numerator = (2 * self.mu * other.mu + c1) * (2 * cov + c2)
        denominator = (self.mu**2 + other.mu**2 + c1) * (self.var + other.var + c2)
        return float((numerator / denominator).mean())


def global_gsm_features(image: np.ndarray) -> np.ndarray:
    """Feature group 2 (45 values) from the steerable pyramid of the 0..255 image."""
    high, bands = steerable_pyramid(image, height=2, nbands=6)
    normalised = [[_normalise_band(bands, s, o) for o in range(6)] for s in range(2)]
    features = list(_ggd_shape(np.stack([b.ravel() for b in normalised[0]])))
    features += list(_ggd_shape(np.stack([b.ravel() for b in normalised[1]])))
    for o in range(6):  # across scales
        features.append(_ggd_shape(np.concatenate([normalised[0][o].ravel(), normalised[1][o].ravel()]))[()])
    high_stats = _SSIMStats(high)
    flat = [band for scale in normalised for band in scale]
    features += [_SSIMStats(imresize(band, output_shape=high.shape)).ssim(high_stats) for band in flat]
    first = [_SSIMStats(band) for band in normalised[0]]
    features += [first[i].ssim(first[j]) for i in range(6) for j in range(i + 1, 6)]
    return np.array(features, dtype=np.float64)


def spatial_features(levels: list[np.ndarray]) -> np.ndarray:
    """Feature group 3 (75 values): singular values of the distinct 5x5 block matrix at each level."""
    features = []
    for level in levels:
        h, w = level.shape
        padded = np.pad(level, ((0, -h % 5), (0, -w % 5)))
        blocks = padded.reshape(padded.shape[0] // 5, 5, padded.shape[1] // 5, 5).transpose(0, 2, 1, 3)
        features.append(np.linalg.svd(blocks.reshape(-1, 25), compute_uv=False))
    return np.concatenate(features)


def nrqm_features(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three NRQM feature vectors of a 2-D image on the 0..255 scale."""
    if min(plane.shape) < 64:
        raise ValueError(f"NRQM needs an image of at least 64x64 pixels, got {plane.shape}")
    levels = _gaussian_pyramid(plane / 255.0)
    return local_frequency_features(levels), global_gsm_features(plane), spatial_features(levels)


def nrqm(
    image: np.ndarray,
    *,
    convert_to: ConvertTo = "y",
    crop_border: int = 0,
    params_dir: str | Path | None = None,
    model_path: str | Path | None = None,
) -> float:
    """NRQM ("Ma" score) of an HxWx3 RGB image (uint8, or float in [0, 1]); higher is better (0..10).

    `model_path` points to sr-metric's `model.mat`; without it the file is looked up as `nrqm/model.mat` in
    `params_dir` / $REALBASICVSR_IQA_DIR, and a UserError explains where to get it when it is absent.
    """
    path = Path(model_path) if model_path is not None else param_file(NRQM_MODEL, params_dir)
    model = load_nrqm_model(path)
    plane = prepare(image, convert_to, crop_border, single_plane=True)
    return model.predict(*nrqm_features(plane))
