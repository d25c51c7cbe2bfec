"""The generator and discriminator: our self-made official-layout checkpoint and golden values always, and the
reference outputs in ../shared/refvectors (the cross-check against the reference implementation) where present."""

from __future__ import annotations

import pytest
import torch

from conftest import shared_path
from realbasicvsr import load_generator
from realbasicvsr.models import ModelConfig, RealBasicVSR, UNetDiscriminator
from realbasicvsr.models.basicvsr import is_mirror_extended
from realbasicvsr.weights import read_state_file

ATOL = 1e-5
CASES = ["ref_a_32x48_test_thr5.pt", "ref_a_32x48_test_thr255.pt", "ref_a_32x48_train_thr255.pt"]


def _load(name: str) -> dict:
    return torch.load(shared_path("refvectors", name), map_location="cpu", weights_only=True)


def _subset(output: torch.Tensor, ref: dict) -> torch.Tensor:
    flat = output.reshape(-1)
    k = flat.numel() // 16
    return flat[(torch.arange(k) * 7919) % flat.numel()]


@pytest.mark.parametrize("case", CASES)
def test_generator_reproduces_reference(case: str, small_checkpoint) -> None:
    ref = _load(case)
    lq = _load("input_a_32x48.pt")["lq"]
    model = load_generator(
        small_checkpoint, ema=ref["weights_prefix"] == "generator_ema.", cleaning_threshold=ref["dynamic_refine_thres"]
    )
    with torch.no_grad():
        hr, cleaned = model(lq)
    assert model.last_cleaning_passes == ref["num_cleaning_passes"]
    torch.testing.assert_close(cleaned, ref["cleaned_lq"], atol=ATOL, rtol=0)
    summary = ref["output_summary"]
    assert list(hr.shape) == summary["shape"]
    if "output" in ref:
        torch.testing.assert_close(hr, ref["output"], atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(_subset(hr, ref), ref["output_subset"], atol=ATOL, rtol=0)
    assert hr.double().sum().item() == pytest.approx(summary["sum"], abs=1e-2)
    assert hr.min().item() == pytest.approx(summary["min"], abs=ATOL)
    assert hr.max().item() == pytest.approx(summary["max"], abs=ATOL)


def test_flows_reproduce_reference(small_checkpoint) -> None:
    ref = _load("ref_a_32x48_test_thr5.pt")
    model = load_generator(small_checkpoint, cleaning_threshold=5)
    with torch.no_grad():
        backward, forward = model.basicvsr.compute_flows(ref["cleaned_lq"])
    torch.testing.assert_close(backward, ref["flows_backward"], atol=ATOL, rtol=0)
    torch.testing.assert_close(forward, ref["flows_forward"], atol=ATOL, rtol=0)


def test_chunked_cleaning_matches_batched(official_checkpoint) -> None:
    lq = official_checkpoint.lq
    model = load_generator(official_checkpoint.path, cleaning_threshold=official_checkpoint.multi_pass_threshold)
    with torch.no_grad():
        hr, cleaned = model(lq)
        model.cleaning_chunk = 1
        hr_chunked, cleaned_chunked = model(lq)
        frames = torch.stack(list(model.iter_frames(lq)), dim=1)
    assert model.last_cleaning_passes == official_checkpoint.multi_passes
    torch.testing.assert_close(cleaned_chunked, cleaned, atol=1e-6, rtol=0)
    torch.testing.assert_close(hr_chunked, hr, atol=1e-5, rtol=0)
    torch.testing.assert_close(frames, hr_chunked, atol=0, rtol=0)


def test_mirror_shortcut_is_exact(official_checkpoint, monkeypatch) -> None:
    lq = official_checkpoint.lq[:, :3]
    mirrored = torch.cat([lq, lq.flip(1)], dim=1)
    assert is_mirror_extended(mirrored) and not is_mirror_extended(lq)
    model = load_generator(official_checkpoint.path)
    with torch.no_grad():
        cleaned = model.clean(mirrored)
        assert model.basicvsr.compute_flows(cleaned)[1] is None
        shortcut = model.basicvsr(cleaned)
        # Force the general path (forward flows computed by SPyNet) and compare.
        monkeypatch.setattr("realbasicvsr.models.basicvsr.is_mirror_extended", lambda lrs: False)
        assert model.basicvsr.compute_flows(cleaned)[1] is not None
        full = model.basicvsr(cleaned)
    torch.testing.assert_close(shortcut, full, atol=1e-6, rtol=0)


def test_discriminator_reproduces_reference(small_checkpoint) -> None:
    ref = _load("ref_discriminator_m4.pt")
    state = read_state_file(small_checkpoint)
    disc = UNetDiscriminator(3, 4)
    disc.load_state_dict({k[len("discriminator.") :]: v for k, v in state.items() if k.startswith("discriminator.")})
    disc.eval()
    with torch.no_grad():
        torch.testing.assert_close(disc(ref["input"]), ref["output_eval"], atol=ATOL, rtol=0)
        disc.train()
        torch.testing.assert_close(disc(ref["input"]), ref["output_train_first_call"], atol=ATOL, rtol=0)
    for name, u in ref["weight_u_after_train_call"].items():
        layer = name.split(".")[0]
        torch.testing.assert_close(getattr(disc, layer).weight_u, u, atol=ATOL, rtol=0)


def test_discriminator_rejects_sizes_not_multiple_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetDiscriminator(3, 4)(torch.zeros(1, 3, 30, 32))


@pytest.mark.parametrize("frames,height,width", [(1, 32, 48), (1, 1, 1), (2, 1, 7), (3, 5, 3), (4, 33, 65)])
def test_any_frame_count_and_size(frames: int, height: int, width: int) -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1)).eval()
    lq = torch.rand(1, frames, 3, height, width)
    with torch.no_grad():
        hr, cleaned = model(lq)
    assert hr.shape == (1, frames, 3, 4 * height, 4 * width)
    assert cleaned.shape == lq.shape
    assert torch.isfinite(hr).all()


