"""The Preview tab: choose a video (drop it, or type a path on this machine), pick a moment, set the look, and see
`preview_video`'s result: a before/after slider of the middle frame (a 1:1 crop of its most detailed region and
the whole frame, cut from `compare.png`), the wipe clip, the result clip and the projected time and size.

The callbacks are plain functions of the controls' values (`inspect_video`, `run_preview`), so they can be tested
without a browser; `build_preview_tab` lays the components out and returns the ones the Jobs tab reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realbasicvsr.errors import UserError
from realbasicvsr.webapp.settings import CODECS, COLOR_FIXES, CONTAINERS, page_error, settings_from_controls

PREVIEWS = "previews"


@dataclass(frozen=True)
class PreviewControls:
    """The components the Jobs tab shares: the video (upload or path) and the settings, in `settings_from_controls`
    order."""

    upload: Any
    path: Any
    settings: list[Any]


def chosen_input(upload: str | None, path: str | None) -> Path:
    """The video the page points at: a typed path wins over an upload."""
    if path and path.strip():
        return Path(path.strip()).expanduser()
    if upload:
        return Path(upload)
    raise UserError("choose a video first: drop one on the Video box, or type its path on this machine")


def describe_video(source: Path) -> tuple[str, float]:
    """(a Markdown line on the probed video, its duration in seconds); a file that is not a video raises."""
    from realbasicvsr.media.read import probe

    info = probe(source)
    if info.kind != "video":
        raise UserError(f"{source} is not a video (it reads as {info.kind}); choose a video file", option="input")
    fps = float(info.fps) if info.fps else None
    duration = info.duration or 0.0
    parts = [f"**{source.name}**: {info.width}x{info.height}", f"{info.codec}, {info.bit_depth}-bit"]
    if info.num_frames is not None:
        parts.append(f"{info.num_frames} frames")
    if fps:
        parts.append(f"{fps:.3g} frames/s")
    if duration:
        parts.append(f"{duration:.1f} s")
    if info.hdr is not None:
        parts.append("HDR")
    return ", ".join(parts), duration


def inspect_video(upload: str | None, path: str | None) -> tuple[str, Any]:
    """The callback of a new video: its description, and the Moment slider fitted to it (at its middle)."""
    import gradio as gr

    if not upload and not (path and path.strip()):
        return "", gr.update()
    try:
        text, duration = describe_video(chosen_input(upload, path))
    except UserError as error:
        return error_text(error), gr.update()
    return text, gr.update(maximum=max(duration, 0.1), value=round(duration / 2, 2))


def error_text(error: UserError) -> str:
    return f"**error:** {page_error(error)}"


def slider_images(compare_png: Path, width: int, height: int) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """((bicubic crop, result crop), (bicubic frame, result frame)) cut from a one-strength `compare.png`."""
    from PIL import Image

    from realbasicvsr.preview import compare

    plan = compare.layout(1, width, height)
    with Image.open(compare_png) as sheet:
        sheet.load()
        rows = ((compare.LABEL_HEIGHT, plan.crop_height),
                (compare.LABEL_HEIGHT + plan.crop_height + compare.GAP, plan.frame_height))  # fmt: skip
        pairs = []
        for top, tall in rows:
            cells = []
            for column in range(2):
                left = compare.GAP + column * (plan.column_width + compare.GAP)
                cells.append(sheet.crop((left, top, left + plan.column_width, top + tall)))
            pairs.append((cells[0], cells[1]))
    return pairs[0], pairs[1]


def run_preview(folder: Path, upload: str | None, path: str | None, moment: float, frames: float,
                *controls: Any, progress: Any = None) -> tuple[Any, ...]:  # fmt: skip
    """Run `preview_video` into `folder/previews/<video name>/` (replacing that video's previous preview).
    Returns (status, detail pair, whole-frame pair, wipe clip, result clip, projection); an error fills only the
    status, in the library's words."""
    from realbasicvsr.media.files import human_bytes
    from realbasicvsr.preview import preview_video
    from realbasicvsr.preview.projection import human_seconds

    try:
        source = chosen_input(upload, path)
        settings = settings_from_controls(*controls)
        options, encode, segments = settings.configs()

        def report(done: int, total: int | None) -> None:
            if progress is not None:
                progress((done, total), desc="preview", unit="frames")

        result = preview_video(
            source, folder / PREVIEWS / (source.stem or "video"), weights=settings.weights, options=options,
            at=float(moment), frames=int(frames), encode=encode, overwrite=True, progress=report,
            segments=segments, container=settings.container,
        )  # fmt: skip
    except UserError as error:
        return error_text(error), None, None, None, None, ""
    detail, whole = slider_images(result.compare, result.width, result.height)
    first = result.results[0]
    projection = (
        f"Frames {result.first_frame} to {result.last_frame} at **{first.fps:.2f} frames/s** "
        f"({result.width}x{result.height}). The whole video ({result.num_frames} frames) would take about "
        f"**{human_seconds(first.projected_seconds)}** and **{human_bytes(first.projected_bytes)}** with these "
        f"settings. Files: `{result.out_dir}`"
    )
    return result.summary(), detail, whole, str(first.wipe), str(first.result), projection


def build_settings(gr: Any) -> list[Any]:
    """The look, size and encoding controls, in `settings_from_controls` order."""
    with gr.Accordion("Settings (the same for the preview and the job)", open=True):
        with gr.Row():
            weights = gr.Textbox(label="Weights", placeholder="default: the official release if cached, else the "
                                 "bundled compact model", elem_id="weights", scale=3)  # fmt: skip
        with gr.Row():
            use_strength = gr.Checkbox(label="Blend strength", value=False, elem_id="use-strength")
            strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Strength (0 = faithful, 1 = GAN look)")
            cleaning = gr.Slider(0, 4, value=1, step=1, label="Cleaning passes")
            grain = gr.Slider(0, 10, value=0, step=0.5, label="Grain")
            color_fix = gr.Radio(list(COLOR_FIXES), value="off", label="Colour fix")
        with gr.Row():
            outscale = gr.Textbox(label="Scale (default 4)", placeholder="4", elem_id="outscale")
            size = gr.Textbox(label="Size (WIDTHxHEIGHT, instead of the scale)", elem_id="size")
            codec = gr.Dropdown(list(CODECS), value="auto", label="Codec")
            crf = gr.Textbox(label="Quality (CRF, lower is better)", placeholder="the codec's default", elem_id="crf")
            container = gr.Dropdown(list(CONTAINERS), value=CONTAINERS[0], label="Container")
    return [weights, use_strength, strength, cleaning, grain, color_fix, outscale, size, codec, crf, container]


def build_preview_tab(gr: Any, folder: Path) -> PreviewControls:
    """The Preview tab's components and events (inside a `gr.Tab`)."""
    with gr.Row():
        upload = gr.File(label="Video (drop it here)", file_types=["video"], type="filepath", elem_id="upload")
        with gr.Column():
            path = gr.Textbox(label="...or a path on this machine", elem_id="path")
            info = gr.Markdown(elem_id="video-info")
    with gr.Row():
        moment = gr.Slider(0, 1, value=0, step=0.01, label="Moment (seconds from the start)", elem_id="moment")
        frames = gr.Slider(2, 120, value=30, step=1, label="Frames to preview", elem_id="frames")
    settings = build_settings(gr)
    button = gr.Button("Preview", variant="primary", elem_id="preview-button")
    status = gr.Markdown(elem_id="preview-status")
    with gr.Row():
        detail = gr.ImageSlider(label="Before / after: 1:1 detail", format="png", type="pil", elem_id="detail")
        whole = gr.ImageSlider(label="Before / after: whole frame", format="png", type="pil", elem_id="whole")
    projection = gr.Markdown(elem_id="projection")
    with gr.Row():
        wipe = gr.Video(label="Wipe clip (bicubic left of the divider)", height=360, elem_id="wipe")
        clip = gr.File(label="Result clip (your encoder settings)", elem_id="result-clip")

    for source in (upload.change, path.submit):
        source(inspect_video, [upload, path], [info, moment])

    tracker = gr.Progress()  # Gradio finds the bar by this default value

    def preview(upload_value, path_value, moment_value, frames_value, *controls, progress=tracker):
        return run_preview(folder, upload_value, path_value, moment_value, frames_value, *controls,
                           progress=progress)  # fmt: skip

    button.click(preview, [upload, path, moment, frames, *settings],
                 [status, detail, whole, wipe, clip, projection])  # fmt: skip
    return PreviewControls(upload, path, settings)
