"""The offline default model must never damage a picture (issue 21): flat colours across the RGB cube and colour
bars keep their mean colour within 8 levels per channel through the bundled model, in the library and end to end
through `realbasicvsr upscale` with lossless FFV1 in and out."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from realbasicvsr.metrics.color_patches import (
    BARS,
    bar_means,
    bars_image,
    cube_colours,
    flat_clips,
    patch_errors,
    summary,
)
from realbasicvsr.weights import bundled_weights_path, load_generator

TOLERANCE = 8.0  # levels of 255, per channel, on the mean of a flat area


@pytest.fixture(scope="module")
def bundled():
    path = bundled_weights_path()
    assert path is not None, "the compact weights must ship inside the package"
    return load_generator(path)


def test_the_patch_sweep_measures_what_it_claims():
    # An identity-like upscaler (nearest x4) keeps every colour within the noise; one that drops blue does not.
    def nearest(lq):
        return lq.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)

    colours = cube_colours((0, 255))
    assert len(cube_colours()) == 125 and len(colours) == 8
    assert max(e.error for e in patch_errors(nearest, colours)) < 1.5  # noise clipped at 0 and 255: ~0.8

    def no_blue(lq):
        out = nearest(lq).clone()
        out[:, :, 2] *= 0.5
        return out

    errors = {e.colour: e.error for e in patch_errors(no_blue, colours)}
    assert errors[(0, 0, 255)] > 100 and errors[(255, 255, 0)] < 1.5
    clips = flat_clips([(10, 20, 30)], size=16, frames=3)
    assert clips.shape == (1, 3, 3, 16, 16) and abs(float(clips[0, :, 2].mean()) * 255 - 30) < 1.0


@pytest.mark.parametrize("strength", [None, 0.5, 1.0])
def test_bundled_model_keeps_every_colour_of_the_cube(bundled, strength):
    """The default (its fidelity end), and blends towards its GAN fine-tune up to the GAN model itself
    (`--strength`)."""
    from realbasicvsr.weights.strength import load_upscale_model

    model = bundled if strength is None else load_upscale_model(bundled_weights_path(), strength=strength)[0]
    errors = patch_errors(lambda lq: model(lq)[0], cube_colours())
    report = summary(errors, TOLERANCE)
    bad = [(e.colour, tuple(round(v) for v in e.output)) for e in errors if e.error > TOLERANCE]
    assert not bad, f"colours moved by more than {TOLERANCE} levels: {bad[:10]} ({report})"


def _write_ffv1(path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_colour_bars_survive_the_upscale_command(tmp_path, bundled):
    from realbasicvsr.cli import main

    frames = np.stack([bars_image(seed=seed) for seed in range(6)])
    source, output = tmp_path / "bars.mkv", tmp_path / "bars_x4.mkv"
    _write_ffv1(source, frames)
    assert main(["upscale", str(source), str(output), "--codec", "ffv1"]) == 0
    decoded = _decode(output)
    assert len(decoded) == len(frames) and decoded[0].shape == (96 * 4, 128 * 4, 3)
    means = np.array(bar_means(decoded[len(decoded) // 2]))
    moved = np.abs(means - np.array(BARS, dtype=np.float64)).max(axis=1)
    assert moved.max() <= TOLERANCE, {BARS[i]: tuple(np.round(means[i])) for i in np.flatnonzero(moved > TOLERANCE)}


def test_the_model_alone_reproduces_the_library_result_on_bars(bundled):
    # The command above and the library agree: what the guard measures is the model, not the colour conversion.
    image = torch.from_numpy(bars_image()).permute(2, 0, 1).float().div(255)
    with torch.no_grad():
        out = bundled(image[None, None].repeat(1, 5, 1, 1, 1))[0][0, 2].clamp(0, 1)
    means = np.array(bar_means((out.permute(1, 2, 0).numpy() * 255).round()))
    assert np.abs(means - np.array(BARS, dtype=np.float64)).max() <= TOLERANCE
