"""`upscale DIR_OF_VIDEOS OUT_DIR`: the command-line face of `realbasicvsr.upscale.library` (one bar, one line per
failed or skipped file, a table at the end)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from realbasicvsr.commands.upscale import FLAGS, close_bar, one_line_warnings, progress_bar

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tqdm import tqdm

    from realbasicvsr.media.write import EncodeConfig
    from realbasicvsr.upscale.config import UpscaleConfig


def run_library(
    args: argparse.Namespace,
    options: UpscaleConfig,
    encode: EncodeConfig,
    weights: str | Path,
    extra: dict[str, object] | None = None,
) -> int:
    """`upscale DIR_OF_VIDEOS OUT_DIR`: every video of the folder, one progress bar over all of them, a line per
    failed or skipped file as it happens, then a per-file table; 1 when any file failed. `extra`: more keyword
    arguments of `upscale_video` for every file (as the single-file path passes them)."""
    import sys
    from fractions import Fraction

    from realbasicvsr.errors import UserError, one_line
    from realbasicvsr.upscale.library import FileResult, is_video_library, upscale_library

    if args.container is not None and not is_video_library(args.input):
        raise UserError(
            f"container is for a folder of videos; for {args.input} the output's extension sets the container",
            option="container",
        )
    # The bar appears with the first file, once the folders and settings were checked (an error stays one line).
    bar: tqdm | None = None
    update: Callable[[int, int | None], None] | None = None

    def progress(done: int, total: int | None) -> None:
        if update is not None:
            update(done, total)

    def say(text: str) -> None:
        if bar is not None:
            bar.write(text, file=sys.stderr)  # above the bar, which stays at the bottom
        else:
            print(text, file=sys.stderr)

    def on_file(position: int, count: int, source: Path, result: FileResult | None) -> None:
        nonlocal bar, update
        if result is None:  # a file starts
            if not args.quiet:
                if bar is None:
                    bar, update = progress_bar(False)
                bar.set_description(f"{position}/{count} {source.name}")
        elif result.status == "failed":  # said even with --quiet: it is an error
            say(f"{source.name}: failed: {one_line(result.error, FLAGS) if result.error else result.reason}")
        elif result.status == "skipped" and not args.quiet:
            why = result.reason if result.result else f"{result.output} exists (--overwrite redoes it)"
            say(f"{source.name}: skipped, {why}")

    try:
        with one_line_warnings():
            result = upscale_library(
                args.input,
                args.output,
                container=args.container,
                overwrite=args.overwrite,
                weights=weights,
                fidelity_weights=args.fidelity_weights,
                options=options,
                encode=encode,
                progress=progress,
                on_file=on_file,
                fps=Fraction(args.fps).limit_denominator(1001) if args.fps else None,
                copy_streams=not args.no_copy_streams,
                **(extra or {}),
            )
    except KeyboardInterrupt:
        close_bar(bar)
        print(
            f"interrupted: finished videos in {args.output} are kept, and so are the finished segments of the one "
            "in progress; the same command skips the former and resumes the latter",
            file=sys.stderr,
        )
        raise
    finally:
        close_bar(bar)
    if not args.quiet:
        print(result.table())
        if result.fp32_fallbacks:
            print(f"note: {result.fp32_fallbacks} window(s) were redone in fp32 after reduced precision overflowed")
    return 1 if result.failed else 0
