"""RealBasicVSR: an image-cleaning module with dynamic refinement in front of BasicVSR."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

from realbasicvsr.errors import ConfigError, brief
from realbasicvsr.models.basicvsr import BasicVSR, ForwardState
from realbasicvsr.models.blocks import ResidualBlocksWithInputConv
from realbasicvsr.models.checkpointing import checkpointed_cleaning

# The official inference config leaves the threshold at 255 (1.0 in image units): one cleaning pass.
OFFICIAL_INFERENCE_THRESHOLD = 255.0
# The release config's comment ("change to 5 for test"): the benchmark setting, up to 3 passes.
BENCHMARK_THRESHOLD = 5.0
# Inclusive (low, high) of each ModelConfig field; the official model is c64 with 20 + 20 blocks.
MODEL_LIMITS = {"mid_channels": (1, 1024), "num_propagation_blocks": (0, 200), "num_cleaning_blocks": (0, 200)}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator. The official release is `ModelConfig()` (c64, 20 + 20 blocks)."""

    mid_channels: int = 64
    num_propagation_blocks: int = 20
    num_cleaning_blocks: int = 20

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __post_init__(self) -> None:
        # Checked before any layer is built: a file or config claiming 10**7 blocks must fail here, not in the
        # allocator. The bounds are far above the official c64b20 (16x the channels, 10x the blocks).
        for name, value in asdict(self).items():
            low, high = MODEL_LIMITS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"ModelConfig.{name} must be an integer in {low}..{high}, got {brief(value)}")


@dataclass
class StreamState:
    """What `RealBasicVSR.stream_window` carries from one window to the next: the forward branch's state, and the
    cleaned look-ahead frames (n, k, 3, h, w), which are the next window's first k frames, so they are not cleaned
    twice. `autocast_dtype` is the precision the look-ahead was cleaned at."""

    forward: ForwardState
    lookahead: torch.Tensor | None = None
    autocast_dtype: torch.dtype | None = None


