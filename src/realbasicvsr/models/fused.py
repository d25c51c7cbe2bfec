"""Convolutions fused with their activation or residual add, for CPU inference (oneDNN post-ops).

On CPU the model is almost all 3x3 convolutions, yet the plain path ran them at about 0.8 of the speed of an
isolated convolution: each ReLU, LeakyReLU and residual add is an extra pass over a fresh feature map, and each
fresh map is a new large allocation. oneDNN can apply the activation, or add the result into an existing tensor,
inside the convolution ("post-ops"). PyTorch exposes this as `torch.ops.mkldnn._convolution_pointwise` (what
`torch.compile` itself emits for these patterns); results are bitwise those of the unfused ops (tests check it).

The fused path is used only where it is exact and available: CPU, no autograd (training keeps the plain ops),
input and weights of one dtype or CPU autocast to bfloat16 (then cast as autocast would; only on CPUs whose oneDNN
has a bf16 convolution), and a PyTorch built with oneDNN. Everything else falls back to the plain modules, so the
model never depends on these private operators.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

_MKLDNN = getattr(torch.ops, "mkldnn", None)
_HAS_FUSED = (
    torch.backends.mkldnn.is_available()
    and hasattr(_MKLDNN, "_convolution_pointwise")
    and hasattr(_MKLDNN, "_convolution_pointwise_")
)
_ENABLED = True  # set_fused_convolutions(False) turns the fused path off (to compare, or to rule it out)


def set_fused_convolutions(enabled: bool) -> None:
    """Turn the fused CPU inference path on (default) or off for the whole process."""
    global _ENABLED
    _ENABLED = bool(enabled)


@functools.cache
def _fused_bf16_supported() -> bool:
    """Whether this CPU runs oneDNN's bfloat16 convolution. It needs AVX-512 (BW/VL/DQ) or AVX-NE-CONVERT; on an
    AVX2-only CPU (seen: an AMD EPYC VM) the fused operator raises, while the plain bf16 convolution still works.
    Probed once on a 1x1 convolution, since PyTorch exposes no public flag for it."""
    x = torch.zeros(1, 1, 1, 1, dtype=torch.bfloat16)
    try:
        _MKLDNN._convolution_pointwise(x, x, None, [0, 0], [1, 1], [1, 1], 1, "none", [], "")
    except RuntimeError:
        return False
    return True


def _autocast_dtype() -> torch.dtype | None:
    """The CPU autocast dtype when CPU autocast is on, else None."""
    try:
        enabled = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu")
    except TypeError:  # torch < 2.4 has per-device functions instead
        enabled, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    return dtype if enabled else None


def _compute_dtype(x: torch.Tensor, conv: nn.Conv2d) -> torch.dtype | None:
    """The dtype the fused convolution runs in, or None when the plain path must be used.

    Without autocast: the input's dtype, which must be the weights' (float32 or bfloat16). Under CPU autocast to
    bfloat16: bfloat16, as autocast would cast input, weight and bias for a convolution.
    """
    if not (
        _ENABLED
        and _HAS_FUSED
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    ):
        return None
    autocast = _autocast_dtype()
    if autocast is not None:
        dtype = torch.bfloat16 if autocast == torch.bfloat16 and x.dtype in (torch.float32, torch.bfloat16) else None
    else:
        dtype = x.dtype if x.dtype in (torch.float32, torch.bfloat16) and conv.weight.dtype == x.dtype else None
    if dtype == torch.bfloat16 and not _fused_bf16_supported():
        return None
    return dtype


def can_fuse(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """True when `conv` on `x` may take the fused path (see the module docstring)."""
    return _compute_dtype(x, conv) is not None


def _operands(
    conv: nn.Conv2d,
    x: torch.Tensor,
    dtype: torch.dtype,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> tuple:
    weight = conv.weight if weight is None else weight
    bias = conv.bias if bias is None else bias
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    return (x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype), *geometry)


def conv_act(
    conv: nn.Conv2d,
    x: torch.Tensor,
    act: str | None,
    slope: float = 0.1,
    *,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """`act(conv(x))` for act in {None, "relu", "leaky_relu"} (LeakyReLU with `slope`); a new tensor.

    `weight`/`bias` replace the module's parameters (same shapes; only where `can_fuse(x, conv)`).
    """
    dtype = _compute_dtype(x, conv)
    if dtype is None:
        if weight is not None or bias is not None:
            raise ValueError("replacement weights are for the fused path only (check can_fuse first)")
        out = conv(x)
        if act == "relu":
            return F.relu(out, inplace=True)
        if act == "leaky_relu":
            return F.leaky_relu(out, slope, inplace=True)
        return out
    attr, scalars = {None: ("none", []), "relu": ("relu", []), "leaky_relu": ("leaky_relu", [slope])}[act]
    return _MKLDNN._convolution_pointwise(*_operands(conv, x, dtype, weight, bias), attr, scalars, "")


def conv_add_(conv: nn.Conv2d, x: torch.Tensor, accumulator: torch.Tensor) -> torch.Tensor:
    """`accumulator += conv(x)`, in place, and return it. `accumulator` must be the caller's own fresh tensor
    (under autograd this is the plain in-place add, valid where nothing saved it for the backward pass)."""
    dtype = _compute_dtype(x, conv)
    if dtype is None or accumulator.dtype != dtype or not _same_layout(accumulator, x):
        return accumulator.add_(conv(x))
    return _MKLDNN._convolution_pointwise_.binary(accumulator, *_operands(conv, x, dtype), "add", None, None, [], None)


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Both NCHW-contiguous or both channels_last (oneDNN writes the sum in the accumulator's layout)."""
    if a.is_contiguous() and b.is_contiguous():
        return True
    cl = torch.channels_last
    return a.is_contiguous(memory_format=cl) and b.is_contiguous(memory_format=cl)
