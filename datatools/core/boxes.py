"""The only box-conversion code in datatools.

Internally every box is absolute, continuous pixel XYXY as floats: the image spans ``[0, W] x [0, H]`` and a box
covering pixel columns ``i..j`` (0-based) is ``[i, j + 1]``. Formats convert on entry and on exit through these
functions, so a convention is decided in exactly one place. VOC's 1-based inclusive indices are read under a named,
exactly invertible :class:`PixelConvention` (``as-is``, ``devkit``, ``ultralytics``); see
docs/formats-and-conventions.md#voc-pixel-convention---pixel-convention.
"""
from __future__ import annotations

from enum import Enum


class PixelConvention(str, Enum):
    DEVKIT = "devkit"
    AS_IS = "as-is"
    ULTRALYTICS = "ultralytics"


# (offset added to xmin/ymin, offset added to xmax/ymax) when reading VOC into continuous pixels
_OFFSETS = {
    PixelConvention.DEVKIT: (-1.0, 0.0),
    PixelConvention.AS_IS: (0.0, 0.0),
    PixelConvention.ULTRALYTICS: (-1.0, -1.0),
}

DEFAULT_CONVENTION = PixelConvention.AS_IS


class BoxFormat(str, Enum):
    XYXY = "xyxy"  # absolute corners (internal)
    XYWH = "xywh"  # absolute top-left + size (COCO)
    CXCYWH_NORM = "cxcywh-norm"  # centre + size normalized by image size (YOLO)


Box = tuple[float, float, float, float]


def voc_to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float, convention: PixelConvention) -> Box:
    lo, hi = _OFFSETS[convention]
    return (xmin + lo, ymin + lo, xmax + hi, ymax + hi)


def xyxy_to_voc(box: Box, convention: PixelConvention) -> Box:
    lo, hi = _OFFSETS[convention]
    return (box[0] - lo, box[1] - lo, box[2] - hi, box[3] - hi)


def file_box(box: Box, convention: PixelConvention | str | None) -> Box:
    """``box`` (internal XYXY) in the numbers its file wrote: VOC numbers under ``convention``; a box from a format
    without a pixel convention (``None``) as it is. For messages: a finding shows what the user sees in the file, so
    ``xmin=0`` read ``devkit`` is shown as 0, never as -1."""
    return box if convention is None else xyxy_to_voc(box, PixelConvention(convention))


def xywh_to_xyxy(x: float, y: float, w: float, h: float) -> Box:
    return (x, y, x + w, y + h)


def is_finite(box: Box) -> bool:
    """Whether every coordinate is a finite number: values finite as written can pass any float once made pixels
    (a YOLO ``1e308`` times the width, a COCO ``x + w``); every reader drops such a box as ``bad-number``."""
    return all(v - v == 0.0 for v in box)


def xyxy_to_xywh(box: Box) -> Box:
    return (box[0], box[1], box[2] - box[0], box[3] - box[1])


def yolo_to_xyxy(cx: float, cy: float, w: float, h: float, width: float, height: float) -> Box:
    hw, hh = w * width / 2.0, h * height / 2.0
    x, y = cx * width, cy * height
    return (x - hw, y - hh, x + hw, y + hh)


def xyxy_to_yolo(box: Box, width: float, height: float) -> Box:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2.0 / width, (y1 + y2) / 2.0 / height, (x2 - x1) / width, (y2 - y1) / height)


def xywh_to_xyxy_array(a):
    """Vectorised :func:`xywh_to_xyxy` for an ``(N, 4)`` float array (numpy or torch); returns a new float array.
    Duck-typed so this module imports no numpy."""
    out = a + 0.0
    out[:, 2:] += a[:, :2]
    return out


def xyxy_to_xywh_array(b):
    """Vectorised :func:`xyxy_to_xywh` for an ``(N, 4)`` float array (numpy or torch); returns a new float array."""
    out = b + 0.0
    out[:, 2:] -= b[:, :2]
    return out


def convert(box: Box, src: BoxFormat, dst: BoxFormat, *, width: float | None = None, height: float | None = None) -> Box:
    """Convert one box between formats. Normalized formats need the image size."""
    src, dst = BoxFormat(src), BoxFormat(dst)
    if src == dst:
        return box
    if src is BoxFormat.XYWH:
        xyxy = xywh_to_xyxy(*box)
    elif src is BoxFormat.CXCYWH_NORM:
        if not width or not height:
            raise ValueError("normalized boxes need the image width and height")
        xyxy = yolo_to_xyxy(*box, width, height)
    else:
        xyxy = box
    if dst is BoxFormat.XYXY:
        return xyxy
    if dst is BoxFormat.XYWH:
        return xyxy_to_xywh(xyxy)
    if not width or not height:
        raise ValueError("normalized boxes need the image width and height")
    return xyxy_to_yolo(xyxy, width, height)


def clip(box: Box, width: float, height: float) -> Box:
    return (min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
            min(max(box[2], 0.0), width), min(max(box[3], 0.0), height))


def snap(value: float, *, side: float = 0) -> float:
    """Round to the nearest integer when within float noise: what a normalized round trip leaves (6 decimals of a
    fraction of ``side``, the image's longer side, are off by up to 1e-6 x ``side`` per coordinate: 0.004 px at
    4032 px), or 1e-3 px."""
    r = round(value)
    return float(r) if abs(value - r) <= max(1e-3, 2e-6 * side) else value


def fmt_number(value: float, precision: int) -> str:
    """Deterministic text for a coordinate: integers without a decimal point, others with at most ``precision`` places."""
    text = f"{value:.{precision}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text



def fmt_numbers(values, precision: int) -> str:
    """``" ".join(fmt_number(v, precision) for v in values)`` with one function call per row instead of one per
    number: label files hold millions of numbers. Gives exactly the same text as :func:`fmt_number` (tested)."""
    if precision <= 0:
        return " ".join(fmt_number(v, precision) for v in values)
    spec = "%." + str(precision) + "f"
    out = [(spec % v).rstrip("0").rstrip(".") for v in values]  # a point is always there when precision > 0
    return " ".join(["0" if t == "-0" else t for t in out]) if "-0" in out else " ".join(out)
