"""BasicVSR: SPyNet-aligned bidirectional recurrent propagation and x4 pixel-shuffle reconstruction.

`propagate` is the one implementation of the recurrence. A whole clip (`iter_outputs`, `forward`) is one call with
no state; a stream is a sequence of calls, each on a window of `keep` frames plus look-ahead, that carries the
forward branch's state (`ForwardState`) from one call to the next.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.models.blocks import PixelShufflePack, ResidualBlocksWithInputConv, flow_warp
from realbasicvsr.models.checkpointing import run_checkpointed
from realbasicvsr.models.fused import conv_act, conv_add_
from realbasicvsr.models.spynet import SPyNet

# A memory cap for one SPyNet call that streaming passes as `max_flow_batch_bytes`: SPyNet on every frame pair of a
# window at once is the largest memory peak (~0.9 kB per LR pixel, padded to multiples of 32, per pair: ~33 GB for
# 42 frames of 720p). Below the cap a window's flows are one call, as for a whole clip.
SPYNET_BATCH_BYTES = 1 << 30
_SPYNET_BYTES_PER_PIXEL = 900
# LR rows of context on each side of a stripe of the x4 stage: it reads 2 rows beyond a pixel (3x3 convs at 1x, 2x
# and 4x, and the bilinear base); 1 fails the stripe tests.
STRIPE_HALO = 2


@dataclass
class ForwardState:
    """What the forward branch carries from one `propagate` call to the next: the last kept (cleaned) LR frame,
    from which SPyNet computes the flow into the next call's first frame, and the forward feature after it."""

    lr: torch.Tensor  # (n, 3, h, w)
    feat: torch.Tensor  # (n, mid_channels, h, w)


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
        # Training only (RealBasicVSR.use_activation_checkpointing): recompute each propagation step and each
        # frame's x4 stage in the backward pass instead of keeping their activations (models/checkpointing.py).
        self.checkpoint_activations = False

    def compute_flows(
        self, lrs: torch.Tensor, forward_pairs: int | None = None, max_batch_bytes: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flows between neighbours: backward (n, t-1, 2, h, w) and forward (n, forward_pairs, 2, h, w).

        `backward[:, i]` warps frame i+1 onto frame i; `forward[:, i]` warps frame i onto frame i+1. For a
        mirror-extended clip (frame i == frame t-1-i) the forward flows equal reversed backward flows, so they
        are not computed and `None` is returned in their place (as the reference does); so also when no forward
        pair is asked for. `forward_pairs` (default all t-1): only the first pairs are needed when the last frames
        are look-ahead. `max_batch_bytes` (default none): SPyNet sees at most this much memory's worth of frame
        pairs per call; the flows can then differ from one big batch by float rounding (~1e-7).
        """
        t = lrs.shape[1]
        forward_pairs = t - 1 if forward_pairs is None else forward_pairs
        flows_backward = self._pair_flows(lrs[:, :-1], lrs[:, 1:], t - 1, max_batch_bytes)
        if is_mirror_extended(lrs) or forward_pairs < 1:
            return flows_backward, None
        return flows_backward, self._pair_flows(lrs[:, 1:], lrs[:, :-1], forward_pairs, max_batch_bytes)

    def _pair_flows(
        self, refs: torch.Tensor, supps: torch.Tensor, count: int, max_batch_bytes: int | None
    ) -> torch.Tensor:
        """SPyNet on the first `count` pairs (refs[:, i], supps[:, i]), all in one batch or in batches under the cap."""
        n, _, c, h, w = refs.shape
        ref, supp = refs[:, :count].reshape(-1, c, h, w), supps[:, :count].reshape(-1, c, h, w)
        if max_batch_bytes is None:
            return self.spynet(ref, supp).view(n, count, 2, h, w)
        padded = -(-h // 32) * 32 * (-(-w // 32) * 32)  # SPyNet pads to multiples of 32
        step = n * max(1, max_batch_bytes // (_SPYNET_BYTES_PER_PIXEL * padded))
        parts = [self.spynet(ref[i : i + step], supp[i : i + step]) for i in range(0, ref.shape[0], step)]
        return torch.cat(parts).view(n, count, 2, h, w)

    def reconstruct(
        self, lr: torch.Tensor, backward_feat: torch.Tensor, forward_feat: torch.Tensor, stripe_pixels: int = 0
    ) -> torch.Tensor:
        """Fuse both directions of one frame and upsample x4, adding the bilinear x4 of the LR frame.

        With `stripe_pixels` > 0 this runs in horizontal stripes of at most that many LR pixels, so its memory
        (~16 kB per LR pixel in fp32) no longer grows with the frame. Each stripe is computed with STRIPE_HALO rows
        of context on both sides and only its own rows are kept: the same values as one piece (up to float rounding
        from the kernels' shape-dependent blocking), at 2 * STRIPE_HALO extra rows of work per stripe.
        """
        n, _, h, w = lr.shape
        rows = h if stripe_pixels == 0 else max(1, stripe_pixels // w)
        if rows >= h:
            return self._reconstruct(lr, backward_feat, forward_feat)
        out = None
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            lo, hi = max(0, top - STRIPE_HALO), min(h, bottom + STRIPE_HALO)
            part = self._reconstruct(lr[:, :, lo:hi], backward_feat[:, :, lo:hi], forward_feat[:, :, lo:hi])
            if out is None:
                out = part.new_empty(n, part.shape[1], 4 * h, 4 * w).contiguous(memory_format=self.memory_format)
            out[:, :, 4 * top : 4 * bottom] = part[:, :, 4 * (top - lo) : 4 * (bottom - lo)]
        return out

    def _reconstruct(self, lr: torch.Tensor, backward_feat: torch.Tensor, forward_feat: torch.Tensor) -> torch.Tensor:
        slope = self.lrelu.negative_slope
        out = conv_act(self.fusion, torch.cat([backward_feat, forward_feat], dim=1), "leaky_relu", slope)
        out = self.upsample1(out, leaky_slope=slope)
        out = self.upsample2(out, leaky_slope=slope)
        out = conv_act(self.conv_hr, out, "leaky_relu", slope)
        base = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
        return conv_add_(self.conv_last, out, base.contiguous(memory_format=self.memory_format))

    def propagate(
        self,
        lrs: torch.Tensor,
        keep: int | None = None,
        state: ForwardState | None = None,
        *,
        stripe_pixels: int = 0,
        max_flow_batch_bytes: int | None = None,
    ) -> Generator[torch.Tensor, None, ForwardState]:
        """Yield the HR frames (n, 3, 4h, 4w) of the first `keep` frames of `lrs` (default all); return the state
        after them (the generator's return value: `state = yield from model.propagate(...)`).

        The frames after `keep` are look-ahead: the backward branch runs over them, their outputs are not made.
        `state` continues the forward branch of an earlier call whose kept frames end just before `lrs[:, 0]`
        (None: the start of a clip, zeros). `stripe_pixels` and `max_flow_batch_bytes` bound the memory of the
        x4 stage and of SPyNet (see `reconstruct` and `compute_flows`); by default neither is bounded.
        """
        t = lrs.shape[1]
        keep = t if keep is None else keep
        if not 1 <= keep <= t:
            raise ValueError(f"keep must be between 1 and the {t} frames given, got {keep}")
        flows_backward, flows_forward = (
            self.compute_flows(lrs, keep - 1, max_flow_batch_bytes) if t > 1 else (None, None)
        )
        fmt = self.memory_format
        frames = [lrs[:, i].contiguous(memory_format=fmt) for i in range(t)]
        backward_feats = self._backward_branch(frames, flows_backward, keep)

        feat = torch.zeros_like(backward_feats[0])
        if state is not None:  # warp the carried feature onto this call's first frame
            boundary_flow = self.spynet(frames[0], state.lr.to(lrs.dtype))
            feat = flow_warp(state.feat.to(feat.dtype), boundary_flow.permute(0, 2, 3, 1))
        checkpointed = self.checkpoint_activations
        for i in range(keep):
            lr, flow = frames[i], None
            if i > 0:
                flow = flows_forward[:, i - 1] if flows_forward is not None else flows_backward[:, t - 1 - i]
            feat = run_checkpointed(checkpointed, self._step, self.forward_resblocks, lr, feat, flow)
            hr = run_checkpointed(checkpointed, self.reconstruct, lr, backward_feats[i], feat, stripe_pixels)
            backward_feats[i] = lrs.new_empty(0)  # free what is no longer needed
            yield hr
        # Clones: a view of `lrs` would keep the whole window alive until the next call.
        return ForwardState(frames[keep - 1].clone(), feat.clone())

    def warm_forward(self, lrs: torch.Tensor, state: ForwardState | None = None) -> ForwardState:
        """Run only the forward branch over `lrs` (n, t, 3, h, w) and return its state after the last frame: the
        warm-up of a segment that starts inside a scene. It computes exactly what `propagate` computes for the
        forward branch of these frames, without their backward branch or their x4 outputs (the expensive parts)."""
        t, fmt = lrs.shape[1], self.memory_format
        frames = [lrs[:, i].contiguous(memory_format=fmt) for i in range(t)]
        flows = self._pair_flows(lrs[:, 1:], lrs[:, :-1], t - 1, SPYNET_BATCH_BYTES) if t > 1 else None
        feat = frames[0].new_zeros(lrs.shape[0], self.mid_channels, *lrs.shape[-2:])
        if state is not None:
            boundary_flow = self.spynet(frames[0], state.lr.to(lrs.dtype))
            feat = flow_warp(state.feat.to(feat.dtype), boundary_flow.permute(0, 2, 3, 1))
        for i in range(t):
            if i > 0:
                feat = flow_warp(feat, flows[:, i - 1].permute(0, 2, 3, 1))
            feat = self.forward_resblocks(torch.cat([frames[i], feat.contiguous(memory_format=fmt)], dim=1))
        return ForwardState(frames[-1].clone(), feat.clone())

    def _backward_branch(
        self, frames: list[torch.Tensor], flows_backward: torch.Tensor | None, keep: int
    ) -> list[torch.Tensor]:
        """The backward features of the first `keep` frames (the branch runs from the last frame to the first)."""
        t, fmt = len(frames), self.memory_format
        n, _, h, w = frames[0].shape
        feats: list[torch.Tensor] = [frames[0].new_empty(0)] * keep
        feat = frames[0].new_zeros(n, self.mid_channels, h, w).contiguous(memory_format=fmt)
        for i in range(t - 1, -1, -1):
            flow = flows_backward[:, i] if i < t - 1 else None
            feat = run_checkpointed(
                self.checkpoint_activations, self._step, self.backward_resblocks, frames[i], feat, flow
            )
            if i < keep:
                feats[i] = feat
        return feats

    def _step(
        self, resblocks: ResidualBlocksWithInputConv, lr: torch.Tensor, feat: torch.Tensor, flow: torch.Tensor | None
    ) -> torch.Tensor:
        """One propagation step of a branch: warp the previous feature by `flow` (None: the first frame, no warp),
        then the residual trunk on (frame, feature)."""
        if flow is not None:
            feat = flow_warp(feat, flow.permute(0, 2, 3, 1))
        return resblocks(torch.cat([lr, feat.contiguous(memory_format=self.memory_format)], dim=1))

    def iter_outputs(self, lrs: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield the HR frames (n, 3, 4h, 4w) one by one, so a caller never has to hold all of them."""
        yield from self.propagate(lrs)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.iter_outputs(lrs)), dim=1)


def is_mirror_extended(lrs: torch.Tensor) -> bool:
    """True when t is even and the second half of the clip is exactly the first half reversed."""
    t = lrs.shape[1]
    if t % 2 != 0:
        return False
    first, second = torch.chunk(lrs, 2, dim=1)
    return bool(torch.equal(first, second.flip(1)))
