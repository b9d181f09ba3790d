"""Boxes and labels drawn on PIL images: stable class colours, readable labels, line widths that scale.

Use :func:`draw_boxes` from a notebook to look at one image; ``datatools visualize`` uses the same code through
:func:`draw_items` for whole datasets. Drawing is PIL ``ImageDraw`` only (filled rectangles and text).

Pixel convention: boxes are continuous pixel XYXY (see :mod:`datatools.core.boxes`), so a box ``[x1, y1, x2, y2]``
covers pixel columns ``round(x1) .. round(x2) - 1``. The outline is drawn *inside* the box: its outer pixels are the
box's first and last columns/rows, and the ``width`` pixels inward; nothing outside the box is touched except the
label, which sits above the box (or inside it at the top edge of the image).
"""
from __future__ import annotations

import colorsys
import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from datatools.core import images

RGB = tuple[int, int, int]

STYLES = ("solid", "dashed", "warning")
# Hazard tape for --check findings: red dashes over yellow. No class colour is drawn this way, so it stands out on
# any image and against any class colour.
WARNING_COLOUR: RGB = (230, 20, 20)
WARNING_COLOUR_2: RGB = (255, 215, 0)
DEFAULT_COLOUR: RGB = (0, 200, 255)


_TIERS = ((0.85, 1.0), (0.50, 1.0), (0.90, 0.70))


def class_colour(name: str) -> RGB:
    """The colour of a class: the same name gets the same colour in every dataset, run and command.

    Derived from the SHA-1 of the UTF-8 name (hue from two bytes, one of three saturation/value tiers from a third),
    never from the class index, so adding a class does not repaint the others. ``plots`` and ``visualize`` share it.
    """
    d = hashlib.sha1(name.encode("utf-8")).digest()
    hue = int.from_bytes(d[:2], "big") / 65536.0
    # Three (saturation, value) tiers, so two classes whose hues happen to be close still differ in lightness.
    sat, val = _TIERS[d[2] % len(_TIERS)]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def text_colour_on(bg: RGB) -> RGB:
    """Black or white, whichever reads better on ``bg`` (Rec. 601 luma)."""
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma >= 140 else (255, 255, 255)


def line_width_for(width: int, height: int) -> int:
    """Outline width in pixels for an image of this size: 2 px up to ~600 px, then growing with the mean side."""
    return max(2, int(round((width + height) / 2 * 0.004)))


def font_size_for(width: int, height: int) -> int:
    """Label font size for an image of this size (10 to 40 px)."""
    return int(min(40, max(10, round((width + height) / 2 * 0.03))))


@functools.cache
def _font_file() -> str | None:
    """DejaVu Sans as matplotlib ships it (Latin, Greek, Cyrillic and more; PIL's bundled Aileron lacks even é and
    ß), found without importing matplotlib; None when it is not there."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The label font at ``size`` px: DejaVu Sans (:func:`_font_file`), else PIL's bundled default, else (no
    FreeType) the fixed bitmap font."""
    try:
        if _font_file():
            return ImageFont.truetype(_font_file(), size=size)
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


@functools.cache
def _glyphs() -> frozenset[int] | None:
    """The code points the label font draws (its cmap, read with fontTools, which matplotlib brings)."""
    try:
        from fontTools.ttLib import TTFont

        if not _font_file():
            return None
        with TTFont(_font_file(), lazy=True) as f:
            return frozenset(f["cmap"].getBestCmap())
    except Exception:  # no fontTools, or an unreadable font: text is drawn as it is
        return None


