"""MATLAB-compatible colour conversion and input normalisation for the metrics.

The published numbers come from MATLAB code that reads 8-bit images and converts them with `rgb2ycbcr` or
`rgb2gray`; both round the result back to uint8. Python ports that keep the float value (or use other
coefficients) move NIQE by a few hundredths, so the conversions here reproduce MATLAB's arithmetic exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ConvertTo = Literal["y", "gray", "rgb"]

# First row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), the NTSC matrix MATLAB inverts in rgb2gray.
_GRAY_COEFFS = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]
# ITU-R BT.601 with MATLAB's scaling: Y in [16, 235] for RGB in [0, 255].
_Y_COEFFS = np.array([65.481, 128.553, 24.966]) / 255.0


def matlab_round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as MATLAB does when it converts to an integer class."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def to_uint8_scale(image: np.ndarray) -> np.ndarray:
    """Return `image` as float64 on the 0..255 scale holding integer values, as MATLAB reads an 8-bit file.

    uint8 input is taken as is. Float input must lie in [0, 1]; it is quantised with MATLAB rounding, i.e. the
    numbers are those of the PNG the frame would be saved as, which is what the published protocol scored.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"image must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0 or np.isnan(array).any()):
        raise ValueError("float images must hold values in [0, 1] (divide 8-bit data by 255)")
    return matlab_round(array.astype(np.float64) * 255.0)


def convert_image(image: np.ndarray, convert_to: ConvertTo = "y") -> np.ndarray:
    """Convert an HxWx3 RGB (or HxW grey) image to what MATLAB scores, as float64 on 0..255.

    `"y"`: Y of `rgb2ycbcr` on uint8 (16..235, rounded). `"gray"`: `rgb2gray` on uint8 (rounded).
    `"rgb"`: the three channels unchanged (HxWx3). A 2-D input is already one channel and is returned as is.
    """
    array = to_uint8_scale(image)
    if array.ndim == 2:
        return array
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image or an HxW grey image, got shape {array.shape}")
    if convert_to == "rgb":
        return array
    if convert_to == "y":
        return matlab_round(16.0 + array @ _Y_COEFFS)
    if convert_to == "gray":
        return matlab_round(array @ _GRAY_COEFFS)
    raise ValueError(f"convert_to must be 'y', 'gray' or 'rgb', got {convert_to!r}")


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """Remove `border` pixels on each side (PIRM2018 `shave_width`)."""
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return image
    if image.shape[0] <= 2 * border or image.shape[1] <= 2 * border:
        raise ValueError(f"image of size {image.shape[:2]} is too small for crop_border={border}")
    return image[border:-border, border:-border]


def prepare(image: np.ndarray, convert_to: ConvertTo, border: int, single_plane: bool = False) -> np.ndarray:
    """Convert then shave, in the order of PIRM2018's `convert_shave_image`.

    `single_plane=True` is for the no-reference metrics, which are defined on one channel only.
    """
    if single_plane and convert_to not in ("y", "gray"):
        raise ValueError(f"this metric scores one channel: convert_to must be 'y' or 'gray', got {convert_to!r}")
    return crop_border(convert_image(image, convert_to), border)
