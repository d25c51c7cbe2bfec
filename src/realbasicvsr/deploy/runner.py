"""The exported step graphs run by onnxruntime behind the methods the `Upscaler` calls on a `RealBasicVSR`.

`OnnxRealBasicVSR.stream_window` and `warm_up` make the calls `RealBasicVSR.stream_window` / `BasicVSR.propagate`
/ `BasicVSR.warm_forward` make, in the same order and with the same state (`StreamState`, `ForwardState`), so
the windows, segments, tiles and I/O of an upscale are the PyTorch path's. This module is also the reference host
for docs/export.md: a C++ or VapourSynth program does what `stream_window` does here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from pathlib import Path

import numpy as np
import torch

from realbasicvsr.deploy.manifest import Manifest, read_manifest
from realbasicvsr.deploy.steps import GRAPHS
from realbasicvsr.errors import UserError
from realbasicvsr.models.basicvsr import SPYNET_BATCH_BYTES, ForwardState, is_mirror_extended
from realbasicvsr.models.realbasicvsr import ModelConfig, StreamState, clean_window

# Bytes of SPyNet working memory per padded LR pixel of a pair (the figure `BasicVSR._pair_flows` caps with).
FLOW_BYTES_PER_PIXEL = 900


class OnnxRealBasicVSR:
    """A `RealBasicVSR` look-alike for `Upscaler`: `stream_window`, `warm_up`, `clean`, `eval`, `to`,
    `use_channels_last`, `state_dict` and the cleaning settings (`cleaning_threshold`, `max_cleaning_passes`,
    `cleaning_passes`, which the `Upscaler` may set), backed by one onnxruntime session per step graph."""

    def __init__(self, manifest: Manifest, sessions: dict) -> None:
        self.manifest = manifest
        self.config: ModelConfig = manifest.config
        self.sessions = sessions
        self.cleaning_threshold = manifest.cleaning_threshold
        self.max_cleaning_passes = manifest.max_cleaning_passes
        self.cleaning_passes = manifest.cleaning_passes
        self.last_cleaning_passes = 0
        self._dtype = np.float16 if manifest.precision == "fp16" else np.float32

    # ------------------------------------------------------------ what the Upscaler calls besides the steps
    def eval(self) -> OnnxRealBasicVSR:
        return self

    def to(self, *args, **kwargs) -> OnnxRealBasicVSR:
        """Accepts the CPU (the sessions' device); a memory format or dtype is ignored (the graphs fix both)."""
        device = kwargs.get("device", args[0] if args and isinstance(args[0], torch.device | str) else None)
        if device is not None and torch.device(device).type != "cpu":
            raise UserError(
                f"the onnxruntime backend runs the graphs on the CPU, not on {device}; use the device cpu",
                option="device",
            )
        return self

    def use_channels_last(self, enabled: bool = True) -> OnnxRealBasicVSR:
        return self  # onnxruntime picks its own layouts

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What identifies the computation (a resumed run must match it): the graphs' and weights' checksums."""
        digest = hashlib.sha256(self.manifest.identity().encode()).digest()
        return {"onnx_graphs_sha256": torch.frombuffer(bytearray(digest), dtype=torch.uint8)}

    # ------------------------------------------------------------ the steps
    def clean(self, lq: torch.Tensor) -> torch.Tensor:
        """`RealBasicVSR.clean` on (n, t, 3, h, w): the clean graph once per pass, by the same rule."""
        n, t, c, h, w = lq.shape
        flat = self._array(lq.reshape(n * t, c, h, w))
        fixed = self.cleaning_passes
        threshold = self.cleaning_threshold / 255.0
        passes = 0
        for passes in range(1, (self.max_cleaning_passes if fixed is None else fixed) + 1):  # noqa: B007 (read after)
            flat, mean_abs = self._run("clean", lq=flat)
            if fixed is None and float(mean_abs) < threshold:
                break
        self.last_cleaning_passes = passes
        return self._tensor(flat).reshape(n, t, c, h, w)

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
        """`RealBasicVSR.stream_window`: yield the HR frames (n, 3, 4h, 4w) of the first `keep` frames of `lq`
        (n, t, 3, h, w), return the state for the next window. `stripe_pixels` is not used (the graph makes whole
        frames); `max_flow_batch_bytes` caps the pairs per flow call as in PyTorch."""
        self._check(lq, autocast_dtype)
        lrs = clean_window(self.clean, lq, state, autocast_dtype)
        t = lrs.shape[1]
        if not 1 <= keep <= t:
            raise ValueError(f"keep must be between 1 and the {t} frames given, got {keep}")
        frames = [self._array(lrs[:, i]) for i in range(t)]
        backward, forward = self._flows(lrs, keep - 1, max_flow_batch_bytes) if t > 1 else (None, None)
        zeros_flow, zeros_feat = self._zeros(frames[0], 2), self._zeros(frames[0], self.config.mid_channels)

        backward_feats: list[np.ndarray | None] = [None] * keep
        feat = zeros_feat
        for i in range(t - 1, -1, -1):  # the backward sweep, last frame first
            flow = zeros_flow if i == t - 1 else backward[:, i]
            (feat,) = self._run("backward_step", lr=frames[i], flow=flow, feat=feat)
            if i < keep:
                backward_feats[i] = feat

        feat, flow = self._boundary(frames[0], state, zeros_flow, zeros_feat)
        for i in range(keep):
            if i > 0:
                flow = forward[:, i - 1] if forward is not None else backward[:, t - 1 - i]
            hr, feat = self._run("forward_step", lr=frames[i], flow=flow, feat=feat, backward_feat=backward_feats[i])
            backward_feats[i] = None
            yield self._tensor(hr)
        lookahead = lrs[:, keep:].clone() if t > keep else None
        return StreamState(ForwardState(self._tensor(frames[keep - 1]), self._tensor(feat)), lookahead, autocast_dtype)

    def warm_up(self, lq: torch.Tensor, *, autocast_dtype: torch.dtype | None = None) -> StreamState:
        """`RealBasicVSR.warm_up`: the forward branch alone over the cleaned `lq` (the forward_feature graph)."""
        self._check(lq, autocast_dtype)
        lrs = self.clean(lq)
        t = lrs.shape[1]
        frames = [self._array(lrs[:, i]) for i in range(t)]
        flows = self._pair_flows(lrs[:, 1:], lrs[:, :-1], t - 1, SPYNET_BATCH_BYTES) if t > 1 else None
        feat, flow = self._zeros(frames[0], self.config.mid_channels), self._zeros(frames[0], 2)
        for i in range(t):
            if i > 0:
                flow = flows[:, i - 1]
            (feat,) = self._run("forward_feature", lr=frames[i], flow=flow, feat=feat)
        return StreamState(ForwardState(self._tensor(frames[-1]), self._tensor(feat)), None, autocast_dtype)

    # ------------------------------------------------------------ helpers
    def _boundary(
        self, first: np.ndarray, state: StreamState | None, zeros_flow: np.ndarray, zeros_feat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The forward feature entering this window and the flow that warps it onto the first frame."""
        if state is None:
            return zeros_feat, zeros_flow
        (flow,) = self._run("flow", ref=first, supp=self._array(state.forward.lr))
        return self._array(state.forward.feat), flow

    def _flows(
        self, lrs: torch.Tensor, forward_pairs: int, max_batch_bytes: int | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`BasicVSR.compute_flows`: backward (n, t-1, 2, h, w), forward (n, forward_pairs, ...) or None."""
        t = lrs.shape[1]
        backward = self._pair_flows(lrs[:, :-1], lrs[:, 1:], t - 1, max_batch_bytes)
        if is_mirror_extended(lrs) or forward_pairs < 1:
            return backward, None
        return backward, self._pair_flows(lrs[:, 1:], lrs[:, :-1], forward_pairs, max_batch_bytes)

    def _pair_flows(self, refs: torch.Tensor, supps: torch.Tensor, count: int, max_batch_bytes: int | None):
        n, _, c, h, w = refs.shape
        ref = self._array(refs[:, :count].reshape(-1, c, h, w))
        supp = self._array(supps[:, :count].reshape(-1, c, h, w))
        step = ref.shape[0]
        if max_batch_bytes is not None:
            pixels = -(-h // 32) * 32 * (-(-w // 32) * 32)
            step = n * max(1, max_batch_bytes // (FLOW_BYTES_PER_PIXEL * pixels))
        parts = [self._run("flow", ref=ref[i : i + step], supp=supp[i : i + step])[0] for i in range(0, len(ref), step)]
        return np.concatenate(parts).reshape(n, count, 2, h, w)

    def _run(self, graph: str, **inputs: np.ndarray) -> list[np.ndarray]:
        feed = {name: np.ascontiguousarray(value, dtype=self._dtype) for name, value in inputs.items()}
        return self.sessions[graph].run(None, feed)

    def _array(self, x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy(), dtype=self._dtype)

    @staticmethod
    def _tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def _zeros(self, like: np.ndarray, channels: int) -> np.ndarray:
        return np.zeros((like.shape[0], channels, *like.shape[-2:]), dtype=self._dtype)

    def _check(self, lq: torch.Tensor, autocast_dtype: torch.dtype | None) -> None:
        if lq.dim() != 5 or lq.shape[2] != 3 or min(lq.shape[1], lq.shape[3], lq.shape[4]) < 1:
            raise ValueError(f"expected lq of shape (n, t, 3, h, w), got {tuple(lq.shape)}")
        if autocast_dtype is not None:
            raise UserError(
                f"the ONNX graphs compute in their exported precision ({self.manifest.precision}), not under "
                f"{autocast_dtype}; use the dtype fp32",
                option="dtype",
            )
        self.manifest.check_size(lq.shape[-1], lq.shape[-2])


def load_onnx_model(
    folder: str | Path,
    *,
    expect: ModelConfig | None = None,
    size: tuple[int, int] | None = None,
    threads: int | None = None,
    providers: list[str] | None = None,
) -> tuple[OnnxRealBasicVSR, str]:
    """The exported steps in `folder` as a model the `Upscaler` drives, and one line saying what they are.

    The folder is checked first (`deploy.manifest.read_manifest`: the manifest, every graph file and its checksum,
    the graphs' feature channels against the architecture); `expect` (the architecture of weights to compare
    with) and `size` (width, height of the LR frames to come) are checked against it. Raises `UserError` with one
    line naming the problem and the fix. `threads` (default: torch's thread count) per session.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(
            "the onnxruntime backend needs ONNX Runtime: pip install 'realbasicvsr[onnx]'", option="onnx"
        ) from None

    manifest = read_manifest(Path(folder))
    if expect is not None and expect != manifest.config:
        raise UserError(
            f"{folder} holds graphs of another architecture ({manifest.describe()}) than the weights "
            f"(mid_channels {expect.mid_channels}, {expect.num_propagation_blocks} + {expect.num_cleaning_blocks} "
            "blocks); export these weights into a new folder",
        )
    if size is not None:
        manifest.check_size(*size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    sessions = {}
    for spec in GRAPHS:
        sessions[spec.name] = ort.InferenceSession(
            str(manifest.folder / spec.file), options, providers=providers or ["CPUExecutionProvider"]
        )
    manifest.check_sessions(sessions)
    return OnnxRealBasicVSR(manifest, sessions), f"ONNX steps in {folder} ({manifest.describe()})"
