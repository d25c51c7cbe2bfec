"""Activation checkpointing for training (`run.checkpoint_activations`): recompute instead of keep.

A training step of the official model keeps every intermediate feature map of the forward pass for the backward
pass: 20 residual blocks per frame in each propagation branch, the x4 stage per frame (its 256-channel maps at
1x and 2x, 64-channel maps at 4x) and the cleaning module's blocks over all frames; about 7 GiB at 30 frames of
64x64. With checkpointing on, each propagation step (warp + concatenation + residual trunk of one frame), each
frame's x4 stage and each block of the cleaning module keep only their inputs, and are run again during the
backward pass, one at a time, to rebuild what their own gradients need: memory then grows with the number of
frames by a few feature maps per frame instead of ~160, for about one extra forward pass of compute.

Recomputation runs the same kernels on the same shapes, so losses and gradients equal those of the plain pass.
It is `torch.utils.checkpoint` in its non-reentrant form (works with DDP, autocast and frozen parameters). With
autograd off (inference: `no_grad`/`inference_mode`) the functions are called directly, as if it were off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from realbasicvsr.models.blocks import ResidualBlocksWithInputConv


def run_checkpointed(enabled: bool, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, recomputed in the backward pass instead of keeping its intermediates when
    `enabled` and autograd is recording; a plain call otherwise."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False, **kwargs)
    return function(*args, **kwargs)


def cleaning_segments(cleaning: nn.Sequential) -> Sequence[Callable[[torch.Tensor], torch.Tensor]]:
    """The cleaning module (residual stack with input convolution, then a 64->3 convolution) as the pieces that
    are checkpointed one by one: input convolution + LeakyReLU, then each residual block. The last convolution
    is left out: its input is the last block's output, which is kept in any case."""
    trunk, _ = cleaning
    if not isinstance(trunk, ResidualBlocksWithInputConv):
        raise TypeError(f"expected a ResidualBlocksWithInputConv first, got {type(trunk).__name__}")
    input_conv, activation, blocks = trunk.main

    def head(x: torch.Tensor) -> torch.Tensor:
        return activation(input_conv(x))

    return [head, *blocks]


def checkpointed_cleaning(cleaning: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The same values as `cleaning(x)`, each block checkpointed (when autograd records; else a plain call)."""
    if not torch.is_grad_enabled():
        return cleaning(x)
    for segment in cleaning_segments(cleaning):
        x = checkpoint(segment, x, use_reentrant=False)
    return cleaning[1](x)
