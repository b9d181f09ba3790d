"""Thumbnails for the report: which images the gallery shows (a seeded sample per class) and drawing them.

Boxes are drawn by :func:`datatools.viz.draw.draw_items` in :func:`~datatools.viz.draw.class_colour`, so a class has
the colour it has in ``datatools visualize``; difficult objects are dashed, and the box of a ``check`` finding is
hazard tape (``warning`` style), as ``visualize --check`` draws it. Drawing runs on the one parallel map.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from datatools.core.model import Dataset, Finding, ImageRecord
from datatools.core.parallel import ProgressFn, map_items
from datatools.viz.draw import DrawItem, class_colour

THUMB_QUALITY = 80


@dataclass(frozen=True, slots=True)
class Thumb:
    """One drawn thumbnail: the image it shows, the group it belongs to (a class, or a finding code), the JPEG bytes
    (empty when the image could not be drawn) and why not (``error``)."""

    group: str
    image_id: str
    path: str
    caption: str
    jpeg: bytes = b""
    error: str = ""


def sample_per_class(ds: Dataset, classes: Sequence[str], per_class: int, seed: int, limit: int
                     ) -> tuple[list[tuple[str, ImageRecord]], int]:
    """Up to ``per_class`` images with an image file for each class, drawn with ``random.Random(seed)`` from the
    images holding that class (sorted by id, so the draw does not depend on reading order), then interleaved class
    by class and cut at ``limit``: when the page budget is small, every class still gets its first examples.
    Returns the picks and how many there were before the cut."""
    rng = random.Random(seed)
    holders: dict[str, list[ImageRecord]] = {c: [] for c in classes}
    for im in sorted(ds.images, key=lambda r: r.image_id):
        if not im.image_path:
            continue
        for label in dict.fromkeys(a.label for a in im.annotations):
            holders.setdefault(label, []).append(im)
    picks = {c: rng.sample(ims, min(per_class, len(ims))) for c, ims in holders.items()}
    out: list[tuple[str, ImageRecord]] = []
    for k in range(per_class):
        for c, ims in picks.items():
            if k < len(ims):
                out.append((c, ims[k]))
    return out[:limit], len(out)


def items_for(im: ImageRecord, finding: Finding | None = None) -> tuple[DrawItem, ...]:
    """What to draw on ``im``: every object in its class colour (difficult ones dashed), and the box of
    ``finding`` as hazard tape labelled with its code."""
    items = [DrawItem(tuple(a.box), class_colour(a.label), a.label, "dashed" if a.difficult else "solid")  # type: ignore[arg-type]
             for a in im.annotations]
    if finding is not None and finding.box is not None:
        items.append(DrawItem(tuple(finding.box), (230, 20, 20), finding.code, "warning"))  # type: ignore[arg-type]
    return tuple(items)


def draw_thumb(job: tuple[str, tuple[DrawItem, ...], int]) -> tuple[bytes, str]:
    """Worker: decode ``path`` upright at about ``size`` px, draw the items, encode a JPEG. Returns (bytes, '') or
    (b'', why): a missing or broken image is reported, never fatal."""
    from PIL import Image

    from datatools.viz.draw import draw_items
    from datatools.viz.render import LOAD_ERRORS, encode, error_text, load_image

    path, items, size = job
    try:
        im, scale = load_image(path, fit=(size, size))
    except (*LOAD_ERRORS, Image.DecompressionBombError) as e:
        return b"", error_text(e)
    draw_items(im, items, scale=scale, width=2 if max(im.size) <= 400 else None)
    return encode(im, "jpg", THUMB_QUALITY), ""


def draw_thumbs(jobs: Sequence[tuple[str, str, str, str, tuple[DrawItem, ...]]], *, size: int,
                workers: int | None = None, progress: ProgressFn | None = None,
                on_total: Callable[[int], None] | None = None) -> list[Thumb]:
    """Draw (group, image_id, path, caption, items) jobs; an image drawn for two groups is decoded once (so
    ``on_total`` gets the number of pictures drawn, which ``progress`` then counts)."""
    unique = list(dict.fromkeys((path, items) for _, _, path, _, items in jobs))
    if on_total:
        on_total(len(unique))
    drawn = map_items(draw_thumb, [(p, it, size) for p, it in unique], workers=workers, progress=progress,
                      min_per_worker=24)
    by_key = dict(zip(unique, drawn))
    return [Thumb(group, iid, path, caption, *by_key[(path, items)]) for group, iid, path, caption, items in jobs]
