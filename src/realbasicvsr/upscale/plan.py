"""The plan of a long upscale: scenes, then segments, written as a manifest that a resumed or distributed run follows.

A video is cut into **scenes** at hard cuts (detected, `realbasicvsr.upscale.scenes`, or given by the user): both
propagation directions restart at a cut, because optical flow across a shot change is meaningless and would carry
the previous shot's features into the next. A long scene is cut further into **segments** of about
`segment_frames` frames, so that work can be resumed and shared segment by segment. A segment boundary inside a
scene is made invisible the way window boundaries are: the segment's forward branch is warmed up on `warmup` frames
before it, and its backward branch runs over `lookahead` frames after it; both stay inside the scene and are not
output. The plan alone decides every output frame, so a resumed run, a run shared among many processes and an
uninterrupted run produce the same frames.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.read import VideoInfo
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.upscale.config import UpscaleConfig

MANIFEST_VERSION = 1
# A segment is the unit of resume and of sharing among processes. 600 frames is 20-25 s of video: on a CPU
# (about 1-2 s per 320x180 frame) a crash loses at most ~15 minutes; on a GPU (~100 frames/s) a segment is a few
# seconds, and the warm-up costs ~2 % extra. Chosen by measurement (benchmarks/bench_segments.py): see docs.
DEFAULT_SEGMENT_FRAMES = 600
DEFAULT_WARMUP = 12
MAX_BATCH = 64
# On CUDA the model is latency-bound on small frames (an H200 runs one 320x180 stream at ~100 frames/s, far from
# its peak), so several segments share a batch until about this many LR pixels per step; on a CPU, which is
# compute-bound, batching only adds memory.
CUDA_BATCH_PIXELS = 1 << 20


@dataclass(frozen=True)
class SegmentConfig:
    """How a video is planned. `scenes` is "auto" (detect hard cuts), "off" (one scene), or a path to a file of cut
    frame indices; `segment_frames` and `warmup` set the segments of a long scene (see the module docstring)."""

    scenes: str = "auto"
    scene_sensitivity: float | None = None  # None: the detector's default
    segment_frames: int = DEFAULT_SEGMENT_FRAMES
    warmup: int = DEFAULT_WARMUP
    batch: int | None = None  # segments run side by side in one batch; None: `auto_batch`

    def __post_init__(self) -> None:
        if self.batch is not None and not 1 <= self.batch <= MAX_BATCH:
            raise ConfigError(f"batch must be 1 to {MAX_BATCH} segments, got {self.batch}", option="batch")
        if self.segment_frames < 1:
            raise ConfigError(f"segment_frames must be at least 1, got {self.segment_frames}", option="segment_frames")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}", option="warmup")


@dataclass(frozen=True)
class Segment:
    """Output frames `start` .. `stop` (exclusive); frames `read_from` .. `read_to` are decoded: the warm-up before
    `start` and the look-ahead after `stop` are context only. Context never crosses a scene boundary."""

    index: int
    start: int
    stop: int
    read_from: int
    read_to: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def plan_segments(num_frames: int, cuts: list[int], segment_frames: int, warmup: int, lookahead: int) -> list[Segment]:
    """Segments covering frames 0 .. `num_frames`: each scene (split at `cuts`) cut into nearly equal parts of at most
    `segment_frames` frames, with `warmup` / `lookahead` frames of context inside the scene."""
    if num_frames < 1:
        raise ValueError(f"a plan needs at least one frame, got {num_frames}")
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < num_frames), num_frames]
    segments: list[Segment] = []
    for scene_start, scene_stop in pairwise(bounds):
        length = scene_stop - scene_start
        parts = -(-length // segment_frames)
        edges = [scene_start + length * k // parts for k in range(parts + 1)]
        for start, stop in pairwise(edges):
            segments.append(
                Segment(
                    index=len(segments),
                    start=start,
                    stop=stop,
                    read_from=max(scene_start, start - warmup),
                    read_to=min(scene_stop, stop + lookahead),
                )
            )
    return segments


@dataclass(frozen=True)
class Plan:
    """What a run will do, as written to the manifest: the frames (timestamps of every frame), the cuts, the
    segments, and the keys that a resumed run must match (`identity`)."""

    identity: dict[str, Any]  # input fingerprint, settings, weights hash: all must match to resume
    frame_pts: list[int | None]
    cuts: list[int]
    segments: list[Segment]

    @property
    def num_frames(self) -> int:
        return len(self.frame_pts)

    def to_json(self) -> str:
        body = {
            "version": MANIFEST_VERSION,
            "identity": self.identity,
            "frames": self.num_frames,
            "cuts": self.cuts,
            "segments": [asdict(s) for s in self.segments],
            "frame_pts": self.frame_pts,
        }
        return json.dumps(body, indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> Plan:
        try:
            body = json.loads(text)
            if body.get("version") != MANIFEST_VERSION:
                raise UserError(
                    f"{where} was written by another version of realbasicvsr (manifest version "
                    f"{body.get('version')}); use --overwrite to start the run again"
                )
            return cls(
                identity=body["identity"],
                frame_pts=list(body["frame_pts"]),
                cuts=[int(c) for c in body["cuts"]],
                segments=[Segment(**s) for s in body["segments"]],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UserError(f"{where} is damaged ({error}); use --overwrite to start the run again") from error


def check_same_run(saved: dict[str, Any], current: dict[str, Any], manifest: Path) -> None:
    """Refuse to resume a run whose input, settings or weights differ from this one's, naming what differs."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            differences.append(_difference(key, saved.get(key), current.get(key)))
    if differences:
        raise UserError(
            f"the unfinished run in {manifest.parent} differs from this one ({'; '.join(differences[:3])}); "
            "resume it with the same input, options and weights, or use --overwrite to start again",
            option="resume",
        )


