"""Shapes read as boxes, by one rule for every format that has shapes other than boxes (CVAT, LabelMe, Label Studio,
YOLO segments).

A shape given by points is read through :func:`shape_points`: points that are not a list of ``[x, y]`` pairs are a
``bad-shape`` error, a coordinate that is not a finite number a ``bad-number`` error, and a count the shape cannot
have (a polygon with fewer than 3 points) a ``bad-shape`` error; each drops the shape, counted. What was read as a box
and what was dropped for having no area is told once per annotation by :func:`box_notes` (``polygon-to-box``,
``shape-to-box``, ``unsupported-shape``). See docs/check.md.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

from datatools.core.model import Finding
from datatools.formats.common import err, info, warn
from datatools.formats.values import json_number

# What a polygon needs: (the words a bad-shape message says, the point counts allowed; () = MIN_POLYGON_POINTS or
# more). A shape of fewer points has no area to box (ultralytics and pycocotools refuse them as well).
MIN_POLYGON_POINTS = 3
POLYGON = ("at least 3", ())


def shape_points(pts, *, kind: str, path: str, fld: str, image_id: str, findings: list[Finding],
                 need: tuple[str, tuple[int, ...]] = POLYGON, number: Callable[[object], float | None] = json_number,
                 shown: object = None) -> tuple[list[float], list[float]] | None:
    """``(xs, ys)`` of a shape's points, or None after the error finding that drops it (``objects=1``). ``pts`` is
    a list of ``[x, y]`` pairs, each read by ``number`` (:func:`~datatools.formats.values.json_number` for JSON,
    :func:`~datatools.formats.values.text_number` for the texts of an XML attribute split into pairs); ``need`` the
    counts a ``kind`` allows (a LabelMe rectangle 2 or 4, a circle 2), a polygon's by default. ``shown`` is what
    the messages quote (default ``pts``: CVAT quotes its ``points`` attribute as written)."""
    shown = pts if shown is None else shown
    if not isinstance(pts, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pts):
        findings.append(err("bad-shape", path, fld, f"expected a list of [x, y] points, found {shown!r}; dropped",
                            image_id=image_id, objects=1))
        return None
    xs, ys = [number(p[0]) for p in pts], [number(p[1]) for p in pts]
    if any(v is None for v in xs + ys):
        findings.append(err("bad-number", path, fld, f"a point is not a finite number: {shown!r}; dropped",
                            image_id=image_id, objects=1))
        return None
    words, counts = need
    if not (len(pts) in counts if counts else len(pts) >= MIN_POLYGON_POINTS):
        findings.append(err("bad-shape", path, fld, f"a {kind} needs {words} points, found {len(pts)}; dropped",
                            image_id=image_id, objects=1))
        return None
    return xs, ys  # type: ignore[return-value]


def envelope(xs: list[float], ys: list[float]) -> tuple[float, float, float, float]:
    """The pixel XYXY box of points: how a polygon (and every shape whose box is its points') is read."""
    return (min(xs), min(ys), max(xs), max(ys))


def centred_envelope(cx: float, cy: float, hw: float, hh: float, angle: float, *,
                     ellipse: bool = False) -> tuple[float, float, float, float]:
    """The pixel XYXY box around a box of half-sizes ``hw`` x ``hh`` (or an ellipse of those radii) centred at
    (``cx``, ``cy``) and rotated by ``angle`` degrees about its centre, as CVAT rotates both (its XML and its COCO
    export's ``attributes.rotation``): the farthest corners of a box, the tangents parallel to the axes of an
    ellipse."""
    if angle % 360:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        if ellipse:
            hw, hh = math.hypot(hw * c, hh * s), math.hypot(hw * s, hh * c)
        else:
            hw, hh = abs(hw * c) + abs(hh * s), abs(hw * s) + abs(hh * c)
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def box_notes(path: str, image_id: str, *, at: str, boxable: str = "", noun: str = "shape", polygons: int = 0,
              to_box: Mapping[str, int] | None = None, unsupported: Mapping[str, int] | None = None,
              show: str = "{!r}", kind_at: Callable[[str], str] | None = None) -> list[Finding]:
    """What one annotation's shapes became, counted, with one finding each: its ``polygons`` read as their bounding
    box (``polygon-to-box``, at ``at``), per other kind of ``to_box`` read as its exact box (``shape-to-box``), per
    kind of ``unsupported`` without an area to box (``unsupported-shape``, a warning that counts the objects it
    drops). ``noun`` is what the format calls a shape (``shape``, ``region``, ``row``), ``show`` how a kind is
    quoted (``<{}>`` for CVAT's tags), ``boxable`` the shapes that are read (for an ``unsupported`` one's message),
    ``kind_at`` a kind's field (default ``at``)."""
    field_of = kind_at or (lambda kind: at)
    out = []
    if polygons:
        out.append(info("polygon-to-box", path, at, f"{polygons} polygon {noun}(s) read as their bounding box",
                        image_id=image_id))
    for kind, n in sorted((to_box or {}).items()):
        out.append(info("shape-to-box", path, field_of(kind), f"{n} {show.format(kind)} {noun}(s) read as their "
                        "bounding box", image_id=image_id))
    for kind, n in sorted((unsupported or {}).items()):
        out.append(warn("unsupported-shape", path, field_of(kind), f"{n} {show.format(kind)} {noun}(s) have no area "
                        f"to box (not {boxable}); dropped", image_id=image_id, objects=n))
    return out
