"""Offline training data: bundled sources, the virtual camera, scene cuts and the clip folder the trainer reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realbasicvsr.errors import UserError
from realbasicvsr.train.offline_data import (
    IMAGE_SOURCES,
    VIDEO_SOURCES,
    CameraConfig,
    DatasetConfig,
    build_dataset,
    camera_sequence,
    find_source,
    load_image,
    scene_segments,
    source_path,
)


def test_every_source_is_installed_and_licensed():
    for source in IMAGE_SOURCES + VIDEO_SOURCES:
        assert source_path(source).is_file()
        assert source.licence and source.split in ("train", "heldout", "real")
    # The real low-quality clip used for evaluation is never a training source.
    assert find_source("carphone_distorted").split == "real"
    assert {s.split for s in IMAGE_SOURCES} == {"train", "heldout"}


def test_grey_photographs_load_as_rgb():
    camera = load_image("camera")
    assert camera.dtype == np.uint8 and camera.shape == (512, 512, 3)
    assert np.array_equal(camera[..., 0], camera[..., 2])


def test_virtual_camera_moves_smoothly():
    image = load_image("astronaut")
    config = CameraConfig(frames=6, size=(64, 96))
    frames = camera_sequence(image, np.random.default_rng(1), config)
    assert frames.shape == (6, 64, 96, 3) and frames.dtype == np.uint8
    step = [np.abs(frames[t + 1].astype(float) - frames[t]).mean() for t in range(5)]
    assert min(step) > 0.5  # the camera does move
    # ... gradually: consecutive frames are closer than the first and last.
    assert np.mean(step) < np.abs(frames[-1].astype(float) - frames[0]).mean()
    # Seeded: the same generator state gives the same clip.
    again = camera_sequence(image, np.random.default_rng(1), config)
    assert np.array_equal(frames, again)


def test_scene_segments_split_at_cuts():
    rng = np.random.default_rng(0)
    a = np.full((10, 8, 8, 3), 30, np.uint8) + rng.integers(0, 3, (10, 8, 8, 3), dtype=np.uint8)
    b = np.full((12, 8, 8, 3), 200, np.uint8)
    assert scene_segments(np.concatenate([a, b])) == [(0, 10), (10, 22)]
    assert scene_segments(np.concatenate([a[:3], b])) == [(3, 15)]  # a 3-frame piece is too short to keep


def test_heldout_dataset_is_a_trainable_clip_folder(tmp_path):
    from realbasicvsr.train.data import scan_clips

    config = DatasetConfig(split="heldout", clips_per_image=1, camera=CameraConfig(frames=3, size=(64, 64)))
    manifest = build_dataset(tmp_path / "data", config)
    clips = scan_clips(tmp_path / "data", min_frames=3, min_size=64)
    assert sorted(c.path.name for c in clips) == ["coffee_00", "rocket_00"]
    recorded = json.loads((tmp_path / "data" / "sources.json").read_text())
    assert recorded["clips"] == manifest["clips"]
    assert recorded["clips"]["coffee_00"]["licence"].startswith("CC0")
    with pytest.raises(UserError, match="not empty"):
        build_dataset(tmp_path / "data", config)


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown data source"):
        find_source("lena")
    with pytest.raises(UserError, match="split"):
        build_dataset(tmp_path / "x", DatasetConfig(split="test"))
