"""The UNet discriminator with spectral normalisation used in stage 2 (Real-ESRGAN's design)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class UNetDiscriminator(nn.Module):
    """Per-pixel real/fake logits (n, 1, H, W); H and W must be multiples of 8.

    Uses `torch.nn.utils.spectral_norm` (keys `weight_orig`, `weight_u`, `weight_v`) so that the reference's state
    dict loads unchanged.
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        m = mid_channels
        self.skip_connection = skip_connection
        self.conv_0 = nn.Conv2d(in_channels, m, 3, 1, 1)
        self.conv_1 = spectral_norm(nn.Conv2d(m, m * 2, 4, 2, 1, bias=False))
        self.conv_2 = spectral_norm(nn.Conv2d(m * 2, m * 4, 4, 2, 1, bias=False))
        self.conv_3 = spectral_norm(nn.Conv2d(m * 4, m * 8, 4, 2, 1, bias=False))
        self.conv_4 = spectral_norm(nn.Conv2d(m * 8, m * 4, 3, 1, 1, bias=False))
        self.conv_5 = spectral_norm(nn.Conv2d(m * 4, m * 2, 3, 1, 1, bias=False))
        self.conv_6 = spectral_norm(nn.Conv2d(m * 2, m, 3, 1, 1, bias=False))
        self.conv_7 = spectral_norm(nn.Conv2d(m, m, 3, 1, 1, bias=False))
        self.conv_8 = spectral_norm(nn.Conv2d(m, m, 3, 1, 1, bias=False))
        self.conv_9 = nn.Conv2d(m, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"discriminator input height and width must be multiples of 8, got {tuple(x.shape)}")

        def act(y: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(y, negative_slope=0.2)

        def up(y: torch.Tensor) -> torch.Tensor:
            return F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)

        f0 = act(self.conv_0(x))
        f1 = act(self.conv_1(f0))
        f2 = act(self.conv_2(f1))
        f3 = act(self.conv_3(f2))
        f4 = act(self.conv_4(up(f3)))
        if self.skip_connection:
            f4 = f4 + f2
        f5 = act(self.conv_5(up(f4)))
        if self.skip_connection:
            f5 = f5 + f1
        f6 = act(self.conv_6(up(f5)))
        if self.skip_connection:
            f6 = f6 + f0
        out = act(self.conv_7(f6))
        out = act(self.conv_8(out))
        return self.conv_9(out)
