"""Contact sheets: many captioned thumbnails per image file, the fastest way to scan a dataset by eye.

:class:`SheetLayout` fixes the geometry (so tests and users can predict the size of a sheet); :func:`contact_sheet`
pastes tiles into it. Tiles are letterboxed into ``tile_w x tile_h`` and captioned underneath.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw

from datatools.viz.draw import RGB, font, shown

BACKGROUND: RGB = (32, 32, 32)
CAPTION_COLOUR: RGB = (235, 235, 235)
CAPTION_WARN: RGB = (255, 120, 120)


def parse_grid(text: str) -> tuple[int, int]:
    """``"4x4"`` -> (rows, cols). Raises ValueError for anything else (1..50 per side)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected ROWSxCOLS such as 4x4, not {text!r}") from None
    if not (1 <= rows <= 50 and 1 <= cols <= 50):
        raise ValueError(f"rows and columns must be between 1 and 50, not {text!r}")
    return rows, cols


@dataclass(frozen=True, slots=True)
class SheetLayout:
    """Geometry of one contact sheet: ``rows x cols`` tiles of ``tile_w x tile_h`` pixels, each with a caption strip
    ``caption_h`` high underneath, ``pad`` pixels between tiles and around the edge."""

    rows: int
    cols: int
    tile_w: int = 320
    tile_h: int = 240
    pad: int = 6
    caption_h: int = 18

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1 or self.tile_w < 16 or self.tile_h < 16:
            raise ValueError(f"bad sheet layout {self.rows}x{self.cols} of {self.tile_w}x{self.tile_h} tiles")

    @classmethod
    def for_tile(cls, rows: int, cols: int, tile_w: int) -> "SheetLayout":
        """A layout whose tiles are ``tile_w`` wide and 3/4 as high, with a caption sized to the tile."""
        return cls(rows, cols, tile_w, max(16, tile_w * 3 // 4), pad=max(8, tile_w // 32),
                   caption_h=max(14, tile_w // 16))

    @property
    def per_sheet(self) -> int:
        return self.rows * self.cols

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of a sheet in pixels."""
        return (self.pad + self.cols * (self.tile_w + self.pad),
                self.pad + self.rows * (self.tile_h + self.caption_h + self.pad))

    def tile_box(self, k: int) -> tuple[int, int, int, int]:
        """Inclusive-exclusive pixel box (x0, y0, x1, y1) of tile ``k`` (row-major), caption excluded."""
        if not 0 <= k < self.per_sheet:
            raise ValueError(f"tile {k} is outside a {self.rows}x{self.cols} sheet")
        r, c = divmod(k, self.cols)
        x0 = self.pad + c * (self.tile_w + self.pad)
        y0 = self.pad + r * (self.tile_h + self.caption_h + self.pad)
        return (x0, y0, x0 + self.tile_w, y0 + self.tile_h)


def fit_size(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The size of a ``width x height`` image scaled (up or down) to fit ``box_w x box_h`` keeping its aspect."""
    s = min(box_w / width, box_h / height)
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def _shorten(draw: ImageDraw.ImageDraw, text: str, fnt, max_w: int) -> str:
    """Cut text from the left (file names differ at their end) with an ellipsis until it fits ``max_w`` pixels."""
    if draw.textlength(text, font=fnt) <= max_w:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # smallest cut that fits
        mid = (lo + hi) // 2
        if draw.textlength("…" + text[mid:], font=fnt) <= max_w:
            hi = mid
        else:
            lo = mid + 1
    return "…" + text[lo:]


def contact_sheet(tiles: Sequence[tuple[Image.Image, str, str]], layout: SheetLayout) -> Image.Image:
    """Paste up to ``layout.per_sheet`` tiles into a new sheet, row-major.

    Each tile is ``(image, caption_left, caption_right)``: the image is centred in its cell (scaled down to fit when
    larger), the left caption (the file name) is shortened to fit, the right one (the box count) is kept whole.
    A right caption starting with ``!`` is drawn in the warning colour (without the ``!``).
    """
    if len(tiles) > layout.per_sheet:
        raise ValueError(f"{len(tiles)} tiles do not fit a {layout.rows}x{layout.cols} sheet")
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    fnt = font(max(9, layout.caption_h - 5))
    for k, (img, left, right) in enumerate(tiles):
        x0, y0, x1, y1 = layout.tile_box(k)
        if img.width > layout.tile_w or img.height > layout.tile_h:
            img = img.resize(fit_size(img.width, img.height, layout.tile_w, layout.tile_h), Image.Resampling.BILINEAR)
        sheet.paste(img, (x0 + (layout.tile_w - img.width) // 2, y0 + (layout.tile_h - img.height) // 2))
        colour = CAPTION_COLOUR
        if right.startswith("!"):
            right, colour = right[1:], CAPTION_WARN
        right = shown(right)
        rw = int(draw.textlength(right, font=fnt)) if right else 0
        left = _shorten(draw, shown(left), fnt, layout.tile_w - rw - 8)
        ty = y1 + max(0, (layout.caption_h - fnt.size) // 2) if hasattr(fnt, "size") else y1 + 2
        draw.text((x0 + 1, ty), left, fill=CAPTION_COLOUR, font=fnt)
        if right:
            draw.text((x1 - rw - 1, ty), right, fill=colour, font=fnt)
    return sheet
