"""Plots for the report as inline SVG strings, written by hand: a few kilobytes each, crisp at any zoom, no
matplotlib start-up and no image decoding in the browser.

Every text that can come from the data (class names, split names) goes through :func:`html.escape`. Layout numbers
are rounded to 0.1 px so the same data gives the same bytes.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

import numpy as np

BAR = "#4c72b0"
AXIS = "#888"
W, H = 420, 220  # default plot size (px)
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 52, 12, 22, 38


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def fmt(v: float) -> str:
    """A short axis label: 1,234 / 12.3 / 0.012 / 1.2e+06."""
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v:.2g}"
    if a >= 100 or v == int(v):
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _open(w: int, h: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'role="img" aria-label="{escape(title)}">',
            f'<text x="{w / 2:.0f}" y="14" text-anchor="middle" class="pt">{escape(title)}</text>']


def _empty(title: str, w: int = W, h: int = H) -> str:
    parts = _open(w, h, title)
    parts.append(f'<text x="{w / 2:.0f}" y="{h / 2:.0f}" text-anchor="middle" class="pl">no data</text></svg>')
    return "".join(parts)


def histogram(values: Sequence[float] | np.ndarray, *, title: str, xlabel: str, bins: int = 40, log_x: bool = False,
              w: int = W, h: int = H) -> str:
    """A histogram of ``values`` (all of them: the numbers come from the whole dataset); ``log_x`` bins
    geometrically, for sizes and aspect ratios that span decades. Each bar has a tooltip with its range and count."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if log_x:
        v = v[v > 0]
    if v.size == 0:
        return _empty(title, w, h)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo * 1.01 + (0 if log_x else 1)
    edges = np.geomspace(lo, hi, bins + 1) if log_x else np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(v, bins=edges)
    return _bars([f"{fmt(a)} to {fmt(b)}" for a, b in zip(edges[:-1], edges[1:])], counts.tolist(), title=title,
                 xlabel=xlabel + (" (log scale)" if log_x else ""), ticks=(fmt(lo), fmt(math.sqrt(lo * hi) if log_x
                                                                                         else (lo + hi) / 2), fmt(hi)),
                 w=w, h=h)


