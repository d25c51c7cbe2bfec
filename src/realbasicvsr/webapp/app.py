"""The Gradio app: the page (`build_app`), its privacy settings and `serve`.

Privacy and safety defaults: the server binds to 127.0.0.1 unless told otherwise (the command asks for an explicit
flag), Gradio's telemetry and update check are off (`analytics_enabled=False`, GRADIO_ANALYTICS_ENABLED=False,
HF_HUB_DISABLE_TELEMETRY=1), no share link is made, the theme's fonts are served locally. Uploads and the copies
Gradio makes to serve files live in a temporary folder of this app, removed when it stops; everything else
(previews, outputs, the jobs' records) is written into the chosen output folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realbasicvsr.errors import UserError

TITLE = "RealBasicVSR video upscaler"
PRIVACY_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_SHARE": "False"}


def load_gradio(temp_dir: Path | None = None) -> Any:
    """Import Gradio with telemetry off (and its upload folder in `temp_dir`); one line when it is not installed."""
    os.environ.update(PRIVACY_ENV)
    if temp_dir is not None:
        os.environ["GRADIO_TEMP_DIR"] = str(temp_dir)
    try:
        import gradio
    except ImportError:
        raise UserError(
            "the web app needs Gradio, which the base install leaves out: pip install 'realbasicvsr[ui]'"
        ) from None
    return gradio


def build_app(output_folder: str | Path, gr: Any | None = None) -> tuple[Any, Any]:
    """(the Gradio Blocks of the page, its `JobStore`) for `output_folder` (created)."""
    from realbasicvsr.webapp.jobs import JobStore
    from realbasicvsr.webapp.jobs_tab import build_jobs_tab
    from realbasicvsr.webapp.preview_tab import build_preview_tab

    gr = gr or load_gradio()
    store = JobStore(output_folder)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nUpscale old videos x4 with RealBasicVSR, on this machine. Output folder: "
                    f"`{store.folder}`")  # fmt: skip
        with gr.Tab("Preview", elem_id="tab-preview"):
            controls = build_preview_tab(gr, store.folder)
        with gr.Tab("Jobs", elem_id="tab-jobs"):
            build_jobs_tab(gr, store, controls)
    return app, store


@dataclass
class Server:
    """A running app: `url`, and `close()` (cancels its running jobs, stops the server, removes its temporary
    folder)."""

    url: str
    app: Any
    store: Any
    temp_dir: Path
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        try:
            self.store.stop_all()
            self.app.close()
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def wait(self) -> None:
        """Block until Ctrl-C (KeyboardInterrupt propagates after `close`)."""
        try:
            while not self.closed.wait(0.5):
                pass
        finally:
            self.close()


def serve(output_folder: str | Path, host: str = "127.0.0.1", port: int | None = 7860, quiet: bool = False) -> Server:
    """Start the app on `host`:`port` without blocking; the caller checks that a non-local host was asked for."""
    temp_dir = Path(tempfile.mkdtemp(prefix="realbasicvsr-ui-"))
    try:
        gr = load_gradio(temp_dir)
        app, store = build_app(output_folder, gr)
        app.queue(default_concurrency_limit=1)  # one preview at a time: they share the CPU or the GPU
        try:
            app.launch(
                server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                quiet=quiet, show_error=True, ssr_mode=False, mcp_server=False, pwa=False,
                allowed_paths=[str(store.folder)],  # the previews and results the page shows and offers
            )  # fmt: skip
        except OSError as error:
            if "port" not in str(error).lower():
                raise
            raise UserError(
                f"port {port} of {host} is in use (another app?); choose another one", option="port"
            ) from None
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return Server(app.local_url, app, store, temp_dir)