def test_input_is_not_modified() -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1), cleaning_threshold=0.0).eval()
    lq = torch.rand(2, 3, 3, 16, 16)
    before = lq.clone()
    with torch.no_grad():
        model(lq)
    assert model.last_cleaning_passes == 3  # threshold 0 never stops early
    assert torch.equal(lq, before)


def test_threshold_counts_passes() -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1), max_cleaning_passes=2, cleaning_threshold=0.0).eval()
    with torch.no_grad():
        model(torch.rand(1, 2, 3, 8, 8))
    assert model.last_cleaning_passes == 2
    model.cleaning_threshold = 255.0
    with torch.no_grad():
        model(torch.rand(1, 2, 3, 8, 8))
    assert model.last_cleaning_passes == 1


def test_gradients_reach_cleaner_and_backbone_not_spynet() -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1)).train()
    hr, cleaned = model(torch.rand(1, 3, 3, 16, 16))
    (hr.mean() + cleaned.mean()).backward()
    spynet = {f"basicvsr.spynet.{n}" for n, _ in model.basicvsr.spynet.named_parameters()}
    for name, param in model.named_parameters():
        if name in spynet:
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bad_input_shape() -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1))
    with pytest.raises(ValueError, match=r"\(n, t, 3, h, w\)"):
        model(torch.rand(1, 3, 16, 16))


def test_channels_last_matches_nchw(official_checkpoint) -> None:
    lq = official_checkpoint.lq
    model = load_generator(official_checkpoint.path, cleaning_threshold=official_checkpoint.multi_pass_threshold)
    with torch.no_grad():
        hr, cleaned = model(lq)
        model.use_channels_last()
        hr_cl, cleaned_cl = model(lq)
    assert model.last_cleaning_passes == official_checkpoint.multi_passes
    torch.testing.assert_close(hr_cl, hr, atol=1e-5, rtol=0)
    torch.testing.assert_close(cleaned_cl, cleaned, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 256, 12, 20), (2, 12, 5, 7), (1, 4, 1, 1)])
