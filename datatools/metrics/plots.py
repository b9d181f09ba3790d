"""PNG plots for ``evaluate --plots``: one precision-recall curve per class and the confusion matrix.

Figures come from :func:`datatools.viz.plots.figure` and are written by :func:`~datatools.viz.plots.save_png`, as
the ``stats`` plots are (Agg backend, no display needed, atomic writes, no timestamps).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from datatools.core.atomic import make_dirs
from datatools.metrics.voc import VOCResult
from datatools.viz.plots import figure, plot_text, save_png


def _file_stem(name: str, taken: set[str]) -> str:
    """A file-name stem for class ``name``, not one of ``taken`` (which it joins): ``a b`` and ``a/b`` are ``a_b``
    and ``a_b_2``, and a class named ``all`` never overwrites the summary plot ``pr_all.png``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "class"
    unique, n = stem, 1
    while unique in taken:
        n += 1
        unique = f"{stem}_{n}"
    taken.add(unique)
    return unique


def plot_pr_curves(result: VOCResult, out: str | os.PathLike) -> list[str]:
    """``pr_<class>.png`` per class (raw curve and the interpolated envelope that AP integrates) and ``pr_all.png``."""
    out = Path(out)
    make_dirs(out)
    files = []
    taken = {"all"}
    n = len(result.classes)
    fig_all = figure(8.5 if n > 8 else 6, 5, dpi=110)
    ax_all = fig_all.add_subplot()
    for k, c in enumerate(result.classes):
        fig = figure(5, 4, dpi=110)
        ax = fig.add_subplot()
        name = plot_text(c.name, 32)
        if len(c.recall) and c.positives:
            env = np.maximum.accumulate(c.precision[::-1])[::-1]
            # from recall 0: a class of one detection is a line, not a point drawn as nothing
            r, e = np.concatenate([[0.0], c.recall]), np.concatenate([env[:1], env])
            ax.plot(c.recall, c.precision, lw=1, alpha=0.5, marker=".", label="precision")
            ax.step(r, e, where="pre", lw=2, label="interpolated")
            ax.legend(loc="lower left")
            ax_all.step(r, e, where="pre", lw=1.5, color=_curve_colour(k, n), label=f"{name} {c.ap:.3f}")
        ap = "n/a" if c.ap != c.ap else f"{c.ap:.3f}"
        ax.set_title(f"{name}: AP{int(round(result.iou_threshold * 100))} = {ap} ({c.positives} GT, "
                     f"{c.detections} det)", fontsize=10)
        _pr_axes(ax)
        files.append(save_png(fig, out / f"pr_{_file_stem(c.name, taken)}.png"))
    m = result.map
    ax_all.set_title(f"PR curves, mAP{int(round(result.iou_threshold * 100))} = {m:.3f}" if m == m else "PR curves")
    _pr_axes(ax_all)
    if 0 < n <= 8:
        ax_all.legend(loc="lower left", fontsize=7)
    elif n <= 25:  # beside the axes: inside, it covered half the curves
        ax_all.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0)
    files.append(save_png(fig_all, out / "pr_all.png"))
    return files


def _curve_colour(k: int, n: int):
    """The colour of curve ``k`` of ``n``: tab10 up to 10 classes, tab20 up to 20 (its pairs of a dark and a light
    tone are near twins for fewer), hues spread evenly beyond (matplotlib's cycle repeats after 10, and the hashed
    class colours of drawn boxes can be near twins)."""
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"](k) if n <= 20 else colormaps["hsv"](0.9 * k / n)


def _pr_axes(ax) -> None:
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.05)  # a curve at precision 1 stays clear of the frame
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], out: str | os.PathLike, *, iou: float,
                   conf: float) -> str:
    """``confusion_matrix.png``: counts, rows normalized to colour (true class -> predicted class)."""
    names = list(class_names) + ["background"]
    n = len(names)
    size = min(4 + 0.45 * n, 24)
    fig = figure(size, size * 0.85, dpi=110)
    ax = fig.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    shown = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's boxes (row)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), [plot_text(c) for c in names], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [plot_text(c) for c in names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (IoU >= {iou:g}, score >= {conf:g})")
    out = Path(out)
    make_dirs(out)
    return save_png(fig, out / "confusion_matrix.png")
