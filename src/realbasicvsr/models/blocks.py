"""Small building blocks shared by the generator: residual stacks, pixel-shuffle upsampling, flow warping."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.models.fused import can_fuse, conv_act, conv_add_


class ResidualBlockNoBN(nn.Module):
    """`x + conv2(relu(conv1(x)))`: the EDSR-style block without batch norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        # The reference scales kaiming init by 0.1 so that a deep stack starts close to identity.
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in", nonlinearity="relu")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class ResidualBlocksWithInputConv(nn.Module):
    """A 3x3 input convolution + LeakyReLU(0.1), then `num_blocks` residual blocks (keys `main.0`, `main.2.k`)."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Sequential(*[ResidualBlockNoBN(out_channels) for _ in range(num_blocks)]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if can_fuse(x, self.main[0]):
            return self._forward_fused(x)
        return self.main(x)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The same computation with fused kernels (CPU inference): each block adds into the running features
        in place, which are this call's own tensor, so `x` is not modified."""
        feat = conv_act(self.main[0], x, "leaky_relu", self.main[1].negative_slope)
        for block in self.main[2]:
            hidden = conv_act(block.conv1, feat, "relu")
            feat = conv_add_(block.conv2, hidden, feat)
        return feat


class PixelShufflePack(nn.Module):
    """Convolution to `out_channels * scale**2` channels, then pixel shuffle (key `upsample_conv`)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, kernel_size: int) -> None:
        super().__init__()
        self.scale = scale
        self.upsample_conv = nn.Conv2d(
            in_channels, out_channels * scale * scale, kernel_size, padding=(kernel_size - 1) // 2
        )
        nn.init.kaiming_normal_(self.upsample_conv.weight, a=0, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.upsample_conv.bias)

    def forward(self, x: torch.Tensor, leaky_slope: float | None = None) -> torch.Tensor:
        """Upsampled `x`; with `leaky_slope`, followed by LeakyReLU (applied before the shuffle, which only moves
        values, so the result is the same and the activation can be fused into the convolution)."""
        act = None if leaky_slope is None else "leaky_relu"
        conv = self.upsample_conv
        if can_fuse(x, conv) and _is_channels_last(x):
            return self._forward_subpixel_major(x, act, leaky_slope or 0.0)
        return pixel_shuffle(conv_act(conv, x, act, leaky_slope or 0.0), self.scale)

    def _forward_subpixel_major(self, x: torch.Tensor, act: str | None, slope: float) -> torch.Tensor:
        """The same values as `forward`, faster in channels_last: the convolution's output channels are reordered
        from (channel, sub-row, sub-column) to (sub-row, sub-column, channel), so that the shuffle copies runs of
        `scale * channels` contiguous values instead of gathering single ones."""
        conv, s = self.upsample_conv, self.scale
        out_c = conv.out_channels // (s * s)
        weight = conv.weight.reshape(out_c, s * s, *conv.weight.shape[1:]).transpose(0, 1).reshape(conv.weight.shape)
        bias = None if conv.bias is None else conv.bias.reshape(out_c, s * s).t().reshape(-1)
        y = conv_act(conv, x, act, slope, weight=weight, bias=bias)
        n, _, h, w = y.shape
        nhwc = y.permute(0, 2, 3, 1).reshape(n, h, w, s, s, out_c)  # memory order h, w, i, j, k
        out = nhwc.permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, out_c)  # h, i, w, j, k
        return out.permute(0, 3, 1, 2)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def pixel_shuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """`F.pixel_shuffle`, with a fast path for channels_last tensors (same values, pure data movement).

    PyTorch's kernel for NHWC input gathers element by element (380 ms for a 256x360x640 map on 2 CPU cores);
    as a permuted copy in NHWC order, each output pixel's channels are one contiguous run, about 10x faster.
    """
    n, c, h, w = x.shape
    if c % (scale * scale) or not _is_channels_last(x):
        return F.pixel_shuffle(x, scale)
    out_c = c // (scale * scale)
    # Channel index = k * scale^2 + i * scale + j  ->  output (k, h * scale + i, w * scale + j).
    nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, out_c, scale, scale)
    out = nhwc.permute(0, 1, 4, 2, 5, 3).reshape(n, h * scale, w * scale, out_c)
    return out.permute(0, 3, 1, 2)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Warp `x` (n, c, h, w) by `flow` (n, h, w, 2) given in pixels as (dx, dy).

    Bilinear sampling with `align_corners=True`, as the reference: the propagation uses zero padding and
    SPyNet border padding.
    """
    h, w = x.shape[-2:]
    grid_y, grid_x = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=flow.dtype),
        torch.arange(w, device=x.device, dtype=flow.dtype),
        indexing="ij",
    )
    # max(.., 1) keeps 1-pixel-wide frames finite (the reference divides by w - 1 and would produce NaN).
    grid_x = 2.0 * (grid_x + flow[..., 0]) / max(w - 1, 1) - 1.0
    grid_y = 2.0 * (grid_y + flow[..., 1]) / max(h - 1, 1) - 1.0
    grid = torch.stack((grid_x, grid_y), dim=3).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
