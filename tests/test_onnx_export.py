"""ONNX step graphs (realbasicvsr.deploy): export, onnx.checker, GridSample attributes, onnxruntime parity with
PyTorch through the streaming `Upscaler`, and the checks of a folder."""

from __future__ import annotations

import json

import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the onnx extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra (onnx, onnxruntime) is not installed")

from conftest import shared_path  # noqa: E402
from realbasicvsr.deploy.export import MANIFEST, export_onnx  # noqa: E402
from realbasicvsr.deploy.runner import load_onnx_model  # noqa: E402
from realbasicvsr.deploy.steps import GRAPHS, FlowStep  # noqa: E402
from realbasicvsr.errors import UserError  # noqa: E402
from realbasicvsr.models import ModelConfig, RealBasicVSR  # noqa: E402
from realbasicvsr.upscale.config import UpscaleConfig  # noqa: E402
from realbasicvsr.upscale.windows import Upscaler  # noqa: E402

TOLERANCE = 1e-4  # fp32, issue 18


@pytest.fixture(scope="module")
def random_model() -> RealBasicVSR:
    torch.manual_seed(7)
    return RealBasicVSR(ModelConfig(8, 2, 2)).eval()


@pytest.fixture(scope="module")
def dynamic_folder(random_model, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield export_onnx(random_model, tmp_path_factory.mktemp("onnx") / "dynamic")
    torch.set_num_threads(threads)


def outputs(model, frames, **config) -> list[torch.Tensor]:
    return list(Upscaler(model, UpscaleConfig(**config)).iter_tensors(frames))


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert len(a) == len(b)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def test_every_graph_passes_the_checker_and_keeps_grid_sample_settings(dynamic_folder):
    manifest = json.loads((dynamic_folder / MANIFEST).read_text())
    assert sorted(manifest["graphs"]) == sorted(spec.name for spec in GRAPHS)
    samplers = {}
    for spec in GRAPHS:
        graph = onnx.load(str(dynamic_folder / spec.file))
        onnx.checker.check_model(graph, full_check=True)
        assert {e.version for e in graph.opset_import if e.domain in ("", "ai.onnx")} == {17}
        assert [i.name for i in graph.graph.input] == list(spec.inputs)
        for node in graph.graph.node:
            if node.op_type == "GridSample":
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                samplers.setdefault(spec.name, set()).add(
                    (attrs.get("mode", b"bilinear"), attrs.get("padding_mode", b"zeros"), attrs.get("align_corners"))
                )
    assert samplers["flow"] == {(b"bilinear", b"border", 1)}  # SPyNet warps with border padding
    for name in ("backward_step", "forward_step", "forward_feature"):
        assert samplers[name] == {(b"bilinear", b"zeros", 1)}  # the propagation with zeros
    assert "clean" not in samplers


@pytest.mark.parametrize("size", [(23, 17), (64, 32), (56, 40)])
def test_flow_step_is_spynet_forward(random_model, size):
    w, h = size
    ref, supp = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    with torch.no_grad():
        assert torch.equal(FlowStep(random_model)(ref, supp), random_model.basicvsr.spynet(ref, supp))


@pytest.mark.parametrize(
    ("size", "frames", "window", "overlap", "tile"),
    [
        ((33, 21), 7, 3, 2, 0),  # odd sizes, windows across boundaries with look-ahead
        ((23, 17), 1, 3, 2, 0),  # one frame
        ((40, 32), 6, 2, 0, 0),  # no look-ahead
        ((50, 40), 5, 4, 1, 24),  # tiles: each with its own state
        ((48, 36), 4, 8, 4, 0),  # one window covering the clip: the model's forward
    ],
)
def test_runner_equals_pytorch_through_the_upscaler(random_model, dynamic_folder, one_thread, size, frames, window,
                                                    overlap, tile):  # fmt: skip
    onnx_model, note = load_onnx_model(dynamic_folder)
    assert "mid_channels 8" in note
    w, h = size
    clip = [torch.rand(3, h, w) for _ in range(frames)]
    config = {"window": window, "overlap": overlap, "tile": tile, "tile_halo": 4}
    assert max_diff(outputs(onnx_model, clip, **config), outputs(random_model, clip, **config)) <= TOLERANCE


def test_segments_warm_up_and_side_by_side_streams_match(random_model, dynamic_folder, one_thread):
    onnx_model, _ = load_onnx_model(dynamic_folder)
    streams = [torch.rand(2, 3, 19, 27) for _ in range(7)]  # two streams side by side, 7 frames
    config = UpscaleConfig(window=3, overlap=2)

    def run(model):
        return list(Upscaler(model, config).iter_batches(iter(streams), warmup=2, lookahead=1))

    ours, theirs = run(onnx_model), run(random_model)
    assert len(ours) == 4 and max_diff(ours, theirs) <= TOLERANCE


def test_cleaning_rule_and_fixed_passes_follow_the_model(random_model, dynamic_folder, one_thread, tmp_path):
    onnx_model, _ = load_onnx_model(dynamic_folder)
    lq = torch.rand(1, 3, 3, 20, 24)
    for threshold, passes in ((0.0, None), (255.0, None), (255.0, 2), (255.0, 0)):
        for model in (onnx_model, random_model):
            model.cleaning_threshold, model.cleaning_passes = threshold, passes
        with torch.no_grad():
            expected = random_model.clean(lq)
        assert (onnx_model.clean(lq) - expected).abs().max() <= TOLERANCE
        assert onnx_model.last_cleaning_passes == random_model.last_cleaning_passes
    random_model.cleaning_threshold, random_model.cleaning_passes = 255.0, None
    fixed, _ = load_onnx_model(export_onnx(random_model, tmp_path / "two", size=(24, 20), cleaning_passes=2))
    assert fixed.cleaning_passes == 2


def test_fixed_size_graphs_run_their_size_and_refuse_others(random_model, tmp_path, one_thread):
    folder = export_onnx(random_model, tmp_path / "fixed", size=(30, 22))
    onnx_model, note = load_onnx_model(folder)
    assert "30x22" in note
    clip = [torch.rand(3, 22, 30) for _ in range(4)]
    expected = outputs(random_model, clip, window=2, overlap=1)
    assert max_diff(outputs(onnx_model, clip, window=2, overlap=1), expected) <= TOLERANCE
    with pytest.raises(UserError, match="are for 30x22 frames, not 31x22; export them for size 31x22"):
        outputs(onnx_model, [torch.rand(3, 22, 31)], window=2)
    with pytest.raises(UserError, match="are for 30x22 frames"):
        load_onnx_model(folder, size=(64, 64))


def test_refvector_checkpoint_matches_pytorch_and_the_reference_output(tmp_path, one_thread):
    from realbasicvsr.weights.release import load_generator

    checkpoint = shared_path("refvectors", "small_c16b2_checkpoint.pth")
    lq = torch.load(shared_path("refvectors", "input_a_32x48.pt"), weights_only=True)["lq"]
    case = torch.load(shared_path("refvectors", "ref_a_32x48_test_thr255.pt"), weights_only=True)
    model = load_generator(checkpoint)
    onnx_model, _ = load_onnx_model(export_onnx(checkpoint, tmp_path / "ref"), expect=model.config)
    frames = list(lq[0])
    ours = outputs(onnx_model, frames, window=8, overlap=0)  # one window: the whole clip, as the reference ran
    assert max_diff(ours, outputs(model, frames, window=8, overlap=0)) <= TOLERANCE
    flat = torch.stack(ours).unsqueeze(0).reshape(-1)
    k = flat.numel() // 16
    subset = flat[(torch.arange(k) * 7919) % flat.numel()]
    assert (subset - case["output_subset"]).abs().max() <= TOLERANCE
    streamed = outputs(onnx_model, frames, window=2, overlap=2)
    assert max_diff(streamed, outputs(model, frames, window=2, overlap=2)) <= TOLERANCE


def test_export_refuses_to_replace_without_overwrite_and_never_touches_other_files(random_model, tmp_path):
    folder = export_onnx(random_model, tmp_path / "out", size=(16, 16))
    first = (folder / MANIFEST).read_text()
    with pytest.raises(UserError, match="already holds an ONNX export; set overwrite"):
        export_onnx(random_model, folder, size=(16, 16))
    export_onnx(random_model, folder, size=(20, 16), overwrite=True)
    assert (folder / MANIFEST).read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds files that are not an ONNX export \(notes.txt\)"):
        export_onnx(random_model, folder, size=(16, 16), overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match=r"opset must be 16\.\.23"):
        export_onnx(random_model, tmp_path / "x", opset=15)
    with pytest.raises(UserError, match="size must be"):
        export_onnx(random_model, tmp_path / "x", size=(1, 16))
    assert not (tmp_path / "x").exists()


def test_half_precision_graphs_pass_the_checker_and_stay_close(random_model, tmp_path, one_thread):
    folder = export_onnx(random_model, tmp_path / "fp16", fp16=True, size=(24, 16))
    for spec in GRAPHS:
        onnx.checker.check_model(onnx.load(str(folder / spec.file)), full_check=True)
    onnx_model, note = load_onnx_model(folder)
    assert "fp16" in note
    clip = [torch.rand(3, 16, 24) for _ in range(3)]
    assert (
        max_diff(outputs(onnx_model, clip, window=2, overlap=1), outputs(random_model, clip, window=2, overlap=1))
        < 5e-2
    )
    assert random_model.basicvsr.conv_last.weight.dtype == torch.float32  # the caller's model is not converted