class RealBasicVSR(nn.Module):
    """The RealBasicVSR generator (x4).

    `forward(lq)` takes (n, t, 3, h, w) in [0, 1] and returns `(hr, cleaned_lq)`: hr (n, t, 3, 4h, 4w), not clamped,
    and the cleaned input that BasicVSR saw. The input tensor is never modified.

    Dynamic refinement: the cleaning module runs up to `max_cleaning_passes` times; after each pass the residue is
    added and the loop stops when `mean(|residue|) < cleaning_threshold / 255` over the whole batch. The threshold
    uses the reference's 0-255 units: 255 (default) = one pass, as the official inference script; 5 = the
    benchmark setting in the release config's comment. `cleaning_passes` N (not in the reference) replaces the
    rule with exactly N passes; 0 feeds the input to BasicVSR uncleaned.
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        cleaning_threshold: float = OFFICIAL_INFERENCE_THRESHOLD,
        max_cleaning_passes: int = 3,
        cleaning_chunk: int | None = None,
        cleaning_passes: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        if max_cleaning_passes < 1:
            raise ValueError(f"max_cleaning_passes must be at least 1, got {max_cleaning_passes}")
        if cleaning_passes is not None and cleaning_passes < 0:
            raise ValueError(f"cleaning_passes must be >= 0 (0 = no cleaning), got {cleaning_passes}")
        self.cleaning_threshold = float(cleaning_threshold)
        self.max_cleaning_passes = max_cleaning_passes
        self.cleaning_passes = cleaning_passes  # None: the threshold rule; N: exactly N passes
        # Frames cleaned per call of the cleaning module; None = all at once. Only memory use changes (the
        # pass decision is still made on the mean over all frames); results differ by float rounding at most.
        self.cleaning_chunk = cleaning_chunk
        self.last_cleaning_passes = 0  # how many passes the last forward made (for tests and logs)
        self.checkpoint_activations = False  # training only: see use_activation_checkpointing

        mid = self.config.mid_channels
        self.image_cleaning = nn.Sequential(
            ResidualBlocksWithInputConv(3, mid, self.config.num_cleaning_blocks),
            nn.Conv2d(mid, 3, 3, 1, 1),
        )
        self.basicvsr = BasicVSR(mid, self.config.num_propagation_blocks)
        self.basicvsr.spynet.requires_grad_(False)  # frozen in both training stages, as in the reference

    def use_channels_last(self, enabled: bool = True) -> RealBasicVSR:
        """Store weights and activations as NHWC (channels_last): about 1.3x faster on CPU with oneDNN."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.to(memory_format=fmt)
        self.basicvsr.memory_format = fmt
        return self

    def use_activation_checkpointing(self, enabled: bool = True) -> RealBasicVSR:
        """Training: recompute the cleaning blocks, the propagation steps and the x4 stage of each frame in the
        backward pass instead of keeping their activations (models/checkpointing.py). Same values and gradients;
        no effect without autograd (inference)."""
        self.checkpoint_activations = bool(enabled)
        self.basicvsr.checkpoint_activations = bool(enabled)
        return self

    def clean(self, lq: torch.Tensor) -> torch.Tensor:
        """Run the dynamic-refinement cleaning loop on (n, t, 3, h, w); returns a new tensor."""
        n, t, c, h, w = lq.shape
        flat = lq.reshape(n * t, c, h, w).contiguous(memory_format=self.basicvsr.memory_format)
        chunk = self.cleaning_chunk or n * t
        fixed = self.cleaning_passes
        threshold = self.cleaning_threshold / 255.0
        passes = 0
        for passes in range(1, (self.max_cleaning_passes if fixed is None else fixed) + 1):  # noqa: B007 (read after)
            residues = [self._cleaning_residue(part) for part in flat.split(chunk)]
            residue = torch.cat(residues) if len(residues) > 1 else residues[0]
            flat = flat + residue
            if fixed is not None:
                continue
            abs_sum = sum(r.abs().sum(dtype=torch.float64) for r in residues) if len(residues) > 1 else None
            mean_abs = abs_sum / residue.numel() if abs_sum is not None else residue.abs().mean()
            if mean_abs < threshold:
                break
        if passes == 0:
            flat = flat.clone()  # a new tensor even without a pass: callers may write to it
        self.last_cleaning_passes = passes
        return flat.view(n, t, c, h, w)

    def _cleaning_residue(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpoint_activations:
            return checkpointed_cleaning(self.image_cleaning, x)
        return self.image_cleaning(x)

    def iter_frames(self, lq: torch.Tensor) -> Iterator[torch.Tensor]:
        """Clean `lq` then yield HR frames (n, 3, 4h, 4w) one at a time (bounded memory for long windows)."""
        _check_input(lq)
        yield from self.basicvsr.iter_outputs(self.clean(lq))

    def stream_window(
        self,
        lq: torch.Tensor,
        keep: int,
        state: StreamState | None = None,
        *,
        autocast_dtype: torch.dtype | None = None,
        stripe_pixels: int = 0,
        max_flow_batch_bytes: int | None = None,
    ) -> Generator[torch.Tensor, None, StreamState]:
        """One window of a stream: yield the HR frames (n, 3, 4h, 4w) of the first `keep` frames of `lq`
        (n, t, 3, h, w), the rest being look-ahead; return the state for the next window, which starts with the
        frame after the kept ones (`state = yield from model.stream_window(...)`). `state` None starts a clip.

        The frames covered by `state.lookahead` are not cleaned again, unless it was cleaned at another precision:
        `autocast_dtype` is the dtype the caller's autocast computes in (None: off), so a fp32 redo of a
        reduced-precision window cleans afresh. `last_cleaning_passes` then counts the passes over the newly
        cleaned frames only (always 1 at the default threshold). `stripe_pixels` and `max_flow_batch_bytes` bound
        the memory of the x4 stage and of SPyNet (see `BasicVSR.propagate`).
        """
        _check_input(lq)
        cleaned = clean_window(self.clean, lq, state, autocast_dtype)
        forward = yield from self.basicvsr.propagate(
            cleaned,
            keep,
            None if state is None else state.forward,
            stripe_pixels=stripe_pixels,
            max_flow_batch_bytes=max_flow_batch_bytes,
        )
        lookahead = cleaned[:, keep:].clone() if cleaned.shape[1] > keep else None
        return StreamState(forward, lookahead, autocast_dtype)

    def warm_up(self, lq: torch.Tensor, *, autocast_dtype: torch.dtype | None = None) -> StreamState:
        """The state after the frames `lq` (n, t, 3, h, w) as if a stream had kept them, from their forward branch
        alone (`BasicVSR.warm_forward`): a segment starting after them continues the stream with no cold start.
        The frames are cleaned as in `stream_window`; the backward branch and the x4 outputs are not computed."""
        _check_input(lq)
        forward = self.basicvsr.warm_forward(self.clean(lq))
        return StreamState(forward, None, autocast_dtype)

    def forward(self, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(lq)
        cleaned = self.clean(lq)
        return self.basicvsr(cleaned), cleaned

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"mid_channels={cfg.mid_channels}, num_propagation_blocks={cfg.num_propagation_blocks}, "
            f"num_cleaning_blocks={cfg.num_cleaning_blocks}, cleaning_threshold={self.cleaning_threshold}, "
            f"max_cleaning_passes={self.max_cleaning_passes}, cleaning_passes={self.cleaning_passes}"
        )


def clean_window(
    clean: Callable[[torch.Tensor], torch.Tensor],
    lq: torch.Tensor,
    state: StreamState | None,
    autocast_dtype: torch.dtype | None,
) -> torch.Tensor:
    """The cleaned frames of a window `lq` (n, t, 3, h, w): the look-ahead frames `state` already cleaned are reused
    (unless they were cleaned at another precision), and only the rest goes through `clean`. One rule for every
    backend that runs a stream (the PyTorch model, the ONNX runner)."""
    cached = None
    if state is not None and state.lookahead is not None and state.autocast_dtype == autocast_dtype:
        cached = state.lookahead
    reused = 0 if cached is None else cached.shape[1]
    parts = [] if cached is None else [cached]
    if lq.shape[1] > reused:
        parts.append(clean(lq[:, reused:]))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def _check_input(lq: torch.Tensor) -> None:
    if lq.dim() != 5 or lq.shape[2] != 3:
        raise ValueError(f"expected lq of shape (n, t, 3, h, w), got {tuple(lq.shape)}")
    if lq.shape[1] < 1 or lq.shape[3] < 1 or lq.shape[4] < 1:
        raise ValueError(f"lq must have at least 1 frame of at least 1x1 pixels, got {tuple(lq.shape)}")
