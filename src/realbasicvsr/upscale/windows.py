"""Streaming inference: frames in, x4 (or resized) frames out, through overlapping temporal windows.

The reference runs the whole clip at once (RAM grows with its length) or, with `max_seq_len`, cuts it into
independent chunks whose propagation restarts cold at every cut (visible seams). Here each window of `window`
frames is one call of the model's `RealBasicVSR.stream_window`, which carries a `StreamState` to the next:

- forward branch: its hidden state (and the last cleaned frame, for the flow) is carried from the previous window,
  so the forward direction is exactly what a whole-sequence run computes, with no left context needed;
- backward branch: it needs the future, so the window is extended by `overlap` look-ahead frames whose outputs
  are discarded; only this truncation differs from a whole-sequence run, and its effect decays with distance.

With `window >= len(clip)` the computation is the model's forward, operation for operation, so the output equals
the direct model output exactly. Memory depends on `window + overlap` and the frame size only, never on the clip
length.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from realbasicvsr.errors import UserError
from realbasicvsr.media.read import Frame
from realbasicvsr.models import basicvsr
from realbasicvsr.models.realbasicvsr import RealBasicVSR, StreamState
from realbasicvsr.upscale.budget import MemoryPlan
from realbasicvsr.upscale.config import DTYPES, UpscaleConfig, output_size, resolve_config
from realbasicvsr.upscale.tiles import SCALE, Tile, add_tile, crop, tile_grid


class Upscaler:
    """Runs a `RealBasicVSR` over a stream of frames in overlapping windows; see the module docstring.

    `upscale(frames)` takes and yields `Frame`s (uint8/uint16 RGB), `iter_tensors(frames)` float (3, h, w) tensors
    in [0, 1] and yields float (3, H, W) tensors (not clamped; for exactness tests and custom pipelines). The model
    is moved to the device (and to channels_last when asked) in place.

    The recurrence is the model's (`RealBasicVSR.stream_window`); this class cuts the stream into windows, sets
    the precision, redoes a window in fp32 when reduced precision overflowed, and resizes the output. The look
    options apply here too: the cleaning settings to the model, and to each output `Frame` the colour fix and
    then the grain (seeded by the frame's index, so a segment, a resumed run and a preview give every frame the
    same grain). `iter_tensors` yields the model's output without them.
    """

    def __init__(self, model: RealBasicVSR, options: UpscaleConfig | None = None) -> None:
        self.options = resolve_config(options or UpscaleConfig())  # "auto" device/dtype settled, fp16 checked
        self.device = torch.device(self.options.device)
        self.model = model.eval().to(self.device)
        if self.options.cleaning_threshold is not None:
            self.model.cleaning_threshold = float(self.options.cleaning_threshold)
        if self.options.cleaning_passes is not None:
            self.model.cleaning_passes = self.options.cleaning_passes
        if self.options.channels_last:
            if hasattr(self.model, "use_channels_last"):
                self.model.use_channels_last()  # also switches the per-frame activations
            else:
                self.model.to(memory_format=torch.channels_last)
        self.fallbacks = 0  # windows redone in fp32 because reduced precision gave NaN/Inf
        self.plan: MemoryPlan | None = None  # set by `plan_for`, at the latest by the first frame
        self.out_of_memory_redos = 0  # windows redone with a smaller plan after the GPU ran out of memory

    def plan_for(
        self, width: int, height: int, batch: int = 1, *, video_output: bool = False, frames: int | None = None
    ) -> MemoryPlan:
        """Plan the window, tiles, stripes, SPyNet batch and cleaning chunk for frames of `width` x `height` under
        the memory budget (`realbasicvsr.upscale.budget`), and run by that plan from now on: `options` then holds
        the planned window and tile. Called by the journeys before any work (so that an impossible budget is
        refused at once), else at the first frame; `frames`: the most one stream has, when known. Raises `UserError`
        when no plan fits."""
        from realbasicvsr.upscale.budget import apply_plan, plan_memory

        if self.plan is None:
            mid = getattr(getattr(self.model, "config", None), "mid_channels", 64)
            self.plan = plan_memory(
                self.options, width, height, batch=batch, mid_channels=mid, video_output=video_output, frames=frames
            )
            self.options = apply_plan(self.options, self.plan)
            if hasattr(self.model, "cleaning_chunk"):
                self.model.cleaning_chunk = self.plan.cleaning_chunk or None
        return self.plan

    # ---------------------------------------------------------------- tensors
    def iter_tensors(
        self, frames: Iterable[torch.Tensor], *, warmup: int = 0, lookahead: int = 0
    ) -> Iterator[torch.Tensor]:
        """Upscale a stream of (3, h, w) float frames; yields (3, H, W) float frames in order.

        A segment of a longer scene (`realbasicvsr.upscale.segments`) passes context that is not output: the first
        `warmup` frames only warm the forward branch up (`RealBasicVSR.warm_up`), and the last `lookahead` frames
        are only look-ahead for the backward branch. With both 0 this is the plain stream.
        """
        batches = self.iter_batches((f.unsqueeze(0) for f in frames), warmup=warmup, lookahead=lookahead)
        return (hr[0] for hr in batches)

    def iter_batches(
        self, frames: Iterable[torch.Tensor], *, warmup: int = 0, lookahead: int = 0
    ) -> Iterator[torch.Tensor]:
        """`iter_tensors` for n streams side by side: (n, 3, h, w) in, (n, 3, H, W) out, one time step at a time.
        The streams share the windows and the model's batch (a GPU that is latency-bound on one small stream runs
        several at the cost of one); each stream's values are what it gets alone, up to float rounding."""
        pending: list[torch.Tensor] = []
        grid: list[Tile] = []
        states: list[StreamState | None] = []
        for frame in frames:
            if not grid:  # the grid is fixed for the stream: each tile's propagation stays consistent
                self.plan_for(frame.shape[-1], frame.shape[-2], frame.shape[0])
                grid = tile_grid(frame.shape[-2], frame.shape[-1], self.options.tile or 0, self.options.tile_halo)
                states = [None] * len(grid)
            pending.append(frame)
            window, overlap = self.options.window or 1, self.options.overlap  # a redo after OOM may shrink the window
            if warmup and len(pending) == warmup:
                lq = self._stack(pending)
                states, pending = [self._warm_up(crop(lq, tile)) for tile in grid], []
                warmup = 0
            elif not warmup and len(pending) >= window + max(overlap, lookahead):
                states = yield from self._guarded(pending[: window + overlap], window, states, grid)
                pending = pending[window:]
        if warmup and pending:
            raise ValueError(f"the stream ended within its {warmup} warm-up frames")
        kept = len(pending) - lookahead
        while kept > 0:
            window, overlap = self.options.window or 1, self.options.overlap
            keep = min(window, kept)
            states = yield from self._guarded(pending[: window + overlap], keep, states, grid)
            pending, kept = pending[keep:], kept - keep

    def _stack(self, frames: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([f.to(self.device, torch.float32, non_blocking=True) for f in frames], dim=1)

    def _guarded(
        self, frames: list[torch.Tensor], keep: int, states: list[StreamState | None], grid: list[Tile]
    ) -> Generator[torch.Tensor, None, list[StreamState | None]]:
        """`_window`, and when the GPU runs out of memory in it (once per run), the window again with a smaller
        plan (`budget.shrink`), with a warning; outputs already yielded are recomputed for the recurrence only."""
        outputs = self._window(frames, keep, states, grid)
        done = computed = 0  # outputs yielded; outputs of this attempt computed
        while True:
            try:
                hr = next(outputs)
            except StopIteration as end:
                return end.value
            except torch.OutOfMemoryError as error:
                outputs.close()
                self._shrink_after(error)  # raises the second time
                outputs, computed = self._window(frames, keep, states, grid), 0
                continue
            computed += 1
            if computed > done:  # a redo recomputes the outputs already yielded, for the recurrence only
                yield hr
                done += 1

    def _shrink_after(self, error: torch.OutOfMemoryError) -> None:
        from realbasicvsr.upscale.budget import shrink

        if self.out_of_memory_redos or self.plan is None:
            raise UserError(
                f"the {self.device.type.upper()} ran out of memory even with a smaller plan ({error}); give a lower "
                "--max-memory (or --tile 256) and --resume",
                option="max_memory",
            ) from error
        self.out_of_memory_redos += 1
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.plan = shrink(self.plan)
        self.options = replace(self.options, window=self.plan.window, stripe_pixels=self.plan.stripe_pixels)
        if hasattr(self.model, "cleaning_chunk"):
            self.model.cleaning_chunk = self.plan.cleaning_chunk or None
        warnings.warn(
            f"out of memory on the {self.device.type.upper()}: redoing the window with a smaller {self.plan.line()}",
            RuntimeWarning,
            stacklevel=3,
        )

    def _window(
        self, frames: list[torch.Tensor], keep: int, states: list[StreamState | None], grid: list[Tile]
    ) -> Generator[torch.Tensor, None, list[StreamState | None]]:
        """Yield the (resized) outputs of the first `keep` of `frames`; return each tile's state after them. One
        tile is the plain path. Several run one after another on their crops, each with its state, and their x4
        outputs are blended into the window's output frames, which are resized and yielded once all tiles ran."""
        lq = self._stack(frames)
        size = output_size(lq.shape[-1], lq.shape[-2], self.options)
        if len(grid) == 1:
            state = yield from self._resized(self._run_window(lq, keep, states[0]), size)
            return [state]
        canvas: torch.Tensor | None = None
        new_states: list[StreamState | None] = []
        for tile, state in zip(grid, states, strict=True):
            outputs = self._run_window(crop(lq, tile), keep, state)
            index = 0
            while True:
                try:
                    hr = next(outputs)
                except StopIteration as end:
                    new_states.append(end.value)
                    break
                if canvas is None:
                    n, _, h, w = lq.shape[0], *lq.shape[2:]
                    canvas = torch.zeros(keep, n, 3, h * SCALE, w * SCALE, device=self.device)
                add_tile(canvas[index], hr, tile)
                index += 1
        assert canvas is not None  # keep >= 1
        for hr in canvas:
            yield self._resize(hr, size)
        return new_states

    def _resized(
        self, outputs: Generator[torch.Tensor, None, StreamState], size: tuple[int, int]
    ) -> Generator[torch.Tensor, None, StreamState]:
        while True:
            try:
                hr = next(outputs)
            except StopIteration as end:
                return end.value
            yield self._resize(hr, size)

    @staticmethod
    def _resize(hr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if (hr.shape[-1], hr.shape[-2]) == size:
            return hr
        with torch.inference_mode():
            return resize(hr.float(), size)

    def _warm_up(self, lq: torch.Tensor) -> StreamState:
        """The stream state after the frames `lq` (n, t, 3, h, w), from their forward branch only; redone in fp32
        when reduced precision overflowed (as a window is)."""
        low = self.options.dtype != "fp32"
        for low_precision in (True, False) if low else (False,):
            dtype = DTYPES[self.options.dtype] if low_precision else None
            with torch.inference_mode(), self._autocast(low_precision):
                state = self.model.warm_up(lq, autocast_dtype=dtype)
            if bool(torch.isfinite(state.forward.feat).all()):
                return state
            self.fallbacks += 1
        return state

    def _run_window(
        self, lq: torch.Tensor, keep: int, state: StreamState | None
    ) -> Generator[torch.Tensor, None, StreamState]:
        """Yield the x4 outputs of the first `keep` frames of `lq` (n, t, 3, h, w), return the state after them.
        Redoes the window in fp32 from the first non-finite frame on when reduced precision overflowed."""
        low = self.options.dtype != "fp32"
        outputs = self._window_outputs(lq, keep, state, low)
        done = 0
        while True:
            try:
                hr = next(outputs)
            except StopIteration as end:
                return end.value
            if low and not bool(torch.isfinite(hr).all()):
                self.fallbacks += 1
                warnings.warn(
                    f"{self.options.dtype} gave NaN/Inf in a window; redoing it in fp32", RuntimeWarning, stacklevel=2
                )
                outputs.close()
                redo = self._window_outputs(lq, keep, state, low_precision=False)
                for _ in range(done):  # already yielded in reduced precision; recomputed for the recurrence only
                    next(redo)
                return (yield from redo)
            yield hr
            done += 1

    def _window_outputs(
        self, lq: torch.Tensor, keep: int, state: StreamState | None, low_precision: bool
    ) -> Generator[torch.Tensor, None, StreamState]:
        """The model's `stream_window` on `lq` (n, t, 3, h, w), each step run in inference mode at this window's
        precision, its x4 outputs (n, 3, 4h, 4w); returns the model's end state.

        The autocast context is entered around each compute step and never held across a `yield`, so a consumer
        (or an abandoned generator after a fp32 fallback) never runs under this window's precision.
        """
        steps = self.model.stream_window(
            lq,
            keep,
            state,
            autocast_dtype=DTYPES[self.options.dtype] if low_precision else None,
            stripe_pixels=self.options.stripe_pixels,
            # The plan's SPyNet batch, under the model's cap (looked up here, so that tests can lower it).
            max_flow_batch_bytes=min(basicvsr.SPYNET_BATCH_BYTES, self.plan.flow_batch_bytes if self.plan else 1 << 62),
        )
        while True:
            with torch.inference_mode(), self._autocast(low_precision):
                try:
                    hr = next(steps)
                except StopIteration as end:
                    return end.value
            yield hr

    def _autocast(self, enabled: bool) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=DTYPES[self.options.dtype], enabled=enabled)

    # ---------------------------------------------------------------- frames
    def upscale(self, frames: Iterable[Frame], *, warmup: int = 0, lookahead: int = 0) -> Iterator[Frame]:
        """Upscale a stream of `Frame`s; timestamps, names and order are kept, alpha is resized. `warmup` and
        `lookahead` frames of context at the ends are not output (see `iter_tensors`)."""
        for (frame,) in self.upscale_side_by_side([frames], warmup=warmup, lookahead=lookahead):
            yield frame

    def upscale_side_by_side(
        self, streams: Sequence[Iterable[Frame]], *, warmup: int = 0, lookahead: int = 0
    ) -> Iterator[list[Frame]]:
        """`upscale` for several streams of equal length and frame size in one batch (`iter_batches`): yields one
        list with the next frame of each stream."""
        queue: deque[list[Frame]] = deque()
        skip = warmup

        def batches() -> Iterator[torch.Tensor]:
            nonlocal skip
            for step in zip(*streams, strict=True):
                if skip:
                    skip -= 1  # warm-up context: never output
                else:
                    queue.append(list(step))
                yield torch.stack([to_tensor(frame.image, self.device) for frame in step])

        for hr in self.iter_batches(batches(), warmup=warmup, lookahead=lookahead):
            yield [self._finish(source, out) for source, out in zip(queue.popleft(), hr, strict=True)]

    def _finish(self, source: Frame, hr: torch.Tensor) -> Frame:
        hr = self._look(source, hr)
        depth = 16 if source.image.dtype == np.uint16 else 8
        alpha = None
        if source.alpha is not None:
            alpha = to_image(
                resize(to_tensor(source.alpha[..., None]).unsqueeze(0), (hr.shape[-1], hr.shape[-2]))[0], depth
            )[..., 0]
        return replace(source, image=to_image(hr, depth), alpha=alpha)

    def _look(self, source: Frame, hr: torch.Tensor) -> torch.Tensor:
        """The colour fix (against the source frame), then the grain, of one output frame (3, H, W)."""
        options = self.options
        if options.color_fix == "off" and not options.grain:
            return hr
        from realbasicvsr.upscale import finish

        batch = hr.unsqueeze(0)
        if options.color_fix != "off":
            lq = to_tensor(source.image, self.device).unsqueeze(0)
            batch = finish.color_fix(batch, lq, lightness=options.color_fix == "all")
        if options.grain:
            batch = finish.add_grain(
                batch, [source.index], amount=options.grain, size=options.grain_size, seed=options.grain_seed
            )
        return batch[0]


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
