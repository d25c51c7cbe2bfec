"""Colour and display tags: how a source's YUV maps to RGB (`ColorInfo`), the tags an output declares, and what a
player needs besides the pixels (pixel aspect, transfer, rotation), carried from the source to the output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import av

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
