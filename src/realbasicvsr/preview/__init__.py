"""The preview: the exact upscale settings on a few seconds of a video, with pictures and a projection of the whole
run (`preview_video`; the command `realbasicvsr preview`, docs/preview.md)."""

from realbasicvsr.preview.run import PreviewResult, StrengthResult, preview_video

__all__ = ["PreviewResult", "StrengthResult", "preview_video"]
