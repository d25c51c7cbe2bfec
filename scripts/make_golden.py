"""Record the golden tensors of tests/golden/ from the current code (fp32, one thread).

    python scripts/make_golden.py            # writes tests/golden/golden.json and tests/golden/golden.safetensors
    python scripts/make_golden.py --check    # only compares with what is recorded (what tests/test_golden.py does)

Run it only when an output is meant to change, and say why in the commit: the golden files pin the outputs of the
model, `iter_frames`, channels_last and the streaming `Upscaler` (windows, stripes, SPyNet cap) bit for bit. The
cases themselves are in tests/golden_cases.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from golden_cases import (
    GOLDEN_DIR,
    cases,
    digest,
    environment,
    make_clip,
    make_model,
    subset,
    to_lq,
    weights_digest,
)
from realbasicvsr.media.files import write_bytes_atomic, write_text_atomic


def record() -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    """(the JSON summary, the tensors to store) of every golden case, computed now."""
    torch.manual_seed(0)
    clip = make_clip()
    lq = to_lq(clip)
    summary: dict[str, object] = {
        "environment": environment(),
        "weights_sha256": weights_digest(make_model()),
        "input_sha256": digest(clip),
        "cases": {},
    }
    tensors = {"input": clip}
    for name, case in cases().items():
        outputs = {}
        for key, value in case(lq).items():
            entry: dict[str, object] = {"shape": list(value.shape), "dtype": str(value.dtype), "sha256": digest(value)}
            if value.numel() <= 16:
                entry["values"] = value.reshape(-1).tolist()
            else:
                tensors[f"{name}.{key}"] = subset(value)
            outputs[key] = entry
        summary["cases"][name] = outputs
        print(f"{name}: " + ", ".join(f"{k} {tuple(v['shape'])}" for k, v in outputs.items()))
    return summary, tensors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the recorded files instead of writing")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the recording is made (and checked) single-threaded: reductions then split the same
    summary, tensors = record()
    json_path, tensor_path = GOLDEN_DIR / "golden.json", GOLDEN_DIR / "golden.safetensors"
    if args.check:
        recorded = json.loads(json_path.read_text())
        differ = [n for n in summary["cases"] if recorded["cases"].get(n) != summary["cases"][n]]
        print("all cases equal the recorded ones" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    text = re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(summary, indent=1)
    )
    write_text_atomic(json_path, text + "\n")  # lists (shapes, values) on one line each
    write_bytes_atomic(tensor_path, save(tensors))
    print(f"wrote {json_path} and {tensor_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
