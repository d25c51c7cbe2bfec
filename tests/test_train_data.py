"""Training data: clip scanning, windows/crops/flips, the sample stream, video files, sub-image cutting.

Also holds the small helpers the other test_train_* files import (synthetic clips, a tiny config).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from realbasicvsr.errors import UserError
from realbasicvsr.models import ModelConfig
from realbasicvsr.train.config import CheckpointConfig, DataConfig, LogConfig, LossConfig, RunConfig, TrainConfig
from realbasicvsr.train.data import StepSampler, TrainDataset, crop_and_flip, read_window, scan_clips
from realbasicvsr.train.prepare import crop_offsets, cut_dataset


def synthetic_frames(n_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random texture that drifts by (2, 1) pixels per frame: learnable, and different per clip."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((width + n_frames * 2, height + n_frames * 2), Image.BICUBIC))
    return np.stack([base[2 * t : 2 * t + height, t : t + width] for t in range(n_frames)])


def make_clips(root: Path, n_clips: int = 2, n_frames: int = 6, size: tuple[int, int] = (40, 48)) -> Path:
    """REDS-style clip folders of PNG frames under `root`."""
    for c in range(n_clips):
        folder = root / f"clip{c:03d}"
        folder.mkdir(parents=True)
        for t, frame in enumerate(synthetic_frames(n_frames, *size, seed=c)):
            Image.fromarray(frame).save(folder / f"{t:08d}.png")
    return root


def make_video(path: Path, n_frames: int = 12, size: tuple[int, int] = (48, 64), fps: int = 10) -> np.ndarray:
    """An H.264 file written with PyAV; returns the frames that went in."""
    frames = synthetic_frames(n_frames, *size, seed=7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}  # near-lossless, so windows can be compared
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return frames


def tiny_config(**sections: object) -> TrainConfig:
    """A seconds-per-step config for tests: c8 with 1 + 1 blocks, 3 (+3 mirrored) frames of 32x32, paired data."""
    config = TrainConfig(
        model=ModelConfig(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=1),
        data=DataConfig(degradation="none", num_frames=3, gt_size=32, batch_size=2, workers=0),
        loss=LossConfig(vgg_weights="random", discriminator_channels=8),
        run=RunConfig(steps=4, precision="fp32", channels_last="never"),
        log=LogConfig(every=1, val_every=1000),
        checkpoint=CheckpointConfig(every=1000, keep=2),
    )
    return replace(config, **sections)


def test_scan_clips_finds_frame_folders_and_videos(tmp_path):
    make_clips(tmp_path, n_clips=2)
    make_video(tmp_path / "video.mp4")
    (tmp_path / "notes.txt").write_text("not a clip")
    clips = scan_clips(tmp_path, min_frames=3, min_size=32)
    assert [c.path.name for c in clips] == ["clip000", "clip001", "video.mp4"]
    assert [c.is_video for c in clips] == [False, False, True]
    assert clips[2].length == 12 and (clips[2].height, clips[2].width) == (48, 64)


def test_scan_clips_explains_why_nothing_is_usable(tmp_path):
    make_clips(tmp_path, n_clips=1, n_frames=2)
    with pytest.raises(UserError, match=r"at least 3 frames.*clip000 \(2 frames"):
        scan_clips(tmp_path, min_frames=3, min_size=32)
    with pytest.raises(UserError, match="does not exist"):
        scan_clips(tmp_path / "missing", min_frames=3, min_size=32)


def test_video_window_matches_the_frames_written(tmp_path):
    frames = make_video(tmp_path / "v.mp4")
    (clip,) = scan_clips(tmp_path, min_frames=3, min_size=32)
    for start in (0, 5, 9):
        window = read_window(clip, start, 3)
        assert window.shape == (3, 48, 64, 3)
        for i in range(3):
            errors = [np.abs(window[i].astype(int) - f.astype(int)).mean() for f in frames]
            # the frame written at that index is by far the closest (yuv420 conversion costs ~6 levels)
            assert int(np.argmin(errors)) == start + i and errors[start + i] < 10, (start, i, errors)


def test_crop_and_flip_is_one_decision_per_clip():
    frames = np.random.default_rng(0).integers(0, 256, (4, 40, 50, 3), dtype=np.uint8)
    frames[1:] = frames[0]  # identical frames must stay identical after the augmentation
    seen_shapes = set()
    for seed in range(16):
        out = crop_and_flip(frames, 32, np.random.default_rng(seed))
        assert out.shape == (4, 32, 32, 3)
        assert all(np.array_equal(out[0], out[t]) for t in range(4))
        seen_shapes.add(out.tobytes()[:64])
    assert len(seen_shapes) > 4  # offsets/flips do vary between samples


def test_samples_are_deterministic_and_paired(tmp_path):
    clips = scan_clips(make_clips(tmp_path), 3, 32)
    config = DataConfig(degradation="none", num_frames=3, gt_size=32)
    dataset = TrainDataset(clips, config, seed=5)
    a, b = dataset[(0, 1)], dataset[(0, 1)]
    other_epoch = dataset[(1, 1)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["gt"], other_epoch["gt"])
    assert a["gt"].shape == (6, 3, 32, 32) and a["lq"].shape == (6, 3, 8, 8)
    assert torch.equal(a["gt"][:3], a["gt"].flip(0)[:3])  # temporal mirror x1..x3, x3..x1
    # the LQ is the GT downsampled x4: its area-average is close to the GT's
    pooled = torch.nn.functional.avg_pool2d(a["gt"], 4)
    assert (pooled - a["lq"]).abs().mean() < 0.03


def test_realworld_samples_use_the_degradation_module(tmp_path):
    pytest.importorskip("cv2")
    clips = scan_clips(make_clips(tmp_path, n_clips=1, size=(64, 64)), 3, 64)
    dataset = TrainDataset(clips, DataConfig(num_frames=3, gt_size=64), seed=0)
    sample = dataset[(0, 0)]
    assert sample["lq"].shape == (6, 3, 16, 16) and sample["gt_usm"].shape == (6, 3, 64, 64)
    assert not torch.equal(sample["gt"], sample["gt_usm"])  # sharpened target
    assert torch.equal(sample["lq"], dataset[(0, 0)]["lq"])  # seeded: the same key gives the same sample


def test_sampler_shards_ranks_and_resumes_mid_stream():
    def keys(rank: int, world: int, start: int) -> list:
        return list(StepSampler(5, 4, seed=1, start_step=start, total_steps=4, rank=rank, world=world))

    single = keys(0, 1, 0)
    assert len(single) == 16
    # two ranks split each step's global batch; together they see exactly the single-process stream
    r0, r1 = keys(0, 2, 0), keys(1, 2, 0)
    merged = [k for step in range(4) for k in r0[2 * step : 2 * step + 2] + r1[2 * step : 2 * step + 2]]
    assert merged == single
    assert keys(0, 1, 2) == single[8:]  # resuming at step 2 continues the same stream
    epochs = [e for e, _ in single]
    assert sorted(i for e, i in single if e == 0) == [0, 1, 2, 3, 4] and max(epochs) == 3
    with pytest.raises(UserError, match="divisible"):
        StepSampler(5, 3, 0, 0, 4, 0, 2)


def test_crop_offsets_follow_the_official_reds_cut():
    assert crop_offsets(720, 480, 240) == [0, 240]
    assert crop_offsets(1280, 480, 240) == [0, 240, 480, 720, 800]
    assert crop_offsets(400, 480, 240) == []


def test_cut_dataset_writes_sub_clips_and_skips_finished_ones(tmp_path):
    src = make_clips(tmp_path / "src", n_clips=1, n_frames=2, size=(40, 56))
    written, skipped = cut_dataset(src, tmp_path / "sub", crop=32, step=16)
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert (written, skipped) == (6, 0)  # rows {0, 8} x columns {0, 16, 24}, row-major
    assert names == [f"clip000_s{i:03d}" for i in range(1, 7)]
    original = np.asarray(Image.open(src / "clip000" / "00000001.png"))
    fourth = np.asarray(Image.open(tmp_path / "sub" / "clip000_s004" / "00000001.png"))
    last = np.asarray(Image.open(tmp_path / "sub" / "clip000_s006" / "00000001.png"))
    assert np.array_equal(fourth, original[8:40, 0:32])
    assert np.array_equal(last, original[8:40, 24:56])
    assert cut_dataset(src, tmp_path / "sub", crop=32, step=16) == (0, 6)
    with pytest.raises(UserError, match="inside the input"):
        cut_dataset(src, src / "sub", crop=32, step=16)


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path):
    from torch.utils.data import DataLoader

    clips = scan_clips(make_clips(tmp_path, n_clips=3), 3, 32)
    dataset = TrainDataset(clips, DataConfig(num_frames=3, gt_size=32), seed=3)  # realworld degradations

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        sampler = StepSampler(3, 2, seed=3, start_step=0, total_steps=2, rank=0, world=1)
        return list(DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=workers))

    pytest.importorskip("cv2")
    serial, parallel = batches(0), batches(2)
    assert len(serial) == 2 and serial[0]["lq"].shape == (2, 6, 3, 8, 8)
    for a, b in zip(serial, parallel):
        assert all(torch.equal(a[k], b[k]) for k in ("lq", "gt", "gt_usm"))
