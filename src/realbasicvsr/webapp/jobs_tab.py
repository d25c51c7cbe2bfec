"""The Jobs tab: start the full upscale of the Preview tab's video with its settings, watch the chosen job's
progress (frames, frames/s, ETA: its worker's JSON, read once a second), cancel, resume, download, and the list of
the output folder's jobs with their settings.

Each callback is a plain function of a `JobStore` and the components' values; `build_jobs_tab` wires them.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from realbasicvsr.errors import UserError
from realbasicvsr.webapp.jobs import Job, JobStore, clock
from realbasicvsr.webapp.preview_tab import PreviewControls, chosen_input, error_text
from realbasicvsr.webapp.settings import Settings, settings_from_controls

HEADERS = ["job", "input", "output", "state", "progress", "settings"]


def progress_html(job: Job | None) -> str:
    """The chosen job as a progress bar and its numbers (`#job-progress progress` carries the percentage)."""
    if job is None:
        return "<div id='job-progress'><p>No job yet: start one above.</p></div>"
    percent = f"{job.percent:.1f}"
    lines = [f"<b>{html.escape(job.id)}</b>: {html.escape(job.state)}", html.escape(job.progress_text())]
    if job.summary:
        lines.append(html.escape(job.summary))
    if job.message:
        lines.append(html.escape(job.message))
    body = "<br>".join(lines)
    return (
        f"<div id='job-progress' data-state='{html.escape(job.state)}' data-percent='{percent}'>"
        f"<progress max='100' value='{percent}' style='width:100%;height:1.5em'></progress>"
        f"<p>{body}</p></div>"
    )


def job_rows(jobs: list[Job]) -> list[list[str]]:
    rows = []
    for job in jobs:
        when = f" (ran {clock(job.updated - job.created)})" if job.state == "done" else ""
        rows.append([job.id, Path(job.input).name, Path(job.output).name, job.state + when,
                     f"{job.percent:.0f} %", Settings.from_dict(job.settings).describe()])  # fmt: skip
    return rows


def start_job(store: JobStore, upload: str | None, path: str | None, *controls: Any) -> tuple[str, str | None]:
    """(status, the new job's id or None)."""
    try:
        job = store.start(chosen_input(upload, path), settings_from_controls(*controls))
    except UserError as error:
        return error_text(error), None
    return f"started job {job.id}: {Path(job.input).name} -> `{job.output}`", job.id


def cancel_job(store: JobStore, job_id: str | None) -> str:
    try:
        return store.cancel(_chosen(job_id))
    except UserError as error:
        return error_text(error)


def resume_job(store: JobStore, job_id: str | None, upload: str | None, path: str | None) -> str:
    try:
        fallback = chosen_input(upload, path) if (upload or (path and path.strip())) else None
        job = store.resume(_chosen(job_id), fallback)
    except UserError as error:
        return error_text(error)
    return f"resuming job {job.id} from its finished segments"


def download_job(store: JobStore, job_id: str | None) -> tuple[str, str | None]:
    """(status, the finished output's path for the download box)."""
    try:
        job = store.get(_chosen(job_id))
    except UserError as error:
        return error_text(error), None
    if job.state != "done" or not Path(job.output).is_file():
        return f"job {job.id} has no result yet ({job.state})", None
    return f"the result is `{job.output}` on this machine", job.output


def _chosen(job_id: str | None) -> str:
    if not job_id:
        raise UserError("choose a job in the Job list first")
    return job_id


def build_jobs_tab(gr: Any, store: JobStore, controls: PreviewControls) -> None:
    """The Jobs tab's components and events (inside a `gr.Tab`)."""
    gr.Markdown(
        "Runs the full upscale of the video chosen in the Preview tab, with its settings, in a worker process: "
        f"closing the page does not stop it. Outputs and the jobs' records go to `{store.folder}`."
    )
    start = gr.Button("Start the full upscale", variant="primary", elem_id="start-job")
    status = gr.Markdown(elem_id="job-status")
    with gr.Row():
        chosen = gr.Dropdown(choices=[], label="Job", allow_custom_value=True, elem_id="job-choice", scale=2)
        cancel = gr.Button("Cancel", elem_id="cancel-job")
        resume = gr.Button("Resume", elem_id="resume-job")
        download = gr.Button("Download the result", elem_id="download-job")
    progress = gr.HTML(progress_html(None), elem_id="job-progress-box")
    result = gr.File(label="Result", elem_id="job-result")
    table = gr.Dataframe(headers=HEADERS, value=job_rows(store.jobs()), interactive=False, label="Jobs",
                         elem_id="job-table", wrap=True)  # fmt: skip
    timer = gr.Timer(1.0)

    def refresh(job_id: str | None) -> tuple[Any, Any, Any]:
        jobs = store.jobs()
        ids = [j.id for j in jobs]
        if job_id not in ids:
            job_id = ids[0] if ids else None
        job = next((j for j in jobs if j.id == job_id), None)
        return gr.update(choices=ids, value=job_id), progress_html(job), job_rows(jobs)

    def started(upload, path, *values):
        text, job_id = start_job(store, upload, path, *values)
        if job_id is None:
            return text, gr.update(), gr.update()
        return text, gr.update(choices=[j.id for j in store.jobs()], value=job_id), None

    start.click(started, [controls.upload, controls.path, *controls.settings], [status, chosen, result])
    cancel.click(lambda job_id: cancel_job(store, job_id), [chosen], [status])
    resume.click(lambda job_id, upload, path: resume_job(store, job_id, upload, path),
                 [chosen, controls.upload, controls.path], [status])  # fmt: skip
    download.click(lambda job_id: download_job(store, job_id), [chosen], [status, result])
    timer.tick(refresh, [chosen], [chosen, progress, table], show_progress="hidden")
