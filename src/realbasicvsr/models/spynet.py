"""SPyNet: coarse-to-fine optical flow with a 6-level pyramid (frozen inside RealBasicVSR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.models.blocks import flow_warp
from realbasicvsr.models.fused import conv_act


class _ConvModule(nn.Module):
    """A 7x7 convolution (under the name `conv`, as mmcv's ConvModule) with an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 7, 1, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_act(self.conv, x, "relu" if self.relu else None)


class SPyNetBasicModule(nn.Module):
    """One pyramid level: (ref 3, warped supp 3, flow 2) channels -> flow residual (2 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.Sequential(
            _ConvModule(8, 32, relu=True),
            _ConvModule(32, 64, relu=True),
            _ConvModule(64, 32, relu=True),
            _ConvModule(32, 16, relu=True),
            _ConvModule(16, 2, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """`spynet(ref, supp)` returns the flow (n, 2, h, w) that warps `supp` onto `ref`, in pixels (x, y)."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetBasicModule() for _ in range(6)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def pyramids(self, ref: torch.Tensor, supp: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """ImageNet-normalised 6-level pyramids of both images, coarse to fine (5 halvings by 2x2 averaging)."""
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(5):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        return refs[::-1], supps[::-1]

    def compute_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow at a size that is a multiple of 32 (the pyramid has 5 halvings)."""
        n, _, h, w = ref.shape
        refs, supps = self.pyramids(ref, supp)

        flow = ref.new_zeros(n, 2, h // 32, w // 32)
        for level, module in enumerate(self.basic_module):
            inputs, flow_up = level_inputs(refs[level], supps[level], flow, level)
            flow = flow_up + module(inputs)
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        h_up = h if h % 32 == 0 else 32 * (h // 32 + 1)
        w_up = w if w % 32 == 0 else 32 * (w // 32 + 1)
        # The reference always resizes, even when the size is already a multiple of 32 (a no-op numerically).
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = self.compute_flow(ref, supp)
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        scale = flow.new_tensor([w / w_up, h / h_up]).view(1, 2, 1, 1)
        return flow * scale


def level_inputs(
    ref: torch.Tensor, supp: torch.Tensor, flow: torch.Tensor, level: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What pyramid level `level` sees, given the coarser level's `flow`: (its input, the flow it refines).

    The coarser flow is upsampled x2 (values doubled; level 0 starts from it as is), `supp` is warped by it, and
    the input is (ref, warped supp, upsampled flow) on the channel axis.
    """
    flow_up = flow if level == 0 else F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
    warped = flow_warp(supp, flow_up.permute(0, 2, 3, 1), padding_mode="border")
    return torch.cat([ref, warped, flow_up], dim=1), flow_up
