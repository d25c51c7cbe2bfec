"""Hard-cut detection on small thumbnails, so that both propagation directions of RealBasicVSR restart at a cut.

A missed cut leaks the previous shot into the next one (ghosting, both ways: the backward pass carries the new shot
into the end of the old one); a false cut costs a cold start, which inside a pan, zoom, fade or flash shows as a
flicker. The detector is built to miss neither, and measured on real clips (tests/scene_cases.py,
benchmarks/bench_scenes.py).

How a frame pair is scored (`_difference`), on thumbnails THUMBNAIL_WIDTH pixels wide:
- `pix`: the mean absolute YUV difference after the best global shift of up to +-5 thumbnail pixels (a 5x5 search
  at half size, then 3x3 at full size). The shift takes camera pans and shake out of the score; what is left is
  what motion cannot explain.
- `hist`: the L1 distance of the Y, U and V histograms (16 bins each), in 0..1: blind to where things are, so
  motion barely moves it, but a new shot does.
A frame c is a cut when both scores spike: each is at least `ratio` times the mean of its neighbours (WINDOW pairs
on each side, the cut pair excluded), and each is above a small absolute floor (noise in a still shot can be a
large multiple of nearly nothing). This is the adaptive idea of PySceneDetect's AdaptiveDetector: a cut is a spike,
a pan, a zoom or a cross-fade is a plateau. Asking for both spikes separates the near misses of the labelled set:
a fade ending in black moves the histogram a lot but the pixels steadily; a fast pan moves the pixels, not the
histogram; a cut moves both.

Flashes: a spike at c is a flash when frame c-1 comes back within FLASH_FRAMES frames (frame c+k, k <= 3, is close
to c-1: its `pix` is at most FLASH_RETURN of the spike's), or when c ends one (frame c is close to a frame 2..4
before it). So a 1 to 3 frame flash gives no cut at its start nor at its end. A shot of 3 frames or fewer that
returns to the one before it is taken for a flash as well; such inserts are rare and too short to propagate over.

Fades: gradual changes spread over many frames score as plateaus, so a cross-fade or a fade to or from black gives
no cut. A fade to black followed by a hard start of the next shot IS reported, at the first frame of the new shot:
without the restart the backward pass would carry the new shot into the dark end of the fade (visible ghosting on
a dark frame), and with it nothing visible is lost (the frames before are black).

min_scene_frames: cuts are taken in order and one closer than min_scene_frames to the last kept cut is dropped (the
earlier wins). This keeps the most cuts any such choice can, so a higher sensitivity (more candidates) never gives
fewer cuts.

Thumbnails: uint8 RGB (h, w, 3), one size for the whole video: `thumbnail_size(width, height)` of the first frame,
made by the planning pass with FFmpeg's scaler (the labelled set also uses an exact area mean; both work). A video
whose frame size changes mid-stream must still be scaled to that one size. A 2-frame video has no neighbours to
compare with: its one pair is compared with LONE_PAIR_REFERENCE (a fast pan's scores) instead.

Cost: O(pixels of the thumbnail) per frame, with a few dozen small numpy operations, and only the last
DELAY + FLASH_FRAMES + 2 frames kept. A cut at frame c is confirmed once frame c + DELAY has been pushed.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from realbasicvsr.errors import ConfigError, UserError, brief

# 64 px wide, measured (benchmarks/bench_scenes.py --widths 32,64,128): at the default sensitivity 64 finds all 26
# cuts of the labelled set with no false one; 32 misses 3 (jump cuts: too little detail) and 128 misses 1 (its
# +-5 px shift search covers half as much of a fast pan) at twice the cost. It is a 10-20x area mean of SD/HD frames,
# which averages grain and coding noise away, and its shift search covers pans up to 8% of the width per frame;
# faster pans score as plateaus anyway (every frame is far from the last), so they give no spike either.
THUMBNAIL_WIDTH = 64
WINDOW = 3  # neighbour pairs on each side whose mean score is the reference for a spike
FLASH_FRAMES = 3  # longest flash recognised
FLASH_RETURN = 0.5  # frame c-1 "comes back" when its distance to a later frame is at most this share of the spike
DELAY = max(WINDOW, FLASH_FRAMES)  # frames of look-ahead before a cut is confirmed
COARSE_RADIUS = 2  # half-size shift search radius; the full-size margin is 2 * COARSE_RADIUS + 1
HIST_BINS = 16
# Thresholds at sensitivity 0 and at sensitivity 1, interpolated geometrically; at the default 0.5 the spike ratio
# (2.0) sits between the weakest true cut (both scores >= 2.3x their neighbours) and the strongest non-cut (1.6x)
# of the labelled set, and the floors (1.0% / 1.0%) under its weakest cut (1.8% / 2.1%). Scores are fractions of full
# scale (0..1). These were fitted on the labelled set, which holds 26 cuts: treat them as a good start, not a law.
SPIKE_RATIO = (3.2, 1.25)
FLOOR_PIX = (0.03, 0.0033)
FLOOR_HIST = (0.04, 0.0025)
# Added to the neighbours' mean so that a spike after identical frames (still shots, repeated frames) is finite.
EPS_PIX, EPS_HIST = 0.002, 0.005
# The neighbours' mean assumed for the only pair of a 2-frame video, where the floors alone would take motion for a
# cut: about the scores of a fast pan (the labelled 25 px/frame pan scores up to 7.6% / 14%; a real cut 6-18% / 16-77%).
LONE_PAIR_REFERENCE = (0.04, 0.08)
MAX_CUT_LIST_BYTES = 16 * 2**20  # a cut list of a 10-hour video at one cut per second is ~250 kB


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the thumbnail of a `width` x `height` frame: THUMBNAIL_WIDTH wide, aspect kept."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    return THUMBNAIL_WIDTH, max(1, round(THUMBNAIL_WIDTH * height / width))


@dataclass(frozen=True)
class SceneConfig:
    """How eagerly cuts are reported. `sensitivity` 0..1: higher finds more cuts (weaker spikes count);
    `min_scene_frames`: no two cuts closer than this many frames."""

    sensitivity: float = 0.5
    min_scene_frames: int = 5  # 0.2 s at 25 fps: shorter shots are rare outside montages

    def __post_init__(self) -> None:
        s = self.sensitivity
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s <= 1.0:
            raise ConfigError(
                f"scene_sensitivity must be a number from 0 to 1 (higher finds more cuts), got {brief(s)}",
                option="scene_sensitivity",
            )
        m = self.min_scene_frames
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(
                f"min_scene_frames must be a whole number of frames >= 1, got {brief(m)}", option="min_scene_frames"
            )


@dataclass(frozen=True)
class _Frame:
    """What the detector keeps of a thumbnail: YUV planes (3, h, w) in 0..1, the luma at half size, histograms."""

    yuv: np.ndarray
    half_luma: np.ndarray
    hist: np.ndarray


def _features(thumb: np.ndarray) -> _Frame:
    rgb = thumb.astype(np.float32) * np.float32(1 / 255)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    yuv = np.stack([y, (b - y) * 0.5 + 0.5, (r - y) * 0.5 + 0.5])  # chroma at half weight, centred
    bins = np.clip((yuv * HIST_BINS).astype(np.intp), 0, HIST_BINS - 1)
    bins += np.arange(3, dtype=np.intp)[:, None, None] * HIST_BINS
    hist = np.bincount(bins.ravel(), minlength=3 * HIST_BINS).astype(np.float32) / y.size
    h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
    half = y[0:h:2, 0:w:2] + y[1:h:2, 0:w:2] + y[0:h:2, 1:w:2] + y[1:h:2, 1:w:2]  # 4x the 2x2 mean: scale is moot
    return _Frame(yuv, half, hist)


def _window_costs(a: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Sum of |window - target| for every placement of `target` inside `a` (2-D arrays): shape (rows, cols).
    The same as numpy's sliding_window_view, without its per-call overhead (this runs twice per frame)."""
    (h, w), (th, tw) = a.shape, target.shape
    rows, cols = h - th + 1, w - tw + 1
    windows = as_strided(a, (rows, cols, th, tw), a.strides * 2, writeable=False)
    return np.abs(windows - target).reshape(rows, cols, th * tw).sum(axis=2)


