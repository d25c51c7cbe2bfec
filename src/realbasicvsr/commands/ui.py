"""Start the local web app: drop a video, compare before/after, run the full upscale as a job with progress.

Examples:
  realbasicvsr ui                                   (http://127.0.0.1:7860, outputs in ./realbasicvsr-output)
  realbasicvsr ui --port 8000 --output-folder ~/restored
  realbasicvsr ui --host 0.0.0.0 --allow-remote     (reachable from other machines: read the warning)

Needs the `ui` extra: pip install 'realbasicvsr[ui]'. No telemetry and no share link; stop it with Ctrl-C (its
running jobs are cancelled, their finished segments kept for Resume).
"""

from __future__ import annotations

import argparse

__all__ = ["FLAGS", "add_arguments", "run"]

FLAGS = {"host": "--host", "port": "--port", "output_folder": "--output-folder", "allow_remote": "--allow-remote"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--output-folder",
        default="realbasicvsr-output",
        metavar="DIR",
        help="where previews, outputs and the jobs' records go (created; default ./realbasicvsr-output); the app "
        "writes nowhere else but its temporary upload folder, removed when it stops",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than this machine: anyone who reaches the port can read videos and write files "
        "as you (there is no login)",
    )


def check_host(host: str, allow_remote: bool) -> str | None:
    """None for a local host; the warning for another one (allowed only with `allow_remote`)."""
    from realbasicvsr.errors import UserError

    if host in LOCAL_HOSTS:
        return None
    if not allow_remote:
        raise UserError(
            f"--host {host} makes the app reachable from other machines, and it has no login: add --allow-remote "
            "if you mean it, or leave --host out (127.0.0.1)",
            option="allow_remote",
        )
    return (
        f"warning: listening on {host}: anyone who can reach this port can upload files, run jobs, preview any "
        "video of this machine by its path and download the files of the output folder, with your rights; there "
        "is no login. Use it only on a network you trust."
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from realbasicvsr.errors import UserError
    from realbasicvsr.webapp.app import serve

    if not 1 <= args.port <= 65535:
        raise UserError(f"a port is 1 to 65535, got {args.port}", option="port")
    warning = check_host(args.host, args.allow_remote)
    if warning:
        print(warning, file=sys.stderr)
    server = serve(args.output_folder, host=args.host, port=args.port, quiet=True)
    print(f"realbasicvsr ui: {server.url} (outputs in {server.store.folder}); Ctrl-C stops it", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        print("realbasicvsr ui: stopped", file=sys.stderr)
    return 0
