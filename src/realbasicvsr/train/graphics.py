"""Training data for colours and graphics that photographs rarely hold: generated canvases and a colour jitter.

The bundled photographs and clips hold no saturated blue or cyan at all (5 of the 8 photographs are grey), and a
network trained only on them learns that colour channels move together: the compact model's cleaning module
turned a flat (0, 0, 255) patch into (-218, -238, 11) (docs/compact_model/colour.md). Two remedies, both here:

- `graphics_canvas`: a generated picture of the kind users upscale and photographs are not: flat colours from the
  corners of the RGB cube, gradients, colour bars, text, line art and cartoon-like outlined shapes. Drawn at twice
  the size and area-averaged, so edges are anti-aliased as in real renders. `make-dataset` moves a virtual camera
  over them as over the photographs.
- `jitter_colours`: a per-clip hue rotation about the grey axis and a saturation gain, applied to the GT before it
  is degraded (`data.colour_jitter` is its probability), so every source also appears in other colours.
"""

from __future__ import annotations

import numpy as np

# The cube's corners and edge midpoints at full and 75 % level (colour bars, logos, title cards), then greys.
_CORNERS = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=np.float64)
PALETTE = np.concatenate([_CORNERS * 255, _CORNERS * 191, [[128, 128, 128], [64, 64, 64], [255, 128, 0]]])
KINDS = ("flat", "gradient", "bars", "text", "lineart", "cartoon")
_WORDS = ("RealBasicVSR", "NEWS 24", "Chapter 3", "LIVE", "GOAL!", "The End", "Episode 12", "1998", "Sale -50%")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A palette colour (half the time) or a random one pushed towards the cube's surface."""
    if rng.random() < 0.5:
        return tuple(int(v) for v in PALETTE[rng.integers(len(PALETTE))])
    c = rng.random(3)
    c = (c - c.min()) / max(c.max() - c.min(), 1e-6) if rng.random() < 0.7 else c  # saturated: one channel 0
    return tuple(int(v) for v in np.round(c * 255 * rng.uniform(0.6, 1.0)))


def _gradient(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A linear gradient between two colours in a random direction, (h, w, 3) float."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w]
    t = (x * np.cos(angle) + y * np.sin(angle)).astype(np.float64)
    t = (t - t.min()) / max(t.max() - t.min(), 1.0)
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    return a + t[..., None] * (b - a)


def _bars(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Vertical colour bars (SMPTE-like order, 75 % or 100 %) over a grey ramp strip."""
    level = 191 if rng.random() < 0.5 else 255
    order = [(1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 1)]
    if rng.random() < 0.5:
        rng.shuffle(order)
    out = np.zeros((h, w, 3))
    edges = np.linspace(0, w, len(order) + 1).astype(int)
    for (r, g, b), x0, x1 in zip(order, edges[:-1], edges[1:], strict=True):
        out[:, x0:x1] = (r * level, g * level, b * level)
    ramp_top = int(h * rng.uniform(0.65, 0.85))
    out[ramp_top:] = np.linspace(0, 255, w)[None, :, None]
    return out


def graphics_canvas(kind: str, rng: np.random.Generator, size: tuple[int, int] = (384, 512)) -> np.ndarray:
    """One generated picture (h, w, 3) uint8 of `kind` (one of `KINDS`)."""
    from PIL import Image, ImageDraw, ImageFont

    if kind not in KINDS:
        raise ValueError(f"unknown graphics kind {kind!r}; choose one of {', '.join(KINDS)}")
    h, w = size[0] * 2, size[1] * 2  # drawn at x2, area-averaged at the end: anti-aliased edges
    if kind == "gradient":
        base = _gradient(h, w, rng)
    elif kind == "bars":
        base = _bars(h, w, rng)
    elif kind == "lineart":
        base = np.full((h, w, 3), 255.0 if rng.random() < 0.7 else _colour(rng))
    else:
        base = np.broadcast_to(np.array(_colour(rng), float), (h, w, 3))
    image = Image.fromarray(np.clip(np.round(base), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    shapes = {"flat": 14, "gradient": 5, "bars": 0, "text": 3, "lineart": 0, "cartoon": 10}[kind]
    for _ in range(shapes):
        x0, y0 = rng.integers(-w // 8, w), rng.integers(-h // 8, h)
        x1, y1 = x0 + rng.integers(w // 16, w // 2), y0 + rng.integers(h // 16, h // 2)
        outline = (0, 0, 0) if kind == "cartoon" else None
        width = int(rng.integers(4, 12)) if kind == "cartoon" else 0
        shape = rng.integers(3)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=_colour(rng), outline=outline, width=width)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=_colour(rng), outline=outline, width=width)
        else:
            points = [(int(rng.integers(x0, x1)), int(rng.integers(y0, y1))) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=_colour(rng), outline=outline, width=max(width, 1))
    if kind in ("lineart", "cartoon", "flat"):
        for _ in range(int(rng.integers(10, 30)) if kind == "lineart" else int(rng.integers(0, 6))):
            points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(int(rng.integers(2, 6)))]
            colour = (0, 0, 0) if kind == "lineart" and rng.random() < 0.7 else _colour(rng)
            draw.line(points, fill=colour, width=int(rng.integers(2, 10)), joint="curve")
    if kind in ("text", "bars", "cartoon", "gradient"):
        for _ in range(int(rng.integers(2, 8)) if kind == "text" else int(rng.integers(0, 3))):
            font = ImageFont.load_default(size=int(rng.integers(24, 120)))
            word = _WORDS[rng.integers(len(_WORDS))]
            draw.text((int(rng.integers(0, w * 3 // 4)), int(rng.integers(0, h * 7 // 8))), word, fill=_colour(rng),
                      font=font, stroke_width=int(rng.integers(0, 4)), stroke_fill=_colour(rng))  # fmt: skip
    pixels = np.asarray(image, dtype=np.float64)
    return np.round(pixels.reshape(size[0], 2, size[1], 2, 3).mean(axis=(1, 3))).astype(np.uint8)


def colour_matrix(hue_degrees: float, saturation: float) -> np.ndarray:
    """The 3x3 RGB matrix that rotates hue by `hue_degrees` about the grey axis and scales the distance from it
    by `saturation`; greys are fixed points."""
    k = np.ones(3) / np.sqrt(3.0)
    grey = np.outer(k, k)
    theta = np.deg2rad(hue_degrees)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = np.cos(theta) * np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * grey
    return grey + saturation * rotation @ (np.eye(3) - grey)


def jitter_colours(frames: np.ndarray, rng: np.random.Generator, max_saturation: float = 2.5) -> np.ndarray:
    """`frames` (..., 3) uint8 with one random hue rotation (0-360 degrees) and saturation gain (0.6 to
    `max_saturation`, log-uniform) for all of them; values that leave the cube are clipped, so strong gains also
    make the cube's saturated faces, which photographs lack."""
    if max_saturation < 0.6:
        raise ValueError(f"max_saturation must be at least 0.6, got {max_saturation}")
    matrix = colour_matrix(rng.uniform(0, 360), float(np.exp(rng.uniform(np.log(0.6), np.log(max_saturation)))))
    out = frames.astype(np.float32) @ matrix.T.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