def _difference(key: str, saved: Any, current: Any) -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
        return ", ".join(f"{key}.{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in keys[:3])
    if key == "weights":
        return "the weights differ"
    if key == "input":
        return "the input file differs"
    return f"{key}: {saved!r} then, {current!r} now"


def input_fingerprint(info: VideoInfo) -> dict[str, Any]:
    """What identifies the input without decoding it again: size and a hash of its first and last MiB (a copy on
    another machine matches; an edited or re-encoded file does not), or the names and sizes of a folder's images."""
    if info.kind != "video":
        digest = hashlib.sha256()
        for file in info.files:
            digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        return {"kind": info.kind, "frames": len(info.files), "files_sha256": digest.hexdigest()}
    size = info.path.stat().st_size
    digest = hashlib.sha256()
    with open(info.path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if size > 2 << 20:
            handle.seek(size - (1 << 20))
        digest.update(handle.read(1 << 20))
    return {"kind": "video", "bytes": size, "ends_sha256": digest.hexdigest()}


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's parameters and buffers (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}\0{value.dtype}\0{tuple(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def auto_batch(config: SegmentConfig, device: str, width: int, height: int) -> int:
    """The batch a run uses: the one given, else 1 on a CPU and up to 8 small-frame segments on CUDA."""
    if config.batch is not None:
        return config.batch
    if not device.startswith("cuda"):
        return 1
    return max(1, min(8, CUDA_BATCH_PIXELS // max(1, width * height)))


def check_cut_list(config: SegmentConfig) -> None:
    """A missing or malformed cut list fails at once (its range is checked once the frames are counted)."""
    if config.scenes not in ("auto", "off"):
        from realbasicvsr.upscale.scenes import read_cut_list

        read_cut_list(config.scenes, 1 << 62)


def make_plan(
    info: VideoInfo,
    config: SegmentConfig,
    lookahead: int,
    identity: dict[str, Any],
    progress: Callable[[int, int | None], None] | None = None,
) -> Plan:
    """Decode the input once (small thumbnails, `realbasicvsr.media.read.scan`): every frame's timestamp, the exact
    frame count (what decodes, not what the container claims) and the scene cuts; then the segments. `progress`
    is told (frames scanned, the container's frame count) as it goes: about 5 ms per 720p frame on a 2-vCPU EPYC,
    minutes for a film. A cut list was checked before (`check_cut_list`); its range is checked here."""
    from realbasicvsr.media.read import scan
    from realbasicvsr.upscale import scenes

    detector = None
    if config.scenes == "auto":
        given = config.scene_sensitivity
        detector = scenes.CutDetector(scenes.SceneConfig() if given is None else scenes.SceneConfig(given))
    frame_pts: list[int | None] = []
    for pts, thumb in scan(info, scenes.THUMBNAIL_WIDTH):
        frame_pts.append(pts)
        if detector is not None:
            detector.push(thumb)
        if progress is not None and len(frame_pts) % 25 == 0:
            progress(len(frame_pts), info.num_frames)
    if detector is not None:
        cuts = detector.finish()
    elif config.scenes == "off":
        cuts = []
    else:
        cuts = scenes.read_cut_list(config.scenes, len(frame_pts))
    segments = plan_segments(len(frame_pts), cuts, config.segment_frames, config.warmup, lookahead)
    return Plan(identity, frame_pts, cuts, segments)


def run_identity(
    info: VideoInfo,
    kind: str,
    output: Path,
    options: UpscaleConfig,
    encode: EncodeConfig,
    segments: SegmentConfig,
    model: torch.nn.Module,
    fps: Fraction | None,
    width: int,
    height: int,
) -> dict[str, Any]:
    """Everything that decides the output's frames and bytes: a resumed run must match all of it."""
    settings = {
        # Planned by the memory budget (None): any plan gives the same picture to far below a level (budget.py)
        "window": "planned" if options.window is None else options.window,
        "overlap": options.overlap,
        "device": torch.device(options.device).type,  # cuda:0 and cuda:1 compute the same; CPU and CUDA do not
        "dtype": options.dtype,
        "channels_last": options.channels_last,
        "stripe_pixels": options.stripe_pixels,
        "tiles": "planned" if options.tile is None else [options.tile, options.tile_halo] if options.tile else None,
        "size": [width, height],
        "output": kind + output.suffix.lower(),
        "fps": None if fps is None else str(fps),
        "cleaning_threshold": getattr(model, "cleaning_threshold", None),
        "max_cleaning_passes": getattr(model, "max_cleaning_passes", None),
        "cleaning_passes": getattr(model, "cleaning_passes", None),
        "strength": options.strength,  # also in the weights' fingerprint; named here for the message
        "grain": [options.grain, options.grain_size, options.grain_seed] if options.grain else None,
        "color_fix": options.color_fix,
    }
    scenes = segments.scenes
    if scenes not in ("auto", "off"):
        scenes = "file sha256 " + hashlib.sha256(Path(scenes).read_bytes()).hexdigest()
    return {
        "input": input_fingerprint(info),
        "settings": settings,
        "encode": asdict(encode) if kind == "video" else None,
        "segments": {**asdict(segments), "scenes": scenes},
        "weights": weights_fingerprint(model),
    }
