"""Command-line entry point: `realbasicvsr <command> ...`.

Each command lives in `realbasicvsr.commands.<name>` and provides `add_arguments(parser)` and `run(args) -> int`,
and may provide `FLAGS`: setting name -> the flag that sets it, so that a library error about a setting
(`UserError.option`) is printed with the flag to change. Command modules import their heavy dependencies inside
`run`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from realbasicvsr import __version__
from realbasicvsr.errors import UserError, one_line

# name -> one-line help. A literal table (no registry): add a line here when a command module is added.
COMMANDS: dict[str, str] = {
    "degrade": "make a realistic low-quality video from a clean one (training degradations, seedable)",
    "evaluate": "score frames with MATLAB-compatible NIQE, BRISQUE, NRQM, PI, PSNR and SSIM",
    "info": "show the known weights, where they are cached and what this machine can run",
    "train": "train or fine-tune (stage1, stage2, tiny or a config file); DDP under torchrun",
    "make-dataset": "build a training clip folder from photographs and clips bundled in PyPI packages (offline)",
    "export": "write a training run's EMA generator as release weights (.safetensors)",
    "export-onnx": "export the model as ONNX step graphs with explicit state, for ONNX Runtime, TensorRT and C++ hosts",
    "pretrain-spynet": "pretrain the SPyNet optical flow on synthetic motion over bundled photographs (no download)",
    "prepare": "cut large training frames into overlapping sub-images (480x480, step 240)",
    "preview": "try the upscale settings on a few seconds: before/after image, wipe video, projected time and size",
    "upscale": "upscale a video, image folder or image (streaming; audio, fps and timestamps kept)",
    "ui": "local web app: drop a video, compare before/after, run the upscale as a job with progress",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realbasicvsr",
        description="RealBasicVSR real-world video super-resolution.",
    )
    parser.add_argument("--version", action="version", version=f"realbasicvsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"realbasicvsr.commands.{name.replace('-', '_')}")
        command_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command_parser)
        command_parser.set_defaults(
            _run=module.run, _flags=getattr(module, "FLAGS", {}), _kept=getattr(module, "kept_after_stop", None)
        )
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (docker stop, systemd, `timeout`, a closed terminal). Raised in the main thread like
    KeyboardInterrupt, so every cleanup path (`except BaseException`, `finally`) removes partial outputs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    prefix = f"realbasicvsr {args.command}"
    try:
        with _terminate_as_exception():
            return int(args._run(args) or 0)
    except UserError as error:
        full = _with_kept(disk_full(error, _output_of(args)), args)
        text = full if full is not None else one_line(error, args._flags)
        print(f"{prefix}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        kept = args._kept(args) if args._kept else None  # e.g. upscale's finished segments, kept for --resume
        print(f"{prefix}: stopped by {signal.Signals(stop.signum).name}; {kept or 'partial output was removed'}",
              file=sys.stderr)  # fmt: skip
        return 128 + stop.signum
    except BrokenPipeError:  # `realbasicvsr info | head`: the reader left; say nothing more, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return 141
    except (OSError, RuntimeError) as error:
        full = _with_kept(disk_full(error, _output_of(args)), args)
        if full is None:
            raise  # a bug, not a situation the user can fix: the traceback is the report
        print(f"{prefix}: error: {full}", file=sys.stderr)
        return 1


def _with_kept(message: str | None, args: argparse.Namespace) -> str | None:
    """A full-disk message, plus what the command kept to resume from (upscale's finished segments)."""
    kept = args._kept(args) if message is not None and args._kept else None
    return f"{message}; {kept}" if kept else message


def _output_of(args: argparse.Namespace) -> object:
    """The path a command writes (its `output`, `--out` or `dst`), if it has one."""
    return getattr(args, "output", None) or getattr(args, "out", None) or getattr(args, "dst", None)


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into `Terminated` while a command runs (training installs its own graceful SIGTERM
    handler around its loop and restores this one after)."""
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:  # Windows has no SIGHUP
            continue
        with contextlib.suppress(ValueError):  # not the main thread (main() called from a thread): leave them
            previous[sig] = signal.signal(sig, _raise_terminated)
    global _MAIN_PID
    _MAIN_PID = os.getpid()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_terminated(signum: int, frame: object) -> None:
    # A second signal of this kind stops at once (as a second Ctrl-C does in training): the user insists.
    signal.signal(signum, signal.SIG_DFL)
    if os.getpid() != _MAIN_PID:
        # A forked child (a DataLoader worker) inherited this handler: it must die as by default, since raising
        # there leaves it waiting forever on its queue's feeder thread when its parent terminates it.
        os.kill(os.getpid(), signum)
        return
    raise Terminated(signum)


_MAIN_PID = os.getpid()


# torch.save reports a full disk as a RuntimeError without an errno ("... unexpected pos 1234 vs 1200").
_EDQUOT = getattr(errno, "EDQUOT", -1)  # not on Windows
_DISK_FULL_TEXT = ("no space left on device", "unexpected pos", "file write failed")


def _place(filename: object, output: object) -> str:
    """Where the disk is full, as the user knows it: the folder of the command's output when the failing file lies
    in it (the temporary names written there are an implementation detail), else the failing file, else the
    device of the output."""
    if filename is None:
        return f"the device of {output}" if output else "the device"
    path = Path(os.fsdecode(filename)) if isinstance(filename, (str, bytes, os.PathLike)) else Path(str(filename))
    if output:
        folder = Path(os.fsdecode(output)).resolve().parent
        if folder in path.resolve().parents:
            return str(folder)
    return str(path)


def disk_full(error: BaseException, output: object = None) -> str | None:
    """The one-line message for a full disk when `error` (or an exception it was raised from) is one, else None.
    `output` (the command's output path) names the place when the error does not (torch.save's does not)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        text = str(current).lower()
        if code in (errno.ENOSPC, _EDQUOT) or (
            isinstance(current, (OSError, RuntimeError)) and any(t in text for t in _DISK_FULL_TEXT)
        ):
            place = _place(getattr(current, "filename", None), output)
            quota = " (disk quota exceeded)" if code == _EDQUOT else ""
            return f"no space left on {place}{quota}: free some space (partial output was removed)"
        current = current.__cause__ or current.__context__
    return None
