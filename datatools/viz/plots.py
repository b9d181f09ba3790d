"""PNG histograms for ``datatools stats --plots DIR`` (matplotlib, Agg backend: no display needed).

Use :func:`write_stats_plots` after :func:`datatools.ops.stats.dataset_stats`; every file is written atomically and
the list of paths is returned. Plots are rendered with a fixed size and DPI and no timestamps, so the same statistics
give the same images.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from datatools.core.atomic import atomic_write

_DPI = 100


def plot_text(text: str, limit: int | None = None) -> str:
    """Data (a class name) as matplotlib draws it literally: ``$`` escaped (it starts mathtext), and characters the
    font lacks as their escape (:func:`~datatools.viz.draw.shown`; matplotlib warned and drew empty boxes); cut to
    ``limit`` characters with an ellipsis (a long name printed over its neighbours, or off a title)."""
    from datatools.viz.draw import shown

    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return shown(text).replace("$", r"\$")


def figure(w: float = 7.0, h: float = 4.0, *, dpi: int = _DPI):
    """A bare matplotlib Figure (Agg, constrained layout) of ``w`` x ``h`` inches: every PNG plot starts here."""
    from matplotlib.figure import Figure

    # A bare Figure (not pyplot) keeps no global state and needs no backend: savefig draws a PNG with Agg whatever
    # backend a notebook has chosen, which is left alone.
    return Figure(figsize=(w, h), dpi=dpi, layout="constrained")


def save_png(fig, path: Path) -> str:
    """Write ``fig`` to ``path`` as a PNG, atomically and without a timestamp (the same plot, the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write(path, buf.getvalue())
    return str(path)


def _log_hist(ax, values: np.ndarray, *, title: str, xlabel: str) -> None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    else:
        lo, hi = v.min(), v.max()
        bins = np.geomspace(lo, hi if hi > lo else lo * 1.01, 50)
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on narrow ranges
        ax.hist(v, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.4)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


MAX_CLASS_BARS = 60


def write_stats_plots(report, out_dir: str | os.PathLike) -> list[str]:
    """Write classes.png, objects_per_image.png, box_sizes.png, box_shapes.png, image_sizes.png and, when pixel
    statistics were computed, pixel_histogram.png into ``out_dir``."""
    out = Path(out_dir)
    lab = report.labels
    arr = lab.arrays
    files = []

    names = list(lab.class_objects)
    shown = f"{len(names):,} classes"
    if len(names) > MAX_CLASS_BARS:  # LVIS' 1,203 classes made a PNG 42,305 px wide
        names = sorted(names, key=lambda n: -lab.class_objects[n])[:MAX_CLASS_BARS]
        shown = f"the {MAX_CLASS_BARS} with most objects of {shown} (all in stats --json)"
    fig = figure(max(6.0, 0.35 * len(names) + 2), 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [lab.class_objects[n] for n in names], 0.4, label="objects", color="#4c72b0")
    ax.bar(x + 0.2, [lab.class_images[n] for n in names], 0.4, label="images", color="#dd8452")
    many = len(names) > 8 or sum(len(n) for n in names) > 48  # names that would print over each other
    ax.set_xticks(x, [plot_text(n, 24) for n in names], rotation=60 if many else 0, ha="right" if many else "center")
    ax.set_title(f"classes: {lab.objects:,} objects in {lab.images:,} images; {shown}")
    ax.set_ylabel("count")
    ax.legend()
    files.append(save_png(fig, out / "classes.png"))

    fig = figure()
    ax = fig.add_subplot()
    counts = lab.objects_per_image_counts
    ax.bar(list(counts), list(counts.values()), color="#4c72b0")
    ax.set_title(f"objects per image ({lab.empty_images:,} images without objects)")
    ax.set_xlabel("objects in the image")
    ax.set_ylabel("images")
    ax.xaxis.get_major_locator().set_params(integer=True)  # counts: no 2.5 objects on the axis
    files.append(save_png(fig, out / "objects_per_image.png"))

    fig = figure(11, 7)
    axes = fig.subplots(2, 2)
    _log_hist(axes[0, 0], arr["width"], title="box width (px)", xlabel="pixels")
    _log_hist(axes[0, 1], arr["height"], title="box height (px)", xlabel="pixels")
    _log_hist(axes[1, 0], np.sqrt(arr["area"]), title="sqrt(box area) (px); COCO small < 32 <= medium < 96",
              xlabel="pixels")
    for edge in (32, 96):
        axes[1, 0].axvline(edge, color="#c44e52", linestyle="--", linewidth=1)
    _log_hist(axes[1, 1], arr["aspect"], title="aspect ratio (width / height)", xlabel="w / h")
    files.append(save_png(fig, out / "box_sizes.png"))

    fig = figure(11, 4.5)
    ax1, ax2 = fig.subplots(1, 2)
    rw, rh = arr["rel_width"], arr["rel_height"]
    if rw.size:
        h2 = ax1.hist2d(rw, rh, bins=40, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1)
        fig.colorbar(h2[3], ax=ax1, label="boxes")
    ax1.set_title("relative box size")
    ax1.set_xlabel("width / image width")
    ax1.set_ylabel("height / image height")
    _log_hist(ax2, arr["rel_area"], title="box area / image area", xlabel="fraction of the image")
    files.append(save_png(fig, out / "box_shapes.png"))

    fig = figure(6, 5)
    ax = fig.add_subplot()
    iw, ih = arr["image_width"], arr["image_height"]
    if iw.size:
        pairs, n = np.unique(np.stack([iw, ih], axis=1), axis=0, return_counts=True)
        ax.scatter(pairs[:, 0], pairs[:, 1], s=10 + 200 * n / n.max(), alpha=0.6, color="#4c72b0")
    ax.set_title(f"image sizes ({lab.image_sizes['distinct']} distinct)")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    files.append(save_png(fig, out / "image_sizes.png"))

    px = report.pixels
    if px is not None and px.pixels:
        fig = figure(8, 4.5)
        ax = fig.add_subplot()
        levels = np.arange(256)
        for ch, (name, colour) in enumerate(zip("RGB", ("#c44e52", "#55a868", "#4c72b0"))):
            frac = px.histogram[ch] / px.histogram[ch].sum()
            ax.plot(levels, frac, color=colour,
                    label=f"{name}: mean {px.mean[ch]:.4f}, std {px.std[ch]:.4f}")
        ax.set_xlim(0, 255)
        ax.set_xlabel("pixel value")
        ax.set_ylabel("fraction of pixels")
        est = " (estimate from a sample)" if px.estimate else ""
        ax.set_title(f"pixel values over {px.images:,} images{est}")
        ax.legend()
        files.append(save_png(fig, out / "pixel_histogram.png"))
    return files
