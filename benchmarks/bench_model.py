"""Forward time per LR frame of the full c64b20 RealBasicVSR at 180x320 on CPU, and its efficiency.

Variants (fp32 / bf16 autocast x NCHW / channels_last, and fp32 channels_last without the fused convolutions of
realbasicvsr.models.fused) run interleaved, round after round, and medians are
reported. A 3x3 64->64 convolution on a (1, 64, 180, 320) tensor gives the machine's achievable conv throughput;
the model's achieved GFLOP/s (multiply-adds counted by hooks on every convolution, x2) is reported as a ratio of it.

    python benchmarks/bench_model.py [--frames 3] [--repeats 3] [--threads 2] [--json out.json]
    python benchmarks/bench_model.py --stages [--variants fp32-cl]     # + where the time goes, stage by stage

`--stages` times each stage of the forward (cleaning, SPyNet, flow warps, the two propagation trunks, the
reconstruction = fusion + two upsamplings + conv_hr + conv_last, and the rest: concatenations and copies) with
timers around the modules and methods, and divides each stage's counted convolution work by its time: a stage far
below the conv peak is memory-bound, and that is where the fp32 time beyond the convolutions goes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realbasicvsr.models.basicvsr as basicvsr_module
from machine import machine_line
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.models.fused import set_fused_convolutions

# Stage -> the conv modules whose work it counts (name prefixes) for --stages.
STAGES = {
    "cleaning": ("image_cleaning.",),
    "spynet": ("basicvsr.spynet.",),
    "flow warps": (),
    "backward trunk": ("basicvsr.backward_resblocks.",),
    "forward trunk": ("basicvsr.forward_resblocks.",),
    "reconstruction": ("basicvsr.fusion", "basicvsr.upsample", "basicvsr.conv_hr", "basicvsr.conv_last"),
}


def conv_macs(model: nn.Module, lq: torch.Tensor) -> dict[str, int]:
    """Multiply-adds of each Conv2d (by module name) in one forward: a real run with hooks, weights do not matter."""
    macs: dict[str, int] = {}

    def hook(name: str, module: nn.Conv2d, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        macs[name] = macs.get(name, 0) + output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [
        m.register_forward_hook(lambda m, _inputs, out, name=name: hook(name, m, out))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    set_fused_convolutions(False)  # the fused kernels bypass the modules' forward, and with it the hooks
    try:
        with torch.inference_mode():
            model(lq)
    finally:
        set_fused_convolutions(True)
        for handle in handles:
            handle.remove()
    return macs


def macs_by_stage(macs: dict[str, int]) -> dict[str, int]:
    """`conv_macs` summed over each stage's modules (`STAGES` prefixes)."""
    return {
        stage: sum(v for name, v in macs.items() if any(name.startswith(p) for p in prefixes))
        for stage, prefixes in STAGES.items()
    }


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


@contextmanager
def stage_timers(model: RealBasicVSR, seconds: dict[str, float]):
    """Accumulate wall time per stage into `seconds` while the block runs (stages do not nest)."""
    net = model.basicvsr
    modules = {"cleaning": model.image_cleaning, "spynet": net.spynet,
               "backward trunk": net.backward_resblocks, "forward trunk": net.forward_resblocks}  # fmt: skip
    started: dict[str, float] = {}
    handles = []
    for stage, module in modules.items():
        handles.append(
            module.register_forward_pre_hook(lambda *_, s=stage: started.__setitem__(s, time.perf_counter()))
        )
        handles.append(module.register_forward_hook(lambda *_, s=stage: _add(seconds, s, started[s])))

    def timed_call(stage: str, function):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                _add(seconds, stage, start)

        return call

    original_warp = basicvsr_module.flow_warp
    basicvsr_module.flow_warp = timed_call("flow warps", original_warp)
    model.basicvsr.reconstruct = timed_call("reconstruction", model.basicvsr.reconstruct)
    try:
        yield
    finally:
        basicvsr_module.flow_warp = original_warp
        del model.basicvsr.reconstruct  # back to the class's method
        for handle in handles:
            handle.remove()


def _add(seconds: dict[str, float], stage: str, start: float) -> None:
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def profile_stages(models: dict[str, RealBasicVSR], lq: torch.Tensor, variants: list[str], repeats: int,
                   conv_peak: float, macs: dict[str, int]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Per variant: seconds per frame of each stage (medians over `repeats`), and their share and efficiency;
    `macs` is `conv_macs` of the model."""
    t = lq.shape[1]
    macs = macs_by_stage(macs)
    report: dict[str, dict[str, float]] = {}
    for variant in variants:
        model = models[variant.split("-")[1]]
        runs: list[dict[str, float]] = []
        totals = []
        with torch.inference_mode(), variant_context(variant):
            model(lq)  # warm-up
            for _ in range(repeats):
                seconds: dict[str, float] = {}
                with stage_timers(model, seconds):
                    totals.append(timed(lambda m=model: m(lq)))
                runs.append(seconds)
        total = statistics.median(totals) / t
        print(f"\n{variant}: {total:.3f} s per frame, by stage (fp32 conv peak {conv_peak:.1f} GFLOP/s)")
        print(f"  {'stage':16s} {'s/frame':>8s} {'share':>6s} {'GFLOP/frame':>12s} {'GFLOP/s':>8s} {'of peak':>7s}")
        rows = {}
        for stage in [*STAGES, "rest"]:
            per_frame = (
                statistics.median([r.get(stage, 0.0) for r in runs]) / t
                if stage != "rest"
                else total - sum(rows[s]["s_per_frame"] for s in STAGES)
            )
            gflop = 2 * macs.get(stage, 0) / t / 1e9
            rate = gflop / per_frame if per_frame > 0 and gflop else 0.0
            rows[stage] = {"s_per_frame": per_frame, "gflop_per_frame": gflop, "gflops": rate}
            print(f"  {stage:16s} {per_frame:8.3f} {100 * per_frame / total:5.1f}% {gflop:12.2f} {rate:8.1f} "
                  f"{rate / conv_peak:7.2f}")  # fmt: skip
        report[variant] = rows
    return report


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
    parser.add_argument("--stages", action="store_true", help="also time each stage of the forward (see above)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    h, w, t = args.height, args.width, args.frames
    lq = torch.rand(1, t, 3, h, w)
    models = {"nchw": RealBasicVSR(ModelConfig()).eval(), "cl": RealBasicVSR(ModelConfig()).eval()}
    models["cl"].load_state_dict(models["nchw"].state_dict())
    models["cl"].use_channels_last()
    per_conv = conv_macs(models["nchw"], lq)  # one counting pass, for the whole model and for --stages
    macs = sum(per_conv.values())
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
    print(f"{machine_line()}; threads {args.threads}")
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
        bf16_ratio = gflop_per_frame / results["bf16-cl"]["s_per_frame"] / conv_peak["bf16-cl"]
        print(f"bf16-cl speed-up over fp32-cl: {speedup:.2f}x; bf16-cl reaches {bf16_ratio:.2f} of the bf16 conv peak")
    stages = {}
    if args.stages:
        stages = profile_stages(models, lq, [v for v in variants if "unfused" not in v], args.repeats, fp32_peak,
                                per_conv)  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "machine": machine_line(),
                    "conv_peak_gflops": conv_peak,
                    "gflop_per_frame": gflop_per_frame,
                    "results": results,
                    "stages": stages,
                },
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()