def counts_bars(counts: dict[int, int], *, title: str, xlabel: str, w: int = W, h: int = H) -> str:
    """Bars for integer values and their counts (objects per image): one bar per value from the smallest to the
    largest, so gaps show; above 60 values it becomes a histogram."""
    if not counts:
        return _empty(title, w, h)
    lo, hi = min(counts), max(counts)
    if hi - lo + 1 > 60:
        values = np.repeat(np.array(list(counts), dtype=np.float64), np.array(list(counts.values())))
        return histogram(values, title=title, xlabel=xlabel, w=w, h=h)
    keys = list(range(lo, hi + 1))
    return _bars([str(k) for k in keys], [counts.get(k, 0) for k in keys], title=title, xlabel=xlabel,
                 # a middle tick only where a bar's centre is the middle (an odd count of bars): else it sat between two
                 ticks=(str(lo), str((lo + hi) // 2) if hi - lo > 1 and (hi - lo) % 2 == 0 else "", str(hi)), w=w, h=h)


def _bars(names: list[str], counts: list[int], *, title: str, xlabel: str, ticks: tuple[str, str, str], w: int,
          h: int) -> str:
    parts = _open(w, h, title)
    pw, ph = w - _PAD_L - _PAD_R, h - _PAD_T - _PAD_B
    top = max(counts) or 1
    bw = pw / len(counts)
    x0, y0 = _PAD_L, _PAD_T + ph
    for i, (name, c) in enumerate(zip(names, counts)):
        bh = ph * c / top
        parts.append(f'<rect x="{_n(x0 + i * bw + 0.5)}" y="{_n(y0 - bh)}" width="{_n(max(bw - 1, 0.6))}" '
                     f'height="{_n(bh)}" fill="{BAR}"><title>{escape(name)}: {c:,}</title></rect>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0 + pw}" y2="{y0}" stroke="{AXIS}"/>'
                 f'<line x1="{x0}" y1="{_PAD_T}" x2="{x0}" y2="{y0}" stroke="{AXIS}"/>')
    parts.append(f'<text x="{x0 - 4}" y="{_PAD_T + 4}" text-anchor="end" class="pl">{top:,}</text>'
                 f'<text x="{x0 - 4}" y="{y0}" text-anchor="end" class="pl">0</text>')
    for frac, anchor, t in zip((0.0, 0.5, 1.0), ("start", "middle", "end"), ticks):
        if t:
            parts.append(f'<text x="{_n(x0 + frac * pw)}" y="{y0 + 14}" text-anchor="{anchor}" class="pl">'
                         f'{escape(t)}</text>')
    parts.append(f'<text x="{_n(x0 + pw / 2)}" y="{h - 6}" text-anchor="middle" class="pl">{escape(xlabel)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _css(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def stacked_shares(rows: dict[str, dict[str, int]], colours: dict[str, tuple[int, int, int]], *, title: str,
                   w: int = 640) -> str:
    """One horizontal bar per row (a split), split into the shares of each class (class colours as in
    ``visualize``), so unbalanced splits stand out. ``rows``: {split: {class: objects}}."""
    if not rows:
        return _empty(title, w, 80)
    label_w, bar_h, gap = 90, 22, 8
    h = _PAD_T + 8 + len(rows) * (bar_h + gap) + 10
    parts = _open(w, h, title)
    pw = w - label_w - 20
    for r, (split, counts) in enumerate(rows.items()):
        y = _PAD_T + 8 + r * (bar_h + gap)
        total = sum(counts.values())
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="pl">{escape(split)}</text>')
        x = float(label_w)
        for cls, c in counts.items():
            if not c:
                continue
            bw = pw * c / total
            parts.append(f'<rect x="{_n(x)}" y="{y}" width="{_n(bw)}" height="{bar_h}" fill="{_css(colours[cls])}">'
                         f'<title>{escape(split)} / {escape(cls)}: {c:,} objects ({c / total:.1%})</title></rect>')
            x += bw
        if not total:
            parts.append(f'<text x="{label_w}" y="{y + 15}" class="pl">no objects</text>')
    parts.append("</svg>")
    return "".join(parts)


def pixel_histogram(hist: np.ndarray, *, title: str, w: int = W, h: int = H) -> str:
    """The (3, 256) R, G, B value counts as three lines (share of pixels per value)."""
    hist = np.asarray(hist, dtype=np.float64)
    if hist.sum() == 0:
        return _empty(title, w, h)
    share = hist / hist.sum(axis=1, keepdims=True).clip(min=1)
    top = float(share.max()) or 1.0
    parts = _open(w, h, title)
    pw, ph = w - _PAD_L - _PAD_R, h - _PAD_T - _PAD_B
    x0, y0 = _PAD_L, _PAD_T + ph
    for ch, colour in zip(share, ("#d62728", "#2ca02c", "#1f77b4")):
        pts = " ".join(f"{_n(x0 + pw * i / 255)},{_n(y0 - ph * v / top)}" for i, v in enumerate(ch))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.2" opacity="0.85"/>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0 + pw}" y2="{y0}" stroke="{AXIS}"/>'
                 f'<text x="{x0}" y="{y0 + 14}" class="pl">0</text>'
                 f'<text x="{x0 + pw}" y="{y0 + 14}" text-anchor="end" class="pl">255</text>'
                 f'<text x="{x0 - 4}" y="{_PAD_T + 4}" text-anchor="end" class="pl">{top:.1%}</text>'
                 f'<text x="{_n(x0 + pw / 2)}" y="{h - 6}" text-anchor="middle" class="pl">pixel value (R, G, B)</text>')
    parts.append("</svg>")
    return "".join(parts)


def size_scatter(sizes: list[tuple[int, int, int]], *, title: str, w: int = W, h: int = H) -> str:
    """Image sizes: one circle per distinct (width, height), its area growing with the number of images."""
    if not sizes:
        return _empty(title, w, h)
    parts = _open(w, h, title)
    pw, ph = w - _PAD_L - _PAD_R, h - _PAD_T - _PAD_B
    x0, y0 = _PAD_L, _PAD_T + ph
    mw = max(s[0] for s in sizes) * 1.05
    mh = max(s[1] for s in sizes) * 1.05
    top = max(s[2] for s in sizes)
    for sw, sh, n in sizes:
        r = 2 + 8 * math.sqrt(n / top)
        parts.append(f'<circle cx="{_n(x0 + pw * sw / mw)}" cy="{_n(y0 - ph * sh / mh)}" r="{_n(r)}" fill="{BAR}" '
                     f'fill-opacity="0.55"><title>{sw}x{sh}: {n:,} images</title></circle>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0 + pw}" y2="{y0}" stroke="{AXIS}"/>'
                 f'<line x1="{x0}" y1="{_PAD_T}" x2="{x0}" y2="{y0}" stroke="{AXIS}"/>'
                 f'<text x="{x0 + pw}" y="{y0 + 14}" text-anchor="end" class="pl">{fmt(mw)}</text>'
                 f'<text x="{x0}" y="{y0 + 14}" class="pl">0</text>'
                 f'<text x="{x0 - 4}" y="{_PAD_T + 4}" text-anchor="end" class="pl">{fmt(mh)}</text>'
                 f'<text x="{_n(x0 + pw / 2)}" y="{h - 6}" text-anchor="middle" class="pl">width (px); height up</text>')
    parts.append("</svg>")
    return "".join(parts)


def anchor_boxes(anchors: Sequence[tuple[float, float]], *, title: str, w: int = 300, h: int = 300) -> str:
    """The anchors drawn as rectangles on one centre, to scale, the largest fitting the square."""
    if not anchors:
        return _empty(title, w, h)
    parts = _open(w, h, title)
    side = min(w, h) - 40
    top = max(max(a) for a in anchors) or 1.0
    cx, cy = w / 2, 22 + side / 2
    for i, (aw, ah) in enumerate(anchors):
        rw, rh = side * aw / top, side * ah / top
        hue = int(360 * i / max(1, len(anchors)))
        parts.append(f'<rect x="{_n(cx - rw / 2)}" y="{_n(cy - rh / 2)}" width="{_n(rw)}" height="{_n(rh)}" '
                     f'fill="none" stroke="hsl({hue},70%,45%)" stroke-width="1.5"><title>anchor {i}: '
                     f'{aw:.1f} x {ah:.1f}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)
