"""Encoder settings: `EncodeConfig`, the codec a source gets when none is chosen, and the checks made before work.

The default codec follows the source's depth (`encode_for_source`). An 8-bit source gets H.264 (libx264), which
every player plays. A deeper one (10/12-bit, HDR above all) gets a codec whose 10-bit profile plays widely, not
H.264 High 10, which almost no browser, phone or TV decodes: HEVC Main 10 (libx265) in .mp4/.mkv/.mov, which
phones, TVs, Safari and Edge/Chrome with hardware decoding play, and VP9 profile 2 in .webm (browsers). An 8-bit
H.264 output instead would throw away the depth, and with it PQ/HLG HDR (8-bit PQ bands visibly). A codec or pixel
format the user chose is kept as given.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import av

from realbasicvsr.errors import UserError
from realbasicvsr.media.color import HDR_ENCODERS

if TYPE_CHECKING:
    from realbasicvsr.media.read import VideoInfo

CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
CODECS = ("libx264", "libx265", "libvpx-vp9", "ffv1")
# Default CRF per codec: visually transparent for x264/x265 (the usual recommendation), VP9's constant-quality value.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24}
# x265 (as bundled with PyAV 18) corrupts the heap on frames smaller than its 64-px CTU (`VideoWriter` refuses them).
X265_MIN_SIDE = 64


@dataclass(frozen=True)
class EncodeConfig:
    """Encoder control. `codec=None` picks one for the source (`encode_for_source`: libx264 for 8-bit sources,
    HEVC Main 10 or VP9 profile 2 for deeper ones); `crf=None` takes the codec's default; `lossless` overrides CRF
    (x264 qp 0, x265/VP9 lossless=1, FFV1 always); `pix_fmt=None` picks yuv420p (yuv420p10le for >8-bit sources;
    yuv444p when lossless, RGB (bgr0 / gbrp16le) for FFV1 so that lossless really is lossless in RGB)."""

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    lossless: bool = False

    def resolved_pix_fmt(self, bit_depth: int) -> str:
        if self.pix_fmt:
            return self.pix_fmt
        if self.codec == "ffv1":
            return "gbrp16le" if bit_depth > 8 else "bgr0"  # FFV1 stores RGB losslessly; its 8-bit RGB is bgr0
        base = "yuv444p" if self.lossless else "yuv420p"
        return base + "10le" if bit_depth > 8 else base

    def codec_options(self, hdr_params: str = "") -> dict[str, str]:
        """The encoder's options; `hdr_params` (`HdrMetadata.encoder_params`) go to libx264/libx265's params."""
        options: dict[str, str] = {}
        codec = self.codec or "libx264"
        crf = str(self.crf if self.crf is not None else DEFAULT_CRF.get(codec, 0))
        if codec == "libx264":
            options["qp" if self.lossless else "crf"] = "0" if self.lossless else crf
            options["preset"] = self.preset or "medium"
            if hdr_params:
                options["x264-params"] = hdr_params
        elif codec == "libx265":
            options["preset"] = self.preset or "medium"
            params = ["log-level=error", "lossless=1" if self.lossless else "", hdr_params]
            options["x265-params"] = ":".join(p for p in params if p)
            if not self.lossless:
                options["crf"] = crf
        elif codec == "libvpx-vp9":
            if self.lossless:
                options["lossless"] = "1"
            else:
                options["crf"], options["b"] = crf, "0"  # constant-quality mode
            # x264-style preset names -> libvpx speed (cpu-used: 0 slowest/best ... 8 fastest).
            options["cpu-used"] = str(_VP9_SPEED.get(self.preset or "medium", 2))
            options["deadline"] = "good"
            options["row-mt"] = "1"
        return options


_VP9_SPEED = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4, "medium": 2, "slow": 1,
              "slower": 0, "veryslow": 0}  # fmt: skip


def _pix_fmts(codec: str) -> set[str]:
    return {f.name for f in av.codec.Codec(codec, "w").video_formats or ()}


def default_codec(
    settings: EncodeConfig, bit_depth: int, fmt: str, size: tuple[int, int] | None = None
) -> tuple[EncodeConfig, str | None]:
    """`settings` with its codec decided (see the module docstring), and a one-line note saying what was chosen
    for a deep source (None when nothing needs saying). A codec given is kept; a pixel format given decides the
    depth."""
    if settings.codec is not None:
        return settings, None
    if settings.pix_fmt:
        bit_depth = 16 if max(c.bits for c in av.video.format.VideoFormat(settings.pix_fmt).components) > 8 else 8
    if bit_depth <= 8:
        return replace(settings, codec="libx264"), None
    if fmt == "webm":
        vp9 = replace(settings, codec="libvpx-vp9")
        if settings.pix_fmt or vp9.resolved_pix_fmt(bit_depth) in _pix_fmts("libvpx-vp9"):
            return vp9, "the source is 10-bit or deeper: the output is VP9 profile 2 (10-bit)"
        return replace(vp9, pix_fmt="yuv420p"), (
            "the source is 10-bit or deeper, but this FFmpeg's libvpx-vp9 encodes 8 bits only: the output is 8-bit "
            "VP9; write .mp4, .mkv or .mov for 10-bit HEVC"
        )
    if size is not None and min(size) < X265_MIN_SIDE:
        return replace(settings, codec="libx264"), (
            f"the source is 10-bit or deeper, and libx265 cannot encode frames under {X265_MIN_SIDE}x{X265_MIN_SIDE}"
            ": the output is H.264 High 10, which few players decode"
        )
    return replace(settings, codec="libx265"), (
        "the source is 10-bit or deeper: the output is HEVC Main 10 (libx265), which phones, TVs and most browsers "
        "play; set codec to libx264 for H.264"
    )


def encode_for_source(
    settings: EncodeConfig, source: VideoInfo, fmt: str, size: tuple[int, int]
) -> tuple[EncodeConfig, list[str]]:
    """The settings a video output of `source` (`size` = (width, height)) is encoded with, and the notes to show:
    the codec chosen for a deep source, and HDR mastering metadata that the codec cannot carry."""
    settings, note = default_codec(settings, source.bit_depth, fmt, size)
    notes = [note] if note else []
    if source.kind == "video" and source.hdr is not None and settings.codec not in HDR_ENCODERS:
        notes.append(
            f"the source's HDR mastering display / content light level metadata cannot be written with "
            f"{settings.codec} (only libx264 and libx265 take it here); set codec to libx265 to keep it"
        )
    return settings, notes


def container_format(path: Path) -> str:
    fmt = CONTAINER_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"unknown output extension {path.suffix!r} for {path}; use .mp4, .mkv, .mov or .webm for a video, "
            "an image extension for one image, or a folder path for PNG frames"
        )
    return fmt


def check_codec(settings: EncodeConfig, fmt: str, path: Path, bit_depth: int = 8) -> None:
    """Fail before any work when the codec is unknown, missing from this FFmpeg, or not storable in the container."""
    settings, _ = default_codec(settings, bit_depth, fmt)
    if settings.codec not in CODECS:
        raise UserError(f"unknown codec {settings.codec!r}; choose one of {', '.join(CODECS)}", option="codec")
    try:
        codec = av.codec.Codec(settings.codec, "w")
    except av.error.FFmpegError as error:  # pragma: no cover - depends on the FFmpeg build
        raise UserError(
            f"this FFmpeg build has no {settings.codec} encoder; choose another codec", option="codec"
        ) from error
    with av.open(io.BytesIO(), "w", format=fmt) as probe_container:  # in memory: nothing is written to disk
        supported = probe_container.supported_codecs
    if codec.canonical_name not in supported:
        raise UserError(
            f"codec {settings.codec} cannot be stored in a {path.suffix} file; use .mkv, or the codec "
            + ("libvpx-vp9" if fmt == "webm" else "libx264"),
            option="codec",
        )
    pix_fmts = {f.name for f in codec.video_formats or ()}
    pix_fmt = settings.resolved_pix_fmt(bit_depth)
    if pix_fmts and pix_fmt not in pix_fmts:
        raise UserError(
            f"{settings.codec} cannot encode pixel format {pix_fmt}; "
            f"set pix_fmt to one of {', '.join(sorted(pix_fmts))}",
            option="pix_fmt",
        )
