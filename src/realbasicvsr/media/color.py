"""Colour and display tags: how a source's YUV maps to RGB (`ColorInfo`, `frame_to_rgb`), the tags an output
declares, and what a player needs besides the pixels (pixel aspect, transfer, rotation, HDR mastering metadata),
carried from the source to the output."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import numpy as np

if TYPE_CHECKING:
    from realbasicvsr.media.read import VideoInfo

# AVColorSpace values (libavutil/pixfmt.h) -> the swscale matrix name PyAV understands.
_MATRIX_BY_AVCOL = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
_AVCOL_RANGE_JPEG = 2
# swscale matrix name -> (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic) an output declares.
COLOR_TAGS = {"ITU709": (1, 1, 1), "ITU601": (6, 6, 6), "SMPTE240M": (7, 7, 7), "BT2020": (9, 9, 14), "FCC": (4, 4, 4)}


@dataclass(frozen=True)
class ColorInfo:
    """How the source's YUV maps to RGB: swscale matrix name ('ITU709', 'ITU601', ...) and full or limited range."""

    matrix: str = "ITU709"
    full_range: bool = False
    declared: bool = False  # False when guessed from the frame height (the stream said 'unspecified')


def color_of(colorspace: int, color_range: int, pix_fmt: str, height: int) -> ColorInfo:
    full = color_range == _AVCOL_RANGE_JPEG or pix_fmt.startswith("yuvj")
    if colorspace in _MATRIX_BY_AVCOL:
        return ColorInfo(_MATRIX_BY_AVCOL[colorspace], full, True)
    return ColorInfo("ITU709" if height >= 720 else "ITU601", full, False)


def carry_display_tags(stream: av.video.stream.VideoStream, source: VideoInfo) -> None:
    """What a player needs to show the output as it shows the source: the pixel aspect (the frames are scaled
    alike in both directions, or resized to a size the user chose in storage pixels), a declared transfer and its
    primaries (so PQ and HLG stay HDR, not the SDR transfer guessed from the matrix), and the display rotation."""
    if source.sar:
        stream.codec_context.sample_aspect_ratio = source.sar
    if source.color_trc not in (0, 2):  # 0 reserved, 2 unspecified: keep the tags guessed from the matrix
        stream.codec_context.color_trc = source.color_trc
        if source.color_primaries not in (0, 2):
            stream.codec_context.color_primaries = source.color_primaries
    if source.rotation:
        stream.set_display_rotation(source.rotation)


def bit_depth_of(format_: av.video.format.VideoFormat) -> int:
    """8, or 16 for any deeper format (10/12-bit video is read as 16-bit)."""
    return 16 if max((c.bits for c in format_.components), default=8) > 8 else 8


def has_alpha_channel(format_: av.video.format.VideoFormat) -> bool:
    return any(c.is_alpha for c in format_.components)


def frame_to_rgb(frame: av.VideoFrame, info: VideoInfo) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert a decoded frame to (rgb, alpha) numpy arrays using the stream's colour matrix and range."""
    deep = bit_depth_of(frame.format) > 8 or info.bit_depth > 8
    alpha = has_alpha_channel(frame.format)
    fmt = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
    color = color_of(frame.colorspace, frame.color_range, frame.format.name, frame.height)
    if not color.declared:
        color = info.color  # per-frame tags missing: use what the stream said (or our guess from its height)
    rgb = frame.reformat(
        format=fmt,
        src_colorspace=color.matrix,
        src_color_range="JPEG" if color.full_range else "MPEG",
        dst_color_range="JPEG",
        # Accurate rounding and full chroma interpolation: the default fast path loses up to 2 levels.
        interpolation=av.video.reformatter.Interpolation.BICUBIC
        | av.video.reformatter.Interpolation.ACCURATE_RND
        | av.video.reformatter.Interpolation.FULL_CHR_H_INT,
    ).to_ndarray()
    if deep and info.bit_depth == 8:
        rgb = (rgb.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif not deep and info.bit_depth == 16:
        rgb = rgb.astype(np.uint16) * 257
    if alpha:
        return np.ascontiguousarray(rgb[..., :3]), np.ascontiguousarray(rgb[..., 3])
    return rgb, None


@dataclass(frozen=True)
class HdrMetadata:
    """An HDR10 source's static metadata, as FFmpeg exports it with each decoded frame (from the bitstream's SEI or
    the container's mdcv/clli boxes): the mastering display (SMPTE ST 2086: CIE 1931 xy of its red, green and
    blue primaries and white point, min and max luminance in cd/m2) and the content light level (CTA-861.3: the
    maximum and the maximum frame-average light level in cd/m2). None where the source has no such part."""

    primaries: tuple[tuple[Fraction, Fraction], ...] | None = None  # (x, y) of red, green, blue
    white_point: tuple[Fraction, Fraction] | None = None
    luminance: tuple[Fraction, Fraction] | None = None  # (min, max)
    max_cll: int | None = None
    max_fall: int | None = None

    def encoder_params(self, codec: str) -> str:
        """The metadata as libx265's x265-params / libx264's x264-params (the same syntax: chromaticity in units of
        0.00002, luminance of 0.0001 cd/m2, green-blue-red order), so the encoder writes it as SEI."""
        parts = []
        if self.primaries and self.white_point and self.luminance:
            (red, green, blue), white = self.primaries, self.white_point

            def xy(point: tuple[Fraction, Fraction]) -> str:
                return f"({round(point[0] * 50000)},{round(point[1] * 50000)})"

            low, high = (round(v * 10000) for v in self.luminance)
            key = "master-display" if codec == "libx265" else "mastering-display"
            parts.append(f"{key}=G{xy(green)}B{xy(blue)}R{xy(red)}WP{xy(white)}L({high},{low})")
        if self.max_cll is not None:
            parts.append(f"{'max-cll' if codec == 'libx265' else 'cll'}={self.max_cll},{self.max_fall or 0}")
        return ":".join(parts)


# Encoders that write HdrMetadata (as SEI, from their params); PyAV 18 cannot attach it to a stream as container
# side data (only the display matrix: VideoStream.set_display_matrix) nor to a frame (SideData is read-only).
HDR_ENCODERS = ("libx264", "libx265")


def hdr_of(frame: av.VideoFrame) -> HdrMetadata | None:
    """The mastering display and content light level side data of a decoded frame; None when it has neither."""
    sides = {side.type.name: bytes(side) for side in frame.side_data}
    mastering, light = sides.get("MASTERING_DISPLAY_METADATA"), sides.get("CONTENT_LIGHT_LEVEL")
    fields: dict = {}
    if mastering is not None and len(mastering) >= 88:
        # AVMasteringDisplayMetadata: display_primaries[3][2], white_point[2], min_luminance, max_luminance
        # (AVRational: two ints each), then has_primaries and has_luminance.
        values = struct.unpack("=22i", mastering[:88])
        rationals = [Fraction(values[i], values[i + 1]) if values[i + 1] else Fraction(0) for i in range(0, 20, 2)]
        if values[20]:
            fields["primaries"] = tuple((rationals[i], rationals[i + 1]) for i in range(0, 6, 2))
            fields["white_point"] = (rationals[6], rationals[7])
        if values[21]:
            fields["luminance"] = (rationals[8], rationals[9])
    if light is not None and len(light) >= 8:
        fields["max_cll"], fields["max_fall"] = struct.unpack("=2I", light[:8])  # AVContentLightMetadata
    return HdrMetadata(**fields) if fields else None
