"""Show the known weights and whether they are cached, and what this machine can run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="also inspect this weights file: format, architecture, parameter count")


def run(args: argparse.Namespace) -> int:
    import torch

    from realbasicvsr import __version__
    from realbasicvsr.weights import KNOWN_WEIGHTS, cached_known_weights, load_generator, weights_cache_dir

    print(f"realbasicvsr {__version__}, torch {torch.__version__}")
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    print(f"devices: {', '.join(devices)}")
    from realbasicvsr.models.cpu_features import cpu_features
    from realbasicvsr.upscale.config import pick_device, resolve_dtype

    device = pick_device("auto")
    cpu = cpu_features()
    print(f"cpu: {cpu.line()}; --dtype auto here: {resolve_dtype('auto', device)} on {device}")
    print(f"weights cache: {weights_cache_dir()}")
    for name, info in KNOWN_WEIGHTS.items():
        cached = cached_known_weights(name)
        state = f"cached at {cached}" if cached else "not cached (downloaded on first use)"
        print(f"  {name}: {info.description}; {state}")
    from realbasicvsr.weights import bundled_description
    from realbasicvsr.weights.strength import bundled_gan_path

    gan = "; with its GAN fine-tune for --strength" if bundled_gan_path() is not None else ""
    print(f"  bundled: {bundled_description()}{gan}")
    if args.weights:
        model = load_generator(args.weights, download=False)
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.weights}: {model.config}, {params:,} parameters")
    return 0
