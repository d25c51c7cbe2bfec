"""Where does a RealBasicVSR model lose colours? Each stage's output on flat patches and colour bars.

    python scripts/colour_stages.py WEIGHTS [WEIGHTS ...] [--json OUT]

For each weights file: the 125 flat patches across the RGB cube (`realbasicvsr.metrics.color_patches`) measured
(a) after the cleaning module alone (the cleaned LQ that BasicVSR sees), (b) through the whole model, and (c)
through BasicVSR alone on the uncleaned input; then the 75 % colour bars through the whole model. Errors are the
worst channel's shift of a patch's mean colour, 0-255. The earlier bundled models are in git history
(docs/compact_model/colour.md says which commit holds which).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def stage_report(weights: str) -> dict[str, object]:
    from realbasicvsr.metrics.color_patches import BARS, bar_means, bars_image, cube_colours, patch_errors, summary
    from realbasicvsr.weights import load_generator

    model = load_generator(weights)
    colours = cube_colours()

    def cleaned_x4(lq: torch.Tensor) -> torch.Tensor:  # the cleaned LQ, enlarged only so the same centre is read
        return model.clean(lq).repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)

    report: dict[str, object] = {
        "weights": weights,
        "cleaned_lq": summary(patch_errors(cleaned_x4, colours)),
        "whole_model": summary(patch_errors(lambda lq: model(lq)[0], colours)),
        "basicvsr_on_uncleaned_input": summary(patch_errors(lambda lq: model.basicvsr(lq.contiguous()), colours)),
    }
    image = torch.from_numpy(bars_image()).permute(2, 0, 1).float().div(255.0)
    with torch.no_grad():
        hr, cleaned = model(image[None, None].repeat(1, 5, 1, 1, 1))
    bars_out = bar_means((hr[0, 2].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round())
    bars_clean = bar_means(cleaned[0, 2].permute(1, 2, 0).numpy() * 255.0)
    report["bars"] = {
        str(colour): {"cleaned_lq": [round(v) for v in c], "output": [round(v) for v in o]}
        for colour, c, o in zip(BARS, bars_clean, bars_out, strict=True)
    }
    report["bars_max_error"] = round(float(np.abs(np.array(bars_out) - np.array(BARS)).max()), 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", help="generator weights (release .safetensors or official .pth)")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    reports = [stage_report(w) for w in args.weights]
    text = json.dumps(reports, indent=2)
    print(text)
    if args.json:
        from realbasicvsr.media.files import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