def shown(text: str) -> str:
    """``text`` as the labels and plots draw it: a character the font has no glyph for (CJK, emoji) is written as its
    escape, ``\\u732b``, so two such class names never look alike as rows of empty boxes."""
    glyphs = _glyphs()
    if glyphs is None or all(ord(c) in glyphs for c in text):
        return text
    return "".join(c if ord(c) in glyphs else (f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
                   for c in text)


@dataclass(frozen=True, slots=True)
class DrawItem:
    """One box to draw: where, in which colour and style, with which label text (empty: no label)."""

    box: tuple[float, float, float, float]
    colour: RGB
    text: str = ""
    style: str = "solid"
    thin: bool = False  # predictions drawn over ground truth: half the line width, label under the box


def _px(v: float) -> int:
    return int(math.floor(v + 0.5))


def _fill(draw: ImageDraw.ImageDraw, x0: int, y0: int, x1: int, y1: int, colour: RGB) -> None:
    """Fill the inclusive pixel rectangle, ignoring empty ones (PIL rejects x1 < x0)."""
    if x1 >= x0 and y1 >= y0:
        draw.rectangle((x0, y0, x1, y1), fill=colour)


def _edges(x0: int, y0: int, x1: int, y1: int, lw: int) -> list[tuple[int, int, int, int, bool]]:
    """The four edge strips of an outline ``lw`` thick drawn inside the inclusive rectangle; bool: horizontal."""
    lw_x, lw_y = min(lw, x1 - x0 + 1), min(lw, y1 - y0 + 1)
    return [(x0, y0, x1, y0 + lw_y - 1, True), (x0, y1 - lw_y + 1, x1, y1, True),
            (x0, y0, x0 + lw_x - 1, y1, False), (x1 - lw_x + 1, y0, x1, y1, False)]


def _outline(draw, x0, y0, x1, y1, colour: RGB, lw: int, *, dash: int = 0) -> None:
    for ex0, ey0, ex1, ey1, horizontal in _edges(x0, y0, x1, y1, lw):
        if not dash:
            _fill(draw, ex0, ey0, ex1, ey1, colour)
            continue
        start, stop = (ex0, ex1) if horizontal else (ey0, ey1)
        for s in range(start, stop + 1, 2 * dash):
            e = min(s + dash - 1, stop)
            if horizontal:
                _fill(draw, s, ey0, e, ey1, colour)
            else:
                _fill(draw, ex0, s, ex1, e, colour)


def _label(draw, text: str, x0: int, y0: int, y1: int, colour: RGB, fnt, img_w: int, img_h: int,
           below: bool = False) -> None:
    """A filled label box in the box colour with black or white text: above the box (or inside it at the top edge of
    the image), or with ``below`` under its bottom edge ``y1`` (prediction labels, so they do not cover ground truth
    labels)."""
    text = shown(text)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=fnt)
    pad = max(1, (bottom - top) // 6)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    if below:
        ly = y1 + 1 if y1 + 1 + th <= img_h else max(0, y1 - th + 1)
    else:
        ly = y0 - th if y0 - th >= 0 else max(0, min(y0, img_h - th))
    lx = max(0, min(x0, img_w - tw))
    _fill(draw, lx, ly, lx + tw - 1, ly + th - 1, colour)
    draw.text((lx + pad - left, ly + pad - top), text, fill=text_colour_on(colour), font=fnt)


def draw_items(image: Image.Image, items: Sequence[DrawItem], *, scale: tuple[float, float] = (1.0, 1.0),
               width: int | None = None, font_size: int | None = None) -> Image.Image:
    """Draw ``items`` onto ``image`` **in place** (an RGB image) and return it. Used by the renderers, which own their
    image; notebook code should call :func:`draw_boxes`, which copies.

    ``scale`` maps box coordinates to this image (for thumbnails). Boxes are clipped to the image. Degenerate boxes
    (zero area, inverted after swapping, or wholly outside), and warning boxes too small to see, get a ring marker
    so a problem is never invisible.
    """
    W, H = image.size
    lw_full = width or line_width_for(W, H)
    fnt = font(font_size or font_size_for(W, H))
    draw = ImageDraw.Draw(image)
    sx, sy = scale
    labels: list[tuple[str, int, int, int, RGB, bool]] = []
    for it in items:
        if it.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {it.style!r}")
        bx1, by1, bx2, by2 = it.box
        bx1, bx2 = sorted((bx1 * sx, bx2 * sx))
        by1, by2 = sorted((by1 * sy, by2 * sy))
        x0, y0 = max(0, _px(bx1)), max(0, _px(by1))
        x1, y1 = min(W, _px(bx2)) - 1, min(H, _px(by2)) - 1
        colour = WARNING_COLOUR if it.style == "warning" else it.colour
        lw = max(1, lw_full // 2) if it.thin else lw_full
        too_small = it.style == "warning" and (x1 - x0 < 2 * lw or y1 - y0 < 2 * lw)
        if x1 < x0 or y1 < y0 or too_small:
            # Nothing (or too little) to outline: mark the spot (clamped into the image) with a ring, so a problem
            # box of a pixel or two is never hidden under its own label.
            cx = min(max(_px((bx1 + bx2) / 2), 0), W - 1)
            cy = min(max(_px((by1 + by2) / 2), 0), H - 1)
            r = max(6, 4 * lw)
            if it.style == "warning":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=WARNING_COLOUR_2, width=lw + 2)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=lw)
            x0, y0, y1 = max(0, cx - r), max(0, cy - r), min(H - 1, cy + r)
        elif it.style != "warning":
            # at most a sixth of the box's shorter side: a 28 px line (an 8000 px aerial image) filled a 20 px car
            lw = min(lw, max(1, (min(x1 - x0, y1 - y0) + 1) // 6))
            _outline(draw, x0, y0, x1, y1, colour, lw, dash=max(4, 3 * lw) if it.style == "dashed" else 0)
        else:
            _outline(draw, x0, y0, x1, y1, WARNING_COLOUR_2, lw)
            _outline(draw, x0, y0, x1, y1, WARNING_COLOUR, lw, dash=max(4, 3 * lw))
        if it.text:
            labels.append((it.text, x0, y0, y1, colour, it.thin))
    for text, x0, y0, y1, colour, below in labels:  # labels last, so no outline crosses a label
        _label(draw, text, x0, y0, y1, colour, fnt, W, H, below)
    return image


def to_rgb(image) -> Image.Image:
    """A PIL RGB image from a PIL image of any mode or a ``HxW`` / ``HxWx3`` / ``HxWx4`` array, or a ``CxHxW`` one
    (a tensor the datasets return): the pixels the datasets train on and ``stats`` counts
    (:func:`datatools.core.images.to_rgb`: a 16-bit image's top 8 bits, alpha dropped), so what is drawn is what a
    model sees. A float array is taken as 0-1 (a training tensor's range), a 16-bit one by its top 8 bits."""
    if not isinstance(image, Image.Image):
        import numpy as np

        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected an HxW, HxWxC or CxHxW image array, got shape {arr.shape}")
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):  # channels first
            arr = arr.transpose(1, 2, 0)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.dtype.kind == "f":
            arr = np.clip(arr.astype(np.float64) * (255.0 if arr.size and arr.max() <= 1.0 else 1.0), 0, 255)
        elif arr.dtype == np.uint16:
            arr = arr >> 8
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return images.to_rgb(image)


def draw_boxes(image, boxes, labels: Sequence[str] | None = None, *, scores: Sequence[float] | None = None,
               colours: Sequence[RGB] | None = None, styles: Sequence[str] | None = None, width: int | None = None,
               font_size: int | None = None, show_labels: bool = True) -> Image.Image:
    """Draw boxes on a copy of ``image`` and return it (an RGB PIL image); the input is never changed.

    Use it in a notebook to look at one image and its boxes: ``draw_boxes(Image.open(p), [a.box for a in anns],
    [a.label for a in anns])``. ``boxes`` are continuous pixel XYXY (``N x 4``). Colours default to
    :func:`class_colour` of each label, so a class looks the same here as in ``datatools visualize``. ``styles`` per
    box: ``solid``, ``dashed`` (used for difficult objects) or ``warning`` (hazard tape, used for findings).
    ``scores`` are appended to the label text (``cat 0.87``). Line width and font size scale with the image size
    unless given.
    """
    img = to_rgb(image)
    img = img.copy()
    rows = [tuple(float(v) for v in b) for b in boxes]
    for k, b in enumerate(rows):
        if len(b) != 4:
            raise ValueError(f"box {k} has {len(b)} values; expected 4 (x1, y1, x2, y2)")
    n = len(rows)
    for name, seq in (("labels", labels), ("scores", scores), ("colours", colours), ("styles", styles)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} boxes")
    items = []
    for k, b in enumerate(rows):
        label = labels[k] if labels is not None else ""
        colour = tuple(colours[k]) if colours is not None else (class_colour(label) if label else DEFAULT_COLOUR)
        text = label
        if scores is not None:
            text = f"{label} {scores[k]:.2f}".strip()
        items.append(DrawItem(b, colour, text if show_labels else "", styles[k] if styles is not None else "solid"))  # type: ignore[arg-type]
    return draw_items(img, items, width=width, font_size=font_size)
