"""The web app's controls as one typed value, the library configs they make, and errors in the page's words.

The controls are the `upscale` command's look, size and encoding settings (commands/upscale_flags.py), by the
library's own names, so that a preview and the job started from it run exactly the same configs. A job's JSON
keeps them (`Settings.to_dict` / `from_dict`) for the list of past jobs and for resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from realbasicvsr.errors import UserError, one_line

# Library setting (`UserError.option`) -> the control of the page that sets it, for `page_error`.
LABELS = {
    "weights": "the Weights box",
    "strength": "the Strength slider",
    "cleaning_passes": "the Cleaning passes slider",
    "grain": "the Grain slider",
    "color_fix": "the Colour fix choice",
    "outscale": "the Scale box",
    "out_size": "the Size box",
    "codec": "the Codec choice",
    "crf": "the Quality (CRF) box",
    "container": "the Container choice",
    "device": "the Device box",
    "at": "the Moment slider",
    "frames": "the Frames slider",
    "input": "the video",
}
CODECS = ("auto", "libx264", "libx265", "libvpx-vp9", "ffv1")
CONTAINERS = ("same as the input", "mp4", "mkv", "mov", "webm")
COLOR_FIXES = ("off", "all", "chroma")


@dataclass(frozen=True)
class Settings:
    """What the page's controls say. None means the library's default (the weights' own strength, one cleaning
    pass, x4, the codec's default quality, the input's container)."""

    weights: str | None = None
    strength: float | None = None
    cleaning_passes: int | None = None
    grain: float = 0.0
    color_fix: str = "off"
    outscale: float | None = None
    out_size: tuple[int, int] | None = None
    codec: str | None = None
    crf: float | None = None
    container: str | None = None
    device: str = "auto"
    # Not on the page (the command line's defaults): how a long video is cut, the unit of resume.
    segment_frames: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("out_size") is not None:
            values["out_size"] = tuple(values["out_size"])
        return cls(**values)

    def configs(self) -> tuple[Any, Any, Any]:
        """(UpscaleConfig, EncodeConfig, SegmentConfig), checked: a bad value raises the library's UserError."""
        from realbasicvsr.media.write import EncodeConfig
        from realbasicvsr.upscale.config import UpscaleConfig, resolve_config
        from realbasicvsr.upscale.plan import SegmentConfig

        # window, tiles and the rest stay the library's defaults, which are the command line's
        options = UpscaleConfig(
            device=self.device,
            dtype="auto",
            outscale=self.outscale,
            out_size=self.out_size,
            strength=self.strength,
            cleaning_passes=self.cleaning_passes,
            grain=self.grain,
            color_fix=self.color_fix,  # type: ignore[arg-type]
        )
        segments = SegmentConfig() if self.segment_frames is None else SegmentConfig(segment_frames=self.segment_frames)
        return resolve_config(options), EncodeConfig(codec=self.codec, crf=self.crf), segments

    def describe(self) -> str:
        """One line for the list of jobs: the settings that differ from the defaults."""
        parts = [f"weights {self.weights}" if self.weights else "default weights"]
        if self.strength is not None:
            parts.append(f"strength {self.strength:g}")
        if self.cleaning_passes is not None:
            parts.append(f"{self.cleaning_passes} cleaning pass(es)")
        if self.grain:
            parts.append(f"grain {self.grain:g}")
        if self.color_fix != "off":
            parts.append(f"colour fix {self.color_fix}")
        if self.out_size is not None:
            parts.append(f"size {self.out_size[0]}x{self.out_size[1]}")
        else:
            parts.append(f"x{self.outscale:g}" if self.outscale is not None else "x4")
        parts.append(self.codec or "auto codec")
        if self.crf is not None:
            parts.append(f"crf {self.crf:g}")
        if self.container:
            parts.append(self.container)
        return ", ".join(parts)


def settings_from_controls(
    weights: str | None,
    use_strength: bool,
    strength: float | None,
    cleaning_passes: float | None,
    grain: float | None,
    color_fix: str | None,
    outscale: str | float | None,
    size: str | None,
    codec: str | None,
    crf: str | float | None,
    container: str | None,
) -> Settings:
    """The controls' raw values (as Gradio passes them) as `Settings`; a size that is not WIDTHxHEIGHT, a scale that
    is not a number or both a scale and a size raise, as the command line refuses them."""
    if str(outscale or "").strip() and (size or "").strip():
        raise UserError("give a scale or a size, not both (empty the other box)", option="out_size")
    return Settings(
        weights=(weights or "").strip() or None,
        strength=float(strength) if use_strength and strength is not None else None,
        cleaning_passes=None if cleaning_passes is None else int(cleaning_passes),
        grain=float(grain or 0.0),
        color_fix=color_fix or "off",
        outscale=parse_number(outscale, "outscale", "a scale such as 2 or 1.5"),
        out_size=parse_size(size),
        codec=None if codec in (None, "", "auto") else codec,
        crf=parse_number(crf, "crf", "a CRF such as 18"),
        container=None if container in (None, "", CONTAINERS[0]) else container,
    )


def parse_number(text: str | float | None, option: str, example: str) -> float | None:
    """A number typed in a box; empty -> None (the default)."""
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"expected {example}, got {text!r}", option=option) from None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'1920x1080' -> (1920, 1080); empty -> None."""
    text = (text or "").strip().lower()
    if not text:
        return None
    try:
        width, height = (int(v) for v in text.split("x"))
    except ValueError:
        raise UserError(f"expected a size WIDTHxHEIGHT such as 1920x1080, got {text!r}", option="out_size") from None
    if width < 1 or height < 1:
        raise UserError(f"a size must be positive, got {text!r}", option="out_size")
    return width, height


def page_error(error: UserError) -> str:
    """The library's one-line message, with the page's control for the setting it is about (as the command line
    names its flag)."""
    return one_line(error, LABELS)
