"""PNG plots for ``evaluate --plots``: one precision-recall curve per class and the confusion matrix.

matplotlib runs with the Agg backend (no display needed); files are written atomically.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from datatools.core.atomic import atomic_write, make_dirs
from datatools.metrics.voc import VOCResult


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


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write(path, buf.getvalue())


def plot_pr_curves(result: VOCResult, out: str | os.PathLike) -> list[str]:
    """``pr_<class>.png`` per class (raw curve and the interpolated envelope that AP integrates) and ``pr_all.png``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out)
    make_dirs(out)
    files = []
    taken = {"all"}
    fig_all, ax_all = plt.subplots(figsize=(6, 5))
    for c in result.classes:
        fig, ax = plt.subplots(figsize=(5, 4))
        if len(c.recall) and c.positives:
            env = np.maximum.accumulate(c.precision[::-1])[::-1]
            ax.plot(c.recall, c.precision, lw=1, alpha=0.5, label="precision")
            ax.step(c.recall, env, where="pre", lw=2, label="interpolated")
            ax_all.step(c.recall, env, where="pre", lw=1.5, label=f"{c.name} {c.ap:.3f}")
        ap = "n/a" if c.ap != c.ap else f"{c.ap:.3f}"
        ax.set_title(f"{c.name}: AP{int(round(result.iou_threshold * 100))} = {ap} "
                     f"({c.positives} GT, {c.detections} det)")
        for a in (ax,):
            a.set_xlim(0, 1.01)
            a.set_ylim(0, 1.01)
            a.set_xlabel("recall")
            a.set_ylabel("precision")
            a.grid(alpha=0.3)
        ax.legend(loc="lower left")
        p = out / f"pr_{_file_stem(c.name, taken)}.png"
        _save(fig, p)
        plt.close(fig)
        files.append(str(p))
    m = result.map
    ax_all.set_title(f"PR curves, mAP{int(round(result.iou_threshold * 100))} = {m:.3f}" if m == m else "PR curves")
    ax_all.set_xlim(0, 1.01)
    ax_all.set_ylim(0, 1.01)
    ax_all.set_xlabel("recall")
    ax_all.set_ylabel("precision")
    ax_all.grid(alpha=0.3)
    if result.classes and len(result.classes) <= 25:
        ax_all.legend(loc="lower left", fontsize=7)
    p = out / "pr_all.png"
    _save(fig_all, p)
    plt.close(fig_all)
    files.append(str(p))
    return files


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], out: str | os.PathLike, *, iou: float,
                   conf: float) -> str:
    """``confusion_matrix.png``: counts, rows normalized to colour (true class -> predicted class)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(class_names) + ["background"]
    n = len(names)
    size = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (IoU >= {iou:g}, score >= {conf:g})")
    fig.tight_layout()
    out = Path(out)
    make_dirs(out)
    p = out / "confusion_matrix.png"
    _save(fig, p)
    plt.close(fig)
    return str(p)