def _best_shift(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[int, int]:
    """The shift (dy, dx), |dy|, |dx| <= radius, of `a` that best matches the centre of `b` (mean abs luma)."""
    h, w = b.shape
    centre = b[radius : h - radius, radius : w - radius]
    cost = _window_costs(a, centre)
    dy, dx = np.unravel_index(np.argmin(cost), cost.shape)
    return int(dy) - radius, int(dx) - radius


def _difference(a: _Frame, b: _Frame) -> tuple[float, float]:
    """(pix, hist) of the frame pair: motion-compensated mean abs YUV difference, and histogram distance."""
    _, h, w = a.yuv.shape
    full_margin = 2 * COARSE_RADIUS + 1
    margin = max(0, min(full_margin, (h - 1) // 4, (w - 1) // 4))  # tiny thumbnails: a smaller search, or none
    cy = cx = 0
    if margin == full_margin:
        cy, cx = _best_shift(a.half_luma, b.half_luma, COARSE_RADIUS)
        cy, cx = 2 * cy, 2 * cx
    target = b.yuv[:, margin : h - margin, margin : w - margin]
    dy = dx = 0
    if margin >= 1:  # refine to the pixel: the 3x3 shifts around the coarse one, inside the margin
        cy, cx = min(max(cy, 1 - margin), margin - 1), min(max(cx, 1 - margin), margin - 1)
        around = a.yuv[0, margin + cy - 1 : h - margin + cy + 1, margin + cx - 1 : w - margin + cx + 1]
        cost = _window_costs(around, target[0])
        ry, rx = np.unravel_index(np.argmin(cost), cost.shape)
        dy, dx = cy + int(ry) - 1, cx + int(rx) - 1
    shifted = a.yuv[:, margin + dy : h - margin + dy, margin + dx : w - margin + dx]
    pix = float(np.abs(shifted - target).mean())
    hist = float(np.abs(a.hist - b.hist).sum()) / 6  # each of the 3 histograms sums to 1: L1 distance <= 2
    return pix, hist


def _between(pair: tuple[float, float], sensitivity: float) -> float:
    """Geometric interpolation from pair[0] (sensitivity 0) to pair[1] (sensitivity 1)."""
    at_zero, at_one = pair
    return at_zero * (at_one / at_zero) ** sensitivity


class CutDetector:
    """Fed one thumbnail at a time, in order; reports confirmed cuts with a small fixed delay.

    A cut at frame c is in `cuts` once frame c + DELAY has been pushed; `finish()` decides the last frames (with
    the look-ahead there is) and returns every cut. Thumbnails are uint8 RGB (h, w, 3), all of one shape.
    """

    def __init__(self, config: SceneConfig = SceneConfig()) -> None:
        self.config = config
        self._ratio = _between(SPIKE_RATIO, config.sensitivity)
        self._floor_pix = _between(FLOOR_PIX, config.sensitivity)
        self._floor_hist = _between(FLOOR_HIST, config.sensitivity)
        self._frames: deque[_Frame] = deque(maxlen=DELAY + FLASH_FRAMES + 2)  # [-1] is frame count - 1
        self._scores: deque[tuple[float, float]] = deque(maxlen=DELAY + WINDOW + 1)  # [-1]: pair (count-2, count-1)
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._next = 1  # the next frame to decide
        self._cuts: list[int] = []
        self._finished = False

    @property
    def cuts(self) -> list[int]:
        """The cuts confirmed so far (every cut before frame `frames_pushed - DELAY`)."""
        return list(self._cuts)

    @property
    def frames_pushed(self) -> int:
        """How many thumbnails have been pushed."""
        return self._count

    def push(self, thumb: np.ndarray) -> None:
        """Add the next frame's thumbnail."""
        if self._finished:
            raise RuntimeError("CutDetector.push() after finish(): make a new detector for another video")
        if not isinstance(thumb, np.ndarray) or thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3:
            what = f"{thumb.dtype} array of shape {thumb.shape}" if isinstance(thumb, np.ndarray) else type(thumb)
            raise ValueError(f"thumbnail {self._count} must be a uint8 RGB array (h, w, 3), got a {what}")
        if self._shape is None:
            if thumb.shape[0] < 1 or thumb.shape[1] < 1:
                raise ValueError(f"thumbnail {self._count} is empty: {thumb.shape}")
            self._shape = thumb.shape
        elif thumb.shape != self._shape:
            raise ValueError(
                f"thumbnail {self._count} has shape {thumb.shape}, the first had {self._shape}; "
                "make every thumbnail of a video the same size"
            )
        frame = _features(thumb)
        if self._frames:
            self._scores.append(_difference(self._frames[-1], frame))
        self._frames.append(frame)
        self._count += 1
        while self._next <= self._count - 1 - DELAY:
            self._decide(self._next)
            self._next += 1

    def finish(self) -> list[int]:
        """Decide the frames still waiting for look-ahead; return every cut, sorted (1 <= c < frames pushed)."""
        while self._next < self._count:
            self._decide(self._next)
            self._next += 1
        self._finished = True
        return list(self._cuts)

    def _score(self, j: int) -> tuple[float, float]:
        return self._scores[len(self._scores) - (self._count - j)]

    def _frame(self, j: int) -> _Frame:
        return self._frames[len(self._frames) - (self._count - j)]

    def _decide(self, c: int) -> None:
        pix, hist = self._score(c)
        if pix < self._floor_pix or hist < self._floor_hist:
            return
        neighbours = [self._score(j) for j in range(max(1, c - WINDOW), min(self._count, c + WINDOW + 1)) if j != c]
        ref_pix, ref_hist = LONE_PAIR_REFERENCE  # a 2-frame video: compare with a typical moving shot
        if neighbours:
            ref_pix = sum(p for p, _ in neighbours) / len(neighbours)
            ref_hist = sum(h for _, h in neighbours) / len(neighbours)
        spike = min(pix / (ref_pix + EPS_PIX), hist / (ref_hist + EPS_HIST))
        if spike < self._ratio or self._is_flash(c, pix):
            return
        if self._cuts and c - self._cuts[-1] < self.config.min_scene_frames:
            return
        self._cuts.append(c)

    def _is_flash(self, c: int, pix: float) -> bool:
        """Frame c starts a flash (frame c-1 comes back soon) or ends one (frame c is like one just before it)."""
        limit = FLASH_RETURN * pix
        before = self._frame(c - 1)
        for k in range(1, FLASH_FRAMES + 1):
            if c + k < self._count and _difference(before, self._frame(c + k))[0] <= limit:
                return True
        frame = self._frame(c)
        return any(_difference(self._frame(c - m), frame)[0] <= limit for m in range(2, min(FLASH_FRAMES + 1, c) + 1))


def detect_cuts(thumbs: Iterable[np.ndarray], config: SceneConfig = SceneConfig()) -> list[int]:
    """Every hard cut of a sequence of thumbnails: sorted frame indices c (1 <= c < n) that start a new scene."""
    detector = CutDetector(config)
    for thumb in thumbs:
        detector.push(thumb)
    return detector.finish()


_SEPARATORS = re.compile(r"[\s,]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def read_cut_list(path: str | Path, num_frames: int) -> list[int]:
    """Cut frame indices from an editor: integers separated by whitespace, commas or newlines, '#' comments;
    UserError (one line with the fix) for non-integers, out of range (must be 1..num_frames-1), a missing/unreadable
    file. Duplicates merged, sorted."""
    path = Path(path)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    try:
        size = path.stat().st_size
        if size > MAX_CUT_LIST_BYTES:
            raise UserError(
                f"cut list {path} is {size} bytes, over {MAX_CUT_LIST_BYTES}; give a text file of cut frame numbers",
                option="cut_list",
            )
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(
            f"cut list {path} does not exist; give the path of a text file of cut frame numbers", option="cut_list"
        ) from None
    except IsADirectoryError:
        raise UserError(
            f"cut list {path} is a folder; give the path of a text file of cut frame numbers", option="cut_list"
        ) from None
    except UnicodeDecodeError:
        raise UserError(
            f"cut list {path} is not UTF-8 text; save it as plain text with one frame number per cut", option="cut_list"
        ) from None
    except OSError as error:
        raise UserError(
            f"cut list {path} cannot be read ({error.strerror or error}); check its permissions", option="cut_list"
        ) from None
    cuts: set[int] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        for token in _SEPARATORS.split(line.split("#", 1)[0]):
            if not token:
                continue
            where = f"cut list {path}, line {line_number}"
            if not _INTEGER.fullmatch(token):
                raise UserError(
                    f"{where}: {brief(token, 40)} is not a frame number; write whole frame numbers separated by "
                    "spaces, commas or new lines ('#' starts a comment)",
                    option="cut_list",
                )
            value = int(token) if len(token) < 20 else math.inf  # no huge int() from a hostile file
            if not 1 <= value <= num_frames - 1:
                raise UserError(
                    f"{where}: cut {brief(token, 40)} is outside 1..{num_frames - 1}; a cut is the 0-based index of "
                    f"the frame that starts a new scene in this {num_frames}-frame video (frame 0 always starts one)",
                    option="cut_list",
                )
            cuts.add(int(value))
    return sorted(cuts)
