"""Streaming inference: frames in, x4 (or resized) frames out, through overlapping temporal windows.

The reference runs the whole clip at once (RAM grows with its length) or, with `max_seq_len`, cuts it into
independent chunks whose propagation restarts cold at every cut (visible seams). Here each window of `window`
frames is run as follows:

- forward branch: its hidden state (and the last cleaned frame, for the flow) is carried from the previous window,
  so the forward direction is exactly what a whole-sequence run computes, with no left context needed;
- backward branch: it needs the future, so the window is extended by `overlap` look-ahead frames whose outputs
  are discarded; only this truncation differs from a whole-sequence run, and its effect decays with distance.

With `window >= len(clip)` the computation is the model's own, operation for operation, so the output equals the
direct model output exactly. Memory depends on `window + overlap` and the frame size only, never on the clip length.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from realbasicvsr.media.read import Frame
from realbasicvsr.models.basicvsr import is_mirror_extended
from realbasicvsr.models.blocks import flow_warp
from realbasicvsr.models.realbasicvsr import RealBasicVSR
from realbasicvsr.upscale.config import DTYPES, UpscaleConfig, output_size

SPYNET_BATCH_BYTES = 1 << 30  # memory cap for one SPyNet call (see _compute_flows)
STRIPE_HALO = 2  # LR rows: the x4 stage reads 2 beyond a pixel (3x3 convs at 1x, 2x, 4x + bilinear; 1 fails tests)


@dataclass
class _State:
    """Carried between windows: the last cleaned LR frame and the forward-branch feature after it, plus the
    cleaned look-ahead frames, which are the next window's first frames (so they are not cleaned twice)."""

    cleaned: torch.Tensor
    feat: torch.Tensor
    lookahead: torch.Tensor | None = None
    low_precision: bool = False


