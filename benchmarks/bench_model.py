"""Forward time per LR frame of the full c64b20 RealBasicVSR at 180x320 on CPU, and its efficiency.

Variants (fp32 / bf16 autocast x NCHW / channels_last, and fp32 channels_last without the fused convolutions of
realbasicvsr.models.fused) run interleaved, round after round, and medians are
reported. A 3x3 64->64 convolution on a (1, 64, 180, 320) tensor gives the machine's achievable conv throughput;
the model's achieved GFLOP/s (multiply-adds counted by hooks on every convolution, x2) is reported as a ratio of it.

    python benchmarks/bench_model.py [--frames 3] [--repeats 3] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.models.fused import set_fused_convolutions


def count_conv_macs(model: nn.Module, lq: torch.Tensor) -> int:
    """Multiply-adds of every Conv2d in one forward (a real run with hooks; weights do not matter)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    set_fused_convolutions(False)  # the fused kernels bypass the modules' forward, and with it the hooks
    try:
        with torch.inference_mode():
            model(lq)
    finally:
        set_fused_convolutions(True)
    for handle in handles:
        handle.remove()
    return total


def timed(fn, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@contextmanager
def variant_context(variant: str):
    """`dtype-format[-unfused]`: bf16 runs under CPU autocast; `-unfused` turns the fused convolutions off."""
    parts = variant.split("-")
    set_fused_convolutions("unfused" not in parts[2:])
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16) if parts[0] == "bf16" else nullcontext():
            yield
    finally:
        set_fused_convolutions(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every variant runs once per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants",
        default="fp32-nchw,fp32-cl,fp32-cl-unfused,bf16-nchw,bf16-cl",
        help="dtype-format[-unfused]: fp32|bf16 x nchw|cl; -unfused turns the fused CPU convolutions off",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    h, w, t = args.height, args.width, args.frames
    lq = torch.rand(1, t, 3, h, w)
    models = {"nchw": RealBasicVSR(ModelConfig()).eval(), "cl": RealBasicVSR(ModelConfig()).eval()}
    models["cl"].load_state_dict(models["nchw"].state_dict())
    models["cl"].use_channels_last()
    macs = count_conv_macs(models["nchw"], lq)
    gflop_per_frame = 2 * macs / t / 1e9

    x = torch.rand(1, 64, h, w)
    conv = nn.Conv2d(64, 64, 3, 1, 1)
    conv_cl = nn.Conv2d(64, 64, 3, 1, 1).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    conv_gflop = 2 * 64 * 64 * 9 * h * w / 1e9

    variants = args.variants.split(",")
    outputs: dict[str, torch.Tensor] = {}
    times: dict[str, list[float]] = {v: [] for v in variants}
    conv_times: dict[str, list[float]] = {"fp32-nchw": [], "fp32-cl": [], "bf16-cl": []}
    with torch.inference_mode():
        for variant in variants:  # warm-up (oneDNN primitive creation) and outputs for the accuracy check
            with variant_context(variant):
                outputs[variant] = models[variant.split("-")[1]](lq)[0].float()
        for round_index in range(args.repeats):
            order = variants[round_index % len(variants) :] + variants[: round_index % len(variants)]
            for variant in order:
                model = models[variant.split("-")[1]]
                with variant_context(variant):
                    times[variant].append(timed(lambda m=model: m(lq)) / t)
            conv_times["fp32-nchw"].append(timed(lambda: conv(x), 10))
            conv_times["fp32-cl"].append(timed(lambda: conv_cl(x_cl), 10))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                conv_times["bf16-cl"].append(timed(lambda: conv_cl(x_cl), 10))

    conv_peak = {k: conv_gflop / statistics.median(v) for k, v in conv_times.items()}
    fp32_peak = max(conv_peak["fp32-nchw"], conv_peak["fp32-cl"])
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}")
    print(
        f"input (1, {t}, 3, {h}, {w}); counted {gflop_per_frame:.1f} GFLOP per LR frame "
        f"({macs / t / h / w / 1e6:.2f} M MAC/px)"
    )
    for k, v in conv_peak.items():
        print(f"3x3 conv 64->64 {k}: {v:.1f} GFLOP/s")
    reference = outputs.get("fp32-nchw")
    results = {}
    for variant in variants:
        med = statistics.median(times[variant])
        achieved = gflop_per_frame / med
        diff = (outputs[variant] - reference).abs().max().item() if reference is not None else float("nan")
        results[variant] = {
            "s_per_frame": med,
            "gflops": achieved,
            "ratio_to_fp32_conv_peak": achieved / fp32_peak,
            "max_abs_diff_to_fp32_nchw": diff,
            "all_s_per_frame": times[variant],
        }
        print(
            f"{variant:16s} {med:6.3f} s/frame  {achieved:6.1f} GFLOP/s  {achieved / fp32_peak:5.2f} of fp32 conv peak"
            f"  max|diff| to fp32-nchw {diff:.2e}"
        )
    if "fp32-cl" in results and "bf16-cl" in results:
        speedup = results["fp32-cl"]["s_per_frame"] / results["bf16-cl"]["s_per_frame"]
        print(f"bf16-cl speed-up over fp32-cl: {speedup:.2f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"conv_peak_gflops": conv_peak, "gflop_per_frame": gflop_per_frame, "results": results},
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()
