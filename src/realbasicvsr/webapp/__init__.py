"""The local web app (`realbasicvsr ui`): a thin face on the library, served on the user's own machine.

- `settings.py`: the page's controls as one frozen `Settings` (the same look, size and codec settings as the
  `upscale` and `preview` commands), the library configs they make, and errors in the page's words;
- `jobs.py`: the jobs of an output folder (one small JSON each), started as worker processes, cancelled, resumed;
- `worker.py`: the worker process: `upscale_video` with its progress callback written to the job's JSON;
- `preview_tab.py`, `jobs_tab.py`: the two tabs (Gradio components and their callbacks);
- `app.py`: the Gradio Blocks, the privacy settings (no telemetry, no share link) and `serve`.

Gradio is imported only inside this wing (`app.load_gradio`), so the base install does not need it.
"""
