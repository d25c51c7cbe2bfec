"""Windowed streaming inference against the direct model output (small random-init models, tiny frames)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from realbasicvsr.media.read import Frame
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig, output_size
from realbasicvsr.upscale.windows import Upscaler, resize, to_image, to_tensor

pytestmark = pytest.mark.usefixtures("one_thread")


def small_model() -> RealBasicVSR:
    return RealBasicVSR(ModelConfig(4, 1, 1)).eval()


def moving_clip(t: int, h: int = 16, w: int = 24) -> torch.Tensor:
    """(t, 3, h, w) smooth content drifting 1 px per frame and brightening, so that propagation carries real
    information and frames are told apart."""
    yy, xx = torch.meshgrid(torch.arange(h + t), torch.arange(w + t), indexing="ij")
    scene = torch.stack([torch.sin(xx / 5.0), torch.cos(yy / 7.0), torch.sin((xx + yy) / 9.0)]) * 0.4 + 0.5
    return torch.stack([scene[:, i : i + h, i : i + w] * 0.8 + 0.03 * i for i in range(t)])


def run(model: RealBasicVSR, clip: torch.Tensor, **options) -> torch.Tensor:
    upscaler = Upscaler(model, UpscaleConfig(**options))
    return torch.stack(list(upscaler.iter_tensors(list(clip))))


def direct(model: RealBasicVSR, clip: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(clip.unsqueeze(0))[0][0]


@pytest.mark.parametrize("channels_last", [False, True])
def test_window_covering_the_clip_is_exactly_the_model(channels_last):
    model, clip = small_model(), moving_clip(7)
    out = run(model, clip, window=7, overlap=3, channels_last=channels_last)  # converts the model in place
    assert torch.equal(out, direct(model, clip))
    out = run(model, clip, window=50, overlap=0, channels_last=channels_last)
    assert torch.equal(out, direct(model, clip))


def test_forward_state_is_carried_exactly():
    """With look-ahead to the end of the clip, windows only differ from the whole run by float rounding."""
    model, clip = small_model(), moving_clip(9)
    out = run(model, clip, window=2, overlap=9, channels_last=False)
    assert (out - direct(model, clip)).abs().max() < 1e-5


def test_overlap_reduces_the_seam_error():
    model, clip = small_model(), moving_clip(8)
    reference = direct(model, clip)
    errors = [(run(model, clip, window=3, overlap=o, channels_last=False) - reference).abs().max() for o in (0, 1, 4)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] > 1e-4  # the cut really matters for this model, so the test can fail


@pytest.mark.parametrize(("frames", "window", "overlap"), [(1, 4, 2), (5, 1, 0), (5, 2, 0), (6, 4, 1), (3, 10, 0)])
def test_window_edge_cases_keep_count_and_order(frames, window, overlap):
    model, clip = small_model(), moving_clip(frames)
    out = run(model, clip, window=window, overlap=overlap, channels_last=False)
    assert out.shape == (frames, 3, 64, 96)
    assert torch.isfinite(out).all()
    # Order: each output is closest to the whole-clip output of its own frame.
    base = direct(model, clip)
    for i in range(frames):
        distances = [(out[i] - base[j]).abs().mean() for j in range(frames)]
        assert int(np.argmin(distances)) == i


@pytest.mark.slow
def test_bf16_overflow_is_redone_in_fp32():
    """A bias just below the fp32 maximum is finite in fp32 but rounds to inf in bf16: every window falls back."""
    model = small_model()
    with torch.no_grad():
        model.basicvsr.conv_last.weight.zero_()
        model.basicvsr.conv_last.bias.fill_(3.40e38)
    clip = moving_clip(3)
    upscaler = Upscaler(model, UpscaleConfig(window=2, overlap=1, dtype="bf16", channels_last=False))
    with pytest.warns(RuntimeWarning, match="redoing it in fp32"):
        out = torch.stack(list(upscaler.iter_tensors(list(clip))))
    assert upscaler.fallbacks == 2
    assert out.shape[0] == 3 and torch.isfinite(out).all()


def test_fp16_is_refused_off_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        Upscaler(small_model(), UpscaleConfig(dtype="fp16"))


def test_auto_device_and_dtype_are_settled_by_the_upscaler_itself():
    """The Python API takes "auto" as the CLI does: without a GPU it means cpu and fp32, and the output is then
    the same as with those given explicitly."""
    if torch.cuda.is_available():
        pytest.skip("checks the CPU meaning of auto")
    clip, model = moving_clip(3), small_model()
    auto = Upscaler(copy.deepcopy(model), UpscaleConfig(window=2, overlap=1, device="auto", dtype="auto"))
    explicit = Upscaler(model, UpscaleConfig(window=2, overlap=1, device="cpu", dtype="fp32"))
    assert (auto.options.device, auto.options.dtype) == ("cpu", "fp32")
    assert torch.equal(
        torch.stack(list(auto.iter_tensors(list(clip)))), torch.stack(list(explicit.iter_tensors(list(clip))))
    )


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("height", "stripe_pixels"), [(29, 5 * 23), (29, 1 * 23), (12, 11 * 23), (3, 23)])
def test_x4_stage_in_stripes_equals_whole_frames(channels_last, height, stripe_pixels):
    """Stripes of 5 rows (last one 4), of 1 row, a stripe just short of the frame, and a frame that fits."""
    torch.manual_seed(1)
    model = RealBasicVSR(ModelConfig(8, 1, 1)).eval()
    clip = moving_clip(4, height, 23)
    whole = run(model, clip, window=4, overlap=0, channels_last=channels_last, stripe_pixels=0)
    striped = run(model, clip, window=4, overlap=0, channels_last=channels_last, stripe_pixels=stripe_pixels)
    assert striped.shape == whole.shape == (4, 3, 4 * height, 92)
    torch.testing.assert_close(striped, whole, atol=1e-5, rtol=0)


def test_x4_stage_in_stripes_with_the_reference_checkpoint(small_checkpoint):
    """The refvector model and input (32x48) in stripes of 7 rows: within 1e-5 of the reference output."""
    from conftest import shared_path
    from realbasicvsr.weights import load_generator

    ref = torch.load(shared_path("refvectors", "ref_a_32x48_test_thr5.pt"), weights_only=True)
    lq = torch.load(shared_path("refvectors", "input_a_32x48.pt"), weights_only=True)["lq"]
    model = load_generator(small_checkpoint, cleaning_threshold=5)
    out = run(model, lq[0], window=5, overlap=0, channels_last=True, stripe_pixels=7 * 48)
    torch.testing.assert_close(out, ref["output"][0], atol=1e-5, rtol=0)


def test_stripe_pixels_must_not_be_negative():
    with pytest.raises(ValueError, match="stripe_pixels"):
        UpscaleConfig(stripe_pixels=-1)


def test_to_tensor_gives_the_official_conversion_for_8_and_16_bit():
    rng = np.random.default_rng(0)
    image8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    # The official script: float64 division, then float32; our float32 division rounds to the same values.
    assert torch.equal(to_tensor(image8), torch.from_numpy((image8 / 255.0).astype(np.float32)).permute(2, 0, 1))
    assert torch.equal(to_tensor(image16), torch.from_numpy((image16 / 65535.0).astype(np.float32)).permute(2, 0, 1))
    assert to_tensor(image8, "cpu").shape == (3, 5, 7)


def test_output_sizes_and_resize():
    assert output_size(48, 32, UpscaleConfig()) == (192, 128)
    assert output_size(48, 32, UpscaleConfig(outscale=1.5)) == (72, 48)
    assert output_size(48, 32, UpscaleConfig(out_size=(100, 60))) == (100, 60)
    flat = torch.full((1, 3, 40, 40), 0.25)
    assert torch.allclose(resize(flat, (13, 7)), torch.full((1, 3, 7, 13), 0.25), atol=1e-6)
    # Antialiasing: a 1-px checkerboard shrunk 4x averages to grey instead of aliasing to black or white.
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2
    small = resize(checker.float()[None, None].expand(1, 3, 64, 64), (16, 16))
    assert (small - 0.5).abs().max() < 0.05


def test_outscale_applies_to_the_model_output():
    model, clip = small_model(), moving_clip(3)
    out = run(model, clip, window=8, overlap=0, outscale=1.5, channels_last=False)
    assert out.shape == (3, 3, 24, 36)
    expected = resize(direct(model, clip), (36, 24))
    assert torch.allclose(out, expected, atol=1e-5)


def test_frames_keep_metadata_depth_and_alpha():
    model = small_model()
    rng = np.random.default_rng(0)
    frames = [
        Frame(
            index=i,
            image=rng.integers(0, 65535, (16, 20, 3), dtype=np.uint16),
            pts=1000 + 7 * i,
            alpha=np.full((16, 20), 40000, np.uint16),
            name=f"f{i}.png",
        )
        for i in range(3)
    ]
    out = list(Upscaler(model, UpscaleConfig(window=2, overlap=1)).upscale(iter(frames)))
    assert [(f.index, f.pts, f.name) for f in out] == [(i, 1000 + 7 * i, f"f{i}.png") for i in range(3)]
    assert out[0].image.shape == (64, 80, 3) and out[0].image.dtype == np.uint16
    assert out[0].alpha.shape == (64, 80) and np.all(out[0].alpha == 40000)


def test_quantisation_matches_tensor2img():
    x = torch.tensor([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.2]).view(1, 1, 6).expand(3, 1, 6)
    assert to_image(x)[0, :, 0].tolist() == [0, 0, 0, 2, 128, 255]  # clamp, x255, round half to even
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    assert torch.equal(to_tensor(image)[0], torch.from_numpy(image[..., 0] / 255.0).float())


def test_mirror_extended_window_is_exact():
    """A palindromic clip makes the model reuse the backward flows; the windowed path must do the same."""
    model, clip = small_model(), moving_clip(3)
    clip = torch.cat([clip, clip.flip(0)])
    out = run(model, clip, window=6, overlap=0, channels_last=False)
    assert torch.equal(out, direct(model, clip))


def test_spynet_memory_cap_only_changes_rounding(monkeypatch):
    import realbasicvsr.models.basicvsr as basicvsr

    model, clip = small_model(), moving_clip(5)
    monkeypatch.setattr(basicvsr, "SPYNET_BATCH_BYTES", 1)  # one frame pair per SPyNet call
    out = run(model, clip, window=5, overlap=0, channels_last=False)
    assert (out - direct(model, clip)).abs().max() < 1e-5


def test_lookahead_frames_are_cleaned_once():
    model, clip = small_model(), moving_clip(8)
    cleaned_frames = []
    model.image_cleaning.register_forward_hook(lambda _m, args, _out: cleaned_frames.append(args[0].shape[0]))
    run(model, clip, window=3, overlap=2, channels_last=False)
    assert sum(cleaned_frames) == 8  # the look-ahead of one window is reused as the start of the next
