"""Export the model as ONNX step graphs with explicit state (clean, flow, backward step, forward step with the x4
reconstruction, forward feature) and realbasicvsr_onnx.json, which says how to drive them (docs/export.md).

Examples:
  realbasicvsr export-onnx --weights realbasicvsr_x4 onnx/                 (dynamic height and width)
  realbasicvsr export-onnx --weights W.safetensors onnx_320/ --size 320x180 --verify clip.mp4
  realbasicvsr upscale in.mp4 out.mp4 --backend onnxruntime --onnx onnx/
"""

from __future__ import annotations

import argparse

from realbasicvsr.commands.upscale_flags import size_type

# Library setting (`UserError.option`) -> the flag that sets it, for the one-line error (cli.one_line).
FLAGS = {
    "weights": "--weights",
    "opset": "--opset",
    "size": "--size",
    "overwrite": "--overwrite",
    "cleaning_passes": "--cleaning-passes",
    "exporter": "--exporter",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("out_dir", help="the folder to write the graphs and realbasicvsr_onnx.json into (new or empty)")
    parser.add_argument("--weights", help="weights file or known name (default: the default weights of upscale)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 16 or newer (GridSample); default 17")
    parser.add_argument("--fp16", action="store_true", help="half-precision graphs (for GPU execution providers)")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", action="store_true", help="dynamic height and width (the default)")
    shape.add_argument("--size", type=size_type, metavar="WxH", help="fixed LR frame size, e.g. 320x180")
    parser.add_argument(
        "--cleaning-passes",
        type=int,
        metavar="N",
        help="tell hosts to clean exactly N times (default: the model's rule, one pass in practice)",
    )
    parser.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="torch's exporter: torchscript (default: seconds, native opsets) or dynamo (torch.export; slow)",
    )
    parser.add_argument("--verify", metavar="CLIP", help="then compare onnxruntime with PyTorch fp32 on this clip")
    parser.add_argument("--verify-frames", type=int, metavar="N", help="compare only the first N frames of CLIP")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.deploy.export import export_onnx
    from realbasicvsr.deploy.verify import verify_onnx
    from realbasicvsr.errors import UserError
    from realbasicvsr.weights.known import default_weights

    try:
        import onnx  # noqa: F401 (checked here for a one-line message)
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserError("export-onnx needs onnx and onnxruntime: pip install 'realbasicvsr[onnx]'") from None
    if args.verify:
        from realbasicvsr.media.read import probe

        probe(args.verify)  # a missing or unreadable clip fails before the export, not after it
    weights = args.weights if args.weights is not None else default_weights().path
    folder = export_onnx(
        weights,
        args.out_dir,
        opset=args.opset,
        fp16=args.fp16,
        size=args.size,
        cleaning_passes=args.cleaning_passes,
        overwrite=args.overwrite,
        exporter=args.exporter,
    )
    shape = "dynamic height and width" if args.size is None else f"{args.size[0]}x{args.size[1]}"
    print(f"wrote ONNX step graphs of {weights} to {folder} (opset {args.opset}, {shape})")
    if args.verify:
        report = verify_onnx(folder, weights, args.verify, max_frames=args.verify_frames)
        print(f"verified: {report.summary()}")
    return 0
