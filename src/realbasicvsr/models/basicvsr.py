"""BasicVSR: SPyNet-aligned bidirectional recurrent propagation and x4 pixel-shuffle reconstruction."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.models.blocks import PixelShufflePack, ResidualBlocksWithInputConv, flow_warp
from realbasicvsr.models.fused import conv_act, conv_add_
from realbasicvsr.models.spynet import SPyNet


class BasicVSR(nn.Module):
    """The propagation backbone of RealBasicVSR. Input (n, t, 3, h, w) in [0, 1]; output (n, t, 3, 4h, 4w)."""

    def __init__(self, mid_channels: int = 64, num_blocks: int = 20) -> None:
        super().__init__()
        self.mid_channels = mid_channels
        self.spynet = SPyNet()
        self.backward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.fusion = nn.Conv2d(mid_channels * 2, mid_channels, 1, 1, 0)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, kernel_size=3)
        self.upsample2 = PixelShufflePack(mid_channels, 64, 2, kernel_size=3)  # 64 is fixed in the reference
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        # Memory format of the per-frame tensors; RealBasicVSR.use_channels_last() switches it (faster on CPU).
        self.memory_format = torch.contiguous_format

    def compute_flows(self, lrs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flows between neighbours, each (n, t-1, 2, h, w).

        `backward[:, i]` warps frame i+1 onto frame i; `forward[:, i]` warps frame i onto frame i+1. For a
        mirror-extended clip (frame i == frame t-1-i) the forward flows equal reversed backward flows, so they
        are not computed and `None` is returned in their place (as the reference does).
        """
        n, t, c, h, w = lrs.shape
        lrs_1 = lrs[:, :-1].reshape(-1, c, h, w)
        lrs_2 = lrs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(lrs_1, lrs_2).view(n, t - 1, 2, h, w)
        if is_mirror_extended(lrs):
            return flows_backward, None
        flows_forward = self.spynet(lrs_2, lrs_1).view(n, t - 1, 2, h, w)
        return flows_backward, flows_forward

    def reconstruct(self, lr: torch.Tensor, backward_feat: torch.Tensor, forward_feat: torch.Tensor) -> torch.Tensor:
        """Fuse both directions of one frame and upsample x4, adding the bilinear x4 of the LR frame."""
        slope = self.lrelu.negative_slope
        out = conv_act(self.fusion, torch.cat([backward_feat, forward_feat], dim=1), "leaky_relu", slope)
        out = self.upsample1(out, leaky_slope=slope)
        out = self.upsample2(out, leaky_slope=slope)
        out = conv_act(self.conv_hr, out, "leaky_relu", slope)
        base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return conv_add_(self.conv_last, out, base.contiguous(memory_format=self.memory_format))

    def iter_outputs(self, lrs: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield the HR frames (n, 3, 4h, 4w) one by one, so a caller never has to hold all of them."""
        n, t, _, h, w = lrs.shape
        flows_backward, flows_forward = self.compute_flows(lrs) if t > 1 else (None, None)
        fmt = self.memory_format
        frames = [lrs[:, i].contiguous(memory_format=fmt) for i in range(t)]

        backward_feats: list[torch.Tensor] = [lrs.new_empty(0)] * t
        feat = lrs.new_zeros(n, self.mid_channels, h, w).contiguous(memory_format=fmt)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = flow_warp(feat, flows_backward[:, i].permute(0, 2, 3, 1))
            feat = self.backward_resblocks(torch.cat([frames[i], feat.contiguous(memory_format=fmt)], dim=1))
            backward_feats[i] = feat

        feat = torch.zeros_like(feat)
        for i in range(t):
            lr = frames[i]
            if i > 0:
                flow = flows_forward[:, i - 1] if flows_forward is not None else flows_backward[:, t - 1 - i]
                feat = flow_warp(feat, flow.permute(0, 2, 3, 1))
            feat = self.forward_resblocks(torch.cat([lr, feat.contiguous(memory_format=fmt)], dim=1))
            yield self.reconstruct(lr, backward_feats[i], feat)
            backward_feats[i] = lrs.new_empty(0)  # free what is no longer needed

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.iter_outputs(lrs)), dim=1)


def is_mirror_extended(lrs: torch.Tensor) -> bool:
    """True when t is even and the second half of the clip is exactly the first half reversed."""
    t = lrs.shape[1]
    if t % 2 != 0:
        return False
    first, second = torch.chunk(lrs, 2, dim=1)
    return bool(torch.equal(first, second.flip(1)))
