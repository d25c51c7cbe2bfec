"""The pictures of a preview: the bicubic reference, the before/after comparison image and the wipe video's frames.

`compare.png` has one column for the bicubic enlargement of the input (what a plain resize gives) and one per
result (a strength of the list), and two rows: a crop at full output resolution (1:1 pixels) of the most detailed
region of the frame (the highest gradient energy of the input, so every column shows the same place), and the
whole frame scaled to the column's width. Each column is labelled above; a caption below says what the rows are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realbasicvsr.media.files import atomic_output
from realbasicvsr.upscale.windows import resize, to_image, to_tensor

# Columns are at most this wide (output pixels): a 1:1 crop of a 4K output stays readable on a screen.
MAX_COLUMN_WIDTH = 384
MAX_CROP_HEIGHT = 288
GAP = 8
LABEL_HEIGHT = 22
CAPTION_HEIGHT = 20
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIVIDER = (255, 255, 255)


@dataclass(frozen=True)
class Layout:
    """Where everything of `compare.png` goes, in pixels: `columns` cells of `column_width`; the crop row is
    `crop_height` tall, the whole-frame row `frame_height`."""

    columns: int
    column_width: int
    crop_height: int
    frame_height: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image."""
        width = self.columns * self.column_width + (self.columns + 1) * GAP
        height = LABEL_HEIGHT + self.crop_height + GAP + self.frame_height + GAP + CAPTION_HEIGHT
        return width, height


def layout(results: int, width: int, height: int) -> Layout:
    """The layout for the bicubic column plus `results` result columns of `width` x `height` output frames."""
    column = min(width, MAX_COLUMN_WIDTH)
    return Layout(1 + results, column, min(height, MAX_CROP_HEIGHT), max(1, round(height * column / width)))


def bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The input frame enlarged to `size` (width, height) with the antialiased bicubic filter the upscaler resizes
    with: the "before" of every comparison. Same dtype as `image`."""
    depth = 16 if image.dtype == np.uint16 else 8
    return to_image(resize(to_tensor(image).unsqueeze(0), size)[0], depth)


def detailed_crop(image: np.ndarray, crop: tuple[int, int], scale: tuple[float, float]) -> tuple[int, int]:
    """(x, y) in output pixels of the `crop` (width, height) window with the most gradient energy, found on the input
    frame `image` (an output pixel is `scale` = (sx, sy) input pixels smaller); centred when the crop covers all."""
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    box_w = max(1, min(luma.shape[1], round(crop[0] / scale[0])))
    box_h = max(1, min(luma.shape[0], round(crop[1] / scale[1])))
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table: every window in one step
    sums = table[box_h:, box_w:] - table[:-box_h, box_w:] - table[box_h:, :-box_w] + table[:-box_h, :-box_w]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)  # the first maximum: deterministic
    out_w, out_h = round(luma.shape[1] * scale[0]), round(luma.shape[0] * scale[1])
    return min(max(0, round(x * scale[0])), out_w - crop[0]), min(max(0, round(y * scale[1])), out_h - crop[1])


def compare_image(
    source: np.ndarray, results: list[tuple[str, np.ndarray]], path: Path, caption: str = ""
) -> tuple[int, int]:
    """Write `compare.png` to `path` (atomically): the bicubic enlargement of the input frame `source` and each
    labelled result (output frames, all one size) as columns, see the module docstring. Returns its (width, height)."""
    from PIL import Image, ImageDraw

    height, width = results[0][1].shape[:2]
    plan = layout(len(results), width, height)
    crop = (plan.column_width, plan.crop_height)
    x0, y0 = detailed_crop(source, crop, (width / source.shape[1], height / source.shape[0]))
    sheet = Image.new("RGB", plan.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    columns = [("bicubic (plain resize)", bicubic(source, (width, height))), *results]
    for i, (label, image) in enumerate(columns):
        left = GAP + i * (plan.column_width + GAP)
        picture = Image.fromarray(_eight_bit(image))
        sheet.paste(picture.crop((x0, y0, x0 + crop[0], y0 + crop[1])), (left, LABEL_HEIGHT))
        whole = picture.resize((plan.column_width, plan.frame_height), Image.Resampling.LANCZOS)
        sheet.paste(whole, (left, LABEL_HEIGHT + plan.crop_height + GAP))
        draw.text((left + 2, 5), _fit(draw, label, plan.column_width - 4), fill=TEXT)
    text = f"top: 1:1 crop at ({x0}, {y0}), {crop[0]}x{crop[1]} of {width}x{height}; bottom: whole frame"
    draw.text(
        (GAP, plan.size[1] - CAPTION_HEIGHT + 4), _fit(draw, f"{text}. {caption}".strip(), plan.size[0]), fill=TEXT
    )
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG")
    return plan.size


def wipe_frame(before: np.ndarray, after: np.ndarray, position: float) -> np.ndarray:
    """`before` left of a vertical divider at `position` (0..1 of the width), `after` right of it, as 8-bit RGB
    cropped to even sizes (H.264 4:2:0)."""
    height, width = after.shape[:2]
    even_w, even_h = width - width % 2, height - height % 2
    frame = _eight_bit(after)[:even_h, :even_w].copy()
    split = min(even_w, max(0, round(position * even_w)))
    frame[:, :split] = _eight_bit(before)[:even_h, :split]
    frame[:, max(0, split - 1) : split + 1] = DIVIDER
    return frame


def _eight_bit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:  # a deep output: the picture as 8 bits, rounded
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return image


def _fit(draw: object, text: str, width: int) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels in PIL's default font."""
    while text and draw.textlength(text) > width:  # type: ignore[attr-defined]
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