class Upscaler:
    """Runs a `RealBasicVSR` over a stream of frames in overlapping windows; see the module docstring.

    `upscale(frames)` takes and yields `Frame`s (uint8/uint16 RGB), `iter_tensors(frames)` float (3, h, w) tensors
    in [0, 1] and yields float (3, H, W) tensors (not clamped; for exactness tests and custom pipelines). The model
    is moved to the device (and to channels_last when asked) in place.
    """

    def __init__(self, model: RealBasicVSR, options: UpscaleConfig | None = None) -> None:
        self.options = options or UpscaleConfig()
        if self.options.dtype == "fp16" and not self.options.device.startswith("cuda"):
            raise ValueError("fp16 is only supported on CUDA (use bf16 or fp32 on this device)")
        self.device = torch.device(self.options.device)
        self.model = model.eval().to(self.device)
        if self.options.channels_last:
            if hasattr(self.model, "use_channels_last"):
                self.model.use_channels_last()  # also switches the per-frame activations
            else:
                self.model.to(memory_format=torch.channels_last)
        self.fallbacks = 0  # windows redone in fp32 because reduced precision gave NaN/Inf

    # ---------------------------------------------------------------- tensors
    def iter_tensors(self, frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Upscale a stream of (3, h, w) float frames; yields (3, H, W) float frames in order."""
        window, overlap = self.options.window, self.options.overlap
        pending: list[torch.Tensor] = []
        state: _State | None = None
        for frame in frames:
            pending.append(frame)
            if len(pending) >= window + overlap:
                state = yield from self._run_window(pending[: window + overlap], window, state)
                pending = pending[window:]
        while pending:
            state = yield from self._run_window(pending[: window + overlap], min(window, len(pending)), state)
            pending = pending[window:]

    def _run_window(self, frames, n_core, state):
        """Generator: yields the n_core output frames, returns the state after them. Redoes the window in fp32 from
        the first non-finite frame on when reduced precision overflowed."""
        low = self.options.dtype != "fp32"
        holder: list[_State] = []
        for done, hr in enumerate(self._window_outputs(frames, n_core, state, low, holder)):
            if low and not bool(torch.isfinite(hr).all()):
                self.fallbacks += 1
                warnings.warn(
                    f"{self.options.dtype} gave NaN/Inf in a window; redoing it in fp32", RuntimeWarning, stacklevel=2
                )
                holder.clear()
                for i, hr32 in enumerate(self._window_outputs(frames, n_core, state, False, holder)):
                    if i >= done:
                        yield hr32
                return holder[0]
            yield hr
        return holder[0]

    def _autocast(self, enabled: bool) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=DTYPES[self.options.dtype], enabled=enabled)

    @torch.inference_mode()
    def _window_outputs(self, frames, n_core, state, low_precision, holder) -> Iterator[torch.Tensor]:
        """Yield the HR outputs of the first `n_core` frames of `frames`; append the end state to `holder`.

        The autocast context is entered around each compute step and never held across a `yield`, so a consumer
        (or an abandoned generator after a fp32 fallback) never runs under this window's precision.
        """
        model, bvsr = self.model, self.model.basicvsr
        with self._autocast(low_precision):
            # Reuse the previous window's cleaned look-ahead (same precision only: a fp32 redo cleans afresh). The
            # number of cleaning passes is thus decided per batch of newly cleaned frames (always 1 at T=255).
            cached = None
            if state is not None and state.lookahead is not None and state.low_precision == low_precision:
                cached = state.lookahead
            reused = 0 if cached is None else cached.shape[1]
            parts = [] if cached is None else [cached]
            if len(frames) > reused:
                new = [f.to(self.device, torch.float32, non_blocking=True) for f in frames[reused:]]
                parts.append(model.clean(torch.stack(new).unsqueeze(0)))
            cleaned = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            n, t, _, h, w = cleaned.shape
            flows_backward, flows_forward = _compute_flows(bvsr, cleaned, n_core - 1) if t > 1 else (None, None)
            # Same per-frame memory layout as BasicVSR.iter_outputs, so results match it bit for bit.
            fmt = getattr(bvsr, "memory_format", torch.contiguous_format)
            lrs = [cleaned[:, i].contiguous(memory_format=fmt) for i in range(t)]

            # Backward branch over core + look-ahead; keep the features of the core frames only.
            backward_feats: list[torch.Tensor | None] = [None] * n_core
            feat = cleaned.new_zeros(n, bvsr.mid_channels, h, w).contiguous(memory_format=fmt)
            for i in range(t - 1, -1, -1):
                if i < t - 1:
                    feat = flow_warp(feat, flows_backward[:, i].permute(0, 2, 3, 1))
                feat = bvsr.backward_resblocks(torch.cat([lrs[i], feat.contiguous(memory_format=fmt)], dim=1))
                if i < n_core:
                    backward_feats[i] = feat

            # Forward branch: continue from the previous window's state (zeros at the start of the clip).
            if state is None:
                feat = torch.zeros_like(feat)
            else:
                boundary_flow = bvsr.spynet(lrs[0], state.cleaned.to(cleaned.dtype))
                feat = flow_warp(state.feat.to(feat.dtype), boundary_flow.permute(0, 2, 3, 1))
        size = output_size(w, h, self.options)
        for i in range(n_core):
            with self._autocast(low_precision):
                lr = lrs[i]
                if i > 0:
                    flow = flows_forward[:, i - 1] if flows_forward is not None else flows_backward[:, t - 1 - i]
                    feat = flow_warp(feat, flow.permute(0, 2, 3, 1))
                feat = bvsr.forward_resblocks(torch.cat([lr, feat.contiguous(memory_format=fmt)], dim=1))
                hr = reconstruct_in_stripes(bvsr, lr, backward_feats[i], feat, self.options.stripe_pixels)
                backward_feats[i] = None
            if (hr.shape[-1], hr.shape[-2]) != size:
                hr = resize(hr.float(), size)
            yield hr[0]
        lookahead = cleaned[:, n_core:].clone() if t > n_core else None
        holder.append(_State(lrs[n_core - 1].clone(), feat.clone(), lookahead, low_precision))

    # ---------------------------------------------------------------- frames
    def upscale(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Upscale a stream of `Frame`s; timestamps, names and order are kept, alpha is resized."""
        queue: deque[Frame] = deque()

        def tensors() -> Iterator[torch.Tensor]:
            for frame in frames:
                queue.append(frame)
                yield to_tensor(frame.image, self.device)

        for hr in self.iter_tensors(tensors()):
            source = queue.popleft()
            depth = 16 if source.image.dtype == np.uint16 else 8
            alpha = None
            if source.alpha is not None:
                alpha = to_image(
                    resize(to_tensor(source.alpha[..., None]).unsqueeze(0), (hr.shape[-1], hr.shape[-2]))[0], depth
                )[..., 0]
            yield replace(source, image=to_image(hr, depth), alpha=alpha)


def reconstruct_in_stripes(
    bvsr, lr: torch.Tensor, backward_feat: torch.Tensor, forward_feat: torch.Tensor, stripe_pixels: int
) -> torch.Tensor:
    """`bvsr.reconstruct` (fusion + x4 upsampling of one frame) in horizontal stripes of at most `stripe_pixels`
    LR pixels, so its memory no longer grows with the frame. Each stripe is computed with STRIPE_HALO rows of
    context on both sides and only its own rows are kept: the same values as one piece (up to float rounding
    from the kernels' shape-dependent blocking), at 2 * STRIPE_HALO extra rows of work per stripe."""
    n, _, h, w = lr.shape
    rows = h if stripe_pixels == 0 else max(1, stripe_pixels // w)
    if rows >= h:
        return bvsr.reconstruct(lr, backward_feat, forward_feat)
    out = None
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        lo, hi = max(0, top - STRIPE_HALO), min(h, bottom + STRIPE_HALO)
        part = bvsr.reconstruct(lr[:, :, lo:hi], backward_feat[:, :, lo:hi], forward_feat[:, :, lo:hi])
        if out is None:
            fmt = getattr(bvsr, "memory_format", torch.contiguous_format)
            out = part.new_empty(n, part.shape[1], 4 * h, 4 * w).contiguous(memory_format=fmt)
        out[:, :, 4 * top : 4 * bottom] = part[:, :, 4 * (top - lo) : 4 * (bottom - lo)]
    return out


def _compute_flows(bvsr, lrs: torch.Tensor, forward_pairs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`BasicVSR.compute_flows` with a memory cap: SPyNet sees at most `SPYNET_BATCH_BYTES` worth of frame pairs
    per call instead of all pairs of the window at once.

    SPyNet on every pair in one batch is the reference's largest memory peak (~0.9 kB per LR pixel, padded to
    multiples of 32, per pair: ~33 GB for 42 frames of 720p). Below the cap this is one call, exactly as the model
    does it; above it the flows can differ from one big batch by float rounding (~1e-7). Forward flows are only
    needed for the first `forward_pairs` pairs (the look-ahead frames have no forward pass).
    """
    padded = -(-lrs.shape[-2] // 32) * 32 * (-(-lrs.shape[-1] // 32) * 32)
    pairs_per_call = max(1, SPYNET_BATCH_BYTES // (900 * padded))
    n, t, c, h, w = lrs.shape

    def pairs(x: torch.Tensor, count: int) -> torch.Tensor:
        return x[:, :count].reshape(-1, c, h, w)

    def spynet(ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        step = pairs_per_call * n
        parts = [bvsr.spynet(ref[i : i + step], supp[i : i + step]) for i in range(0, ref.shape[0], step)]
        return torch.cat(parts).view(n, -1, 2, h, w)

    flows_backward = spynet(pairs(lrs[:, :-1], t - 1), pairs(lrs[:, 1:], t - 1))
    if is_mirror_extended(lrs) or forward_pairs < 1:  # mirrored: the reference reverses the backward flows
        return flows_backward, None
    return flows_backward, spynet(pairs(lrs[:, 1:], forward_pairs), pairs(lrs[:, :-1], forward_pairs))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (n, c, h, w) to `size` = (width, height) with antialiased bicubic (a proper low-pass when shrinking)."""
    width, height = size
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """HWC uint8/uint16 -> (c, h, w) float32 in [0, 1] on `device` (x / 255, as the official script; x / 65535
    for 16 bit).

    On a GPU the integer frame is sent as is and converted there: a quarter of the bytes to copy, and no CPU
    tensor work in the loop (float division is correctly rounded on both, so the values are the same).
    """
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    array = image.astype(np.int32) if image.dtype == np.uint16 else image  # torch has no uint16 arithmetic
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    return tensor.permute(2, 0, 1).float().div_(scale)


def to_image(x: torch.Tensor, depth: int = 8) -> np.ndarray:
    """(c, h, w) float -> HWC uint8 (or uint16): clamp to [0, 1], scale, round half to even (as tensor2img)."""
    peak = 65535.0 if depth > 8 else 255.0
    q = x.detach().float().clamp(0, 1).mul_(peak).round_()  # clamp copies: the caller's tensor is untouched
    q = q.to(torch.int32 if depth > 8 else torch.uint8).permute(1, 2, 0).cpu().numpy()
    return q.astype(np.uint16) if depth > 8 else q