def test_channels_last_pixel_shuffle_is_exact(shape) -> None:
    from realbasicvsr.models.blocks import pixel_shuffle

    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    out = pixel_shuffle(x, 2)
    assert torch.equal(out, torch.nn.functional.pixel_shuffle(x, 2))
    assert torch.equal(pixel_shuffle(x.contiguous(), 2), out)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_cpu_inference_equals_the_plain_ops(official_checkpoint, channels_last: bool) -> None:
    from realbasicvsr.models import fused

    if not fused._HAS_FUSED:
        pytest.skip("this PyTorch build has no oneDNN fused convolutions (the plain path is then always used)")
    lq = official_checkpoint.lq
    before = lq.clone()
    model = load_generator(
        official_checkpoint.path, cleaning_threshold=official_checkpoint.multi_pass_threshold
    ).use_channels_last(channels_last)
    with torch.no_grad():
        assert fused.can_fuse(lq, model.basicvsr.conv_hr)
        hr, cleaned = model(lq)
        fused.set_fused_convolutions(False)
        try:
            assert not fused.can_fuse(lq, model.basicvsr.conv_hr)
            hr_plain, cleaned_plain = model(lq)
        finally:
            fused.set_fused_convolutions(True)
    assert torch.equal(lq, before)
    torch.testing.assert_close(hr, hr_plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(cleaned, cleaned_plain, atol=1e-6, rtol=0)


def test_fused_path_is_used_only_without_autograd_and_for_fp32_or_bf16() -> None:
    from realbasicvsr.models import fused

    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    x = torch.rand(1, 4, 6, 6)
    assert not fused.can_fuse(x, conv)  # gradients enabled: training keeps the plain, differentiable ops
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        # bf16 needs a CPU whose oneDNN has a bf16 convolution (AVX-512 or AVX-NE-CONVERT; not an AVX2-only EPYC)
        assert fused.can_fuse(x, conv) == (fused._HAS_FUSED and fused._fused_bf16_supported())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        assert not fused.can_fuse(x, conv)
    with torch.no_grad():
        assert fused.can_fuse(x, conv) == fused._HAS_FUSED
        assert not fused.can_fuse(x.double(), conv)  # dtype differs from the weights'


@pytest.mark.slow
def test_fused_bf16_autocast_stays_close_to_plain_autocast(official_checkpoint) -> None:
    from realbasicvsr.models import fused

    lq = official_checkpoint.lq
    model = load_generator(official_checkpoint.path).use_channels_last()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        hr, _ = model(lq)
        fused.set_fused_convolutions(False)
        try:
            hr_plain, _ = model(lq)
        finally:
            fused.set_fused_convolutions(True)
    assert hr.dtype == hr_plain.dtype
    # bf16 has 8 bits of mantissa: the fused sum rounds once where the plain ops round twice
    torch.testing.assert_close(hr.float(), hr_plain.float(), atol=2e-2, rtol=0)


@pytest.mark.parametrize("size", [(5, 7), (1, 3), (12, 20)])
def test_upsampling_with_reordered_subpixels_equals_the_plain_shuffle(size) -> None:
    from realbasicvsr.models.blocks import PixelShufflePack

    torch.manual_seed(0)
    pack = PixelShufflePack(8, 4, 2, kernel_size=3).to(memory_format=torch.channels_last)
    torch.nn.init.normal_(pack.upsample_conv.bias)
    x = torch.randn(2, 8, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = pack(x, leaky_slope=0.1)
        expected = torch.nn.functional.leaky_relu(
            torch.nn.functional.pixel_shuffle(pack.upsample_conv(x.contiguous()), 2), 0.1
        )
    assert out.shape == (2, 4, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


# ------------------------------------------------- the recurrence with a carried state, stripes, SPyNet in batches
def _moving(t: int, h: int = 12, w: int = 16) -> torch.Tensor:
    """(1, t, 3, h, w): smooth content drifting 1 px per frame, so that flows and propagation carry information."""
    yy, xx = torch.meshgrid(torch.arange(h + t), torch.arange(w + t), indexing="ij")
    scene = torch.stack([torch.sin(xx / 3.0), torch.cos(yy / 4.0), torch.sin((xx + yy) / 5.0)]) * 0.4 + 0.5
    return torch.stack([scene[:, i : i + h, i : i + w] for i in range(t)]).unsqueeze(0)


def _drain(generator) -> tuple[list[torch.Tensor], object]:
    """All outputs of a generator and its return value."""
    outputs = []
    while True:
        try:
            outputs.append(next(generator))
        except StopIteration as end:
            return outputs, end.value


def test_propagate_carries_the_forward_state_across_calls(one_thread) -> None:
    """Two calls joined by the returned state, with look-ahead to the end of the clip, give the one-call output up
    to float rounding (the second call's flows come from a smaller SPyNet batch); without the state they do not."""
    bvsr = RealBasicVSR(ModelConfig(4, 1, 1)).eval().basicvsr
    lrs = _moving(7)
    with torch.inference_mode():
        whole, _ = _drain(bvsr.propagate(lrs))
        first, state = _drain(bvsr.propagate(lrs, keep=3))
        rest, end = _drain(bvsr.propagate(lrs[:, 3:], state=state))
        cold, _ = _drain(bvsr.propagate(lrs[:, 3:]))
    assert len(first) == 3 and len(rest) == 4
    assert torch.equal(state.lr, lrs[:, 2]) and torch.equal(end.lr, lrs[:, 6])
    torch.testing.assert_close(torch.stack(first + rest), torch.stack(whole), atol=1e-5, rtol=0)
    assert (torch.stack(cold) - torch.stack(whole[3:])).abs().max() > 1e-4  # the state matters for this model
    with torch.inference_mode():
        assert torch.equal(torch.stack(list(bvsr.iter_outputs(lrs))), torch.stack(whole))


@pytest.mark.parametrize("keep", [0, 4])
def test_propagate_keeps_between_one_and_all_frames(keep: int) -> None:
    bvsr = RealBasicVSR(ModelConfig(4, 1, 1)).eval().basicvsr
    with pytest.raises(ValueError, match="keep"), torch.no_grad():
        next(bvsr.propagate(_moving(3), keep=keep))


def test_flows_in_capped_batches_equal_one_batch(one_thread) -> None:
    bvsr = RealBasicVSR(ModelConfig(4, 1, 1)).eval().basicvsr
    lrs = torch.cat([_moving(5), _moving(5).flip(-1)])  # n = 2: batches hold whole frame pairs of both clips
    with torch.inference_mode():
        backward, forward = bvsr.compute_flows(lrs)
        capped_backward, capped_forward = bvsr.compute_flows(lrs, forward_pairs=2, max_batch_bytes=1)
    assert capped_backward.shape == backward.shape and capped_forward.shape == (2, 2, 2, 12, 16)
    assert backward.abs().max() > 0.1  # the flows are not trivial
    torch.testing.assert_close(capped_backward, backward, atol=1e-6, rtol=0)
    torch.testing.assert_close(capped_forward, forward[:, :2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("height", "stripe_pixels"), [(13, 3 * 9), (13, 1), (13, 12 * 9), (4, 9)])
def test_x4_stage_in_stripes_equals_one_piece(one_thread, channels_last: bool, height: int, stripe_pixels: int) -> None:
    torch.manual_seed(1)
    model = RealBasicVSR(ModelConfig(8, 1, 1)).eval().use_channels_last(channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    lr, backward, forward = (torch.rand(1, c, height, 9).contiguous(memory_format=fmt) for c in (3, 8, 8))
    with torch.inference_mode():
        whole = model.basicvsr.reconstruct(lr, backward, forward)
        striped = model.basicvsr.reconstruct(lr, backward, forward, stripe_pixels=stripe_pixels)
    assert striped.shape == whole.shape == (1, 3, 4 * height, 36)
    torch.testing.assert_close(striped, whole, atol=1e-5, rtol=0)


def test_stream_window_cleans_the_lookahead_once_at_the_same_precision(one_thread) -> None:
    model = RealBasicVSR(ModelConfig(4, 1, 1)).eval()
    cleaned_frames: list[int] = []
    model.image_cleaning.register_forward_hook(lambda _m, args, _out: cleaned_frames.append(args[0].shape[0]))
    lq = _moving(6)
    with torch.inference_mode():
        first, state = _drain(model.stream_window(lq[:, :4], keep=2))
        assert state.lookahead is not None and state.lookahead.shape[1] == 2 and sum(cleaned_frames) == 4
        cleaned_frames.clear()
        reused, _ = _drain(model.stream_window(lq[:, 2:], keep=4, state=state))
        assert sum(cleaned_frames) == 2  # frames 2 and 3 came cleaned from the first window
        cleaned_frames.clear()
        # A look-ahead cleaned at another precision (a fp32 redo after a bf16 window) is cleaned afresh.
        afresh, end = _drain(model.stream_window(lq[:, 2:], keep=4, state=state, autocast_dtype=torch.bfloat16))
        assert sum(cleaned_frames) == 4 and end.lookahead is None and end.autocast_dtype == torch.bfloat16
    assert len(first) == 2 and len(reused) == 4
    torch.testing.assert_close(torch.stack(afresh), torch.stack(reused), atol=1e-6, rtol=0)
