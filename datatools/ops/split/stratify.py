"""Multi-label iterative stratification over images (or groups of images) and the passes that finish it.

Use :func:`stratify` for the whole job: :func:`iterative_stratification` places every sample, :func:`fit_part_sizes`
moves samples until the parts hold the asked numbers of images, :func:`balance_by_swaps` swaps samples where that
brings every class closer to its share. The three steps are public for tests and for callers with their own counts.
Every function takes a ``numpy.random.Generator`` and returns a new index; the arrays given are never changed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def stratify(counts: np.ndarray, fractions: np.ndarray, n: int, rng: np.random.Generator, *,
             weights: np.ndarray | None = None) -> np.ndarray:
    """The part of every sample (an image, or a group of ``weights`` images): iterative stratification, then the part
    sizes fitted to whole numbers of images, then swaps that balance the classes. ``counts`` is (samples, labels),
    ``fractions`` the asked share of each part, ``n`` the number of images."""
    index = iterative_stratification(counts, fractions * n, rng=rng, weights=weights)
    sizes = integer_targets(n, fractions)
    index = fit_part_sizes(index, counts, sizes, weights=weights, rng=rng)
    return balance_by_swaps(index, counts, sizes, weights=weights, rng=rng)


def integer_targets(n: int, fractions: np.ndarray) -> list[int]:
    """Whole image counts that add up to n: the largest remainders get the leftover images, ties to the first part."""
    raw = np.asarray(fractions, dtype=np.float64) * n
    base = np.floor(raw).astype(np.int64)
    rest = n - int(base.sum())
    order = sorted(range(len(raw)), key=lambda j: (-(raw[j] - base[j]), j))
    for j in order[:rest]:
        base[j] += 1
    return [int(b) for b in base]


def _sample_sizes(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Each sample's size in images: 1 for an image, the image count for a group."""
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def _wanted(targets: Sequence[int], totals: np.ndarray) -> np.ndarray:
    """(parts, features): what each part should hold of each feature, by its share of the images."""
    target = np.asarray(targets, dtype=np.float64)
    return np.outer(target / max(target.sum(), 1.0), totals)


def iterative_stratification(counts: np.ndarray, targets: np.ndarray, *, rng: np.random.Generator,
                             weights: np.ndarray | None = None) -> np.ndarray:
    """Multi-label iterative stratification (Sechidis et al., 2011), with object counts as label demands.

    ``counts`` is (samples, labels) object counts, ``targets`` the wanted size of each part in sample-weight units
    (images), ``weights`` each sample's size (1 for an image, the image count for a group). Returns the part index of
    every sample. Samples without labels are placed last, each to the part that still needs the most.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n, c = counts.shape
    k = len(targets)
    weights = _sample_sizes(weights, n)
    total = float(weights.sum())
    frac = np.asarray(targets, dtype=np.float64) / total if total else np.full(k, 1.0 / k)
    need_labels = np.outer(frac, counts.sum(axis=0))  # (parts, labels): objects each part still wants
    need_size = np.asarray(targets, dtype=np.float64).copy()  # images each part still wants
    present = counts > 0
    left = present.sum(axis=0).astype(np.int64)  # unassigned samples per label
    out = np.full(n, -1, dtype=np.int64)
    while True:
        live = np.flatnonzero(left > 0)
        if live.size == 0:
            break
        fewest = live[left[live] == left[live].min()]
        label = int(fewest[rng.integers(fewest.size)]) if fewest.size > 1 else int(fewest[0])
        todo = rng.permutation(np.flatnonzero(present[:, label] & (out < 0)))
        # Largest first (then the seeded order): like bin packing, small images fill the gaps big ones leave.
        todo = todo[np.argsort(-counts[todo, label], kind="stable")]
        for i in todo:
            j = _pick(need_labels[:, label], need_size, rng)
            out[i] = j
            need_labels[j] -= counts[i]
            need_size[j] -= weights[i]
            left -= present[i]
    for i in rng.permutation(np.flatnonzero(out < 0)):
        j = _pick(need_size, need_size, rng)
        out[i] = j
        need_size[j] -= weights[i]
    return out


def fit_part_sizes(index: np.ndarray, counts: np.ndarray, targets: Sequence[int], *, rng: np.random.Generator,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """Move samples between parts until each part holds its whole-number target of images: exactly for single
    images; for groups, until no single move of a group brings the sizes closer (:func:`balance_by_swaps` then tries
    swaps). Each move is the one that disturbs the class balance least.

    The stratification balances objects, so a part that draws images with many objects fills up with fewer images.
    Without this pass a part can end several percent off in images, and a count asked (``--val 40``) would not be
    the count you get. ``counts`` is (samples, labels), ``weights`` each sample's size in images (default 1).
    Returns a new index; the one given is not changed.
    """
    index = np.array(index, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    k = len(targets)
    weights = _sample_sizes(weights, len(index))
    target = np.asarray(targets, dtype=np.float64)
    totals = counts.sum(axis=0)
    scale = 1.0 / np.maximum(totals, 1.0)  # a class's error as a share of that class: rare classes count as much
    want = _wanted(targets, totals)
    have = np.zeros((k, counts.shape[1]))
    np.add.at(have, index, counts)
    size = np.bincount(index, weights=weights, minlength=k).astype(np.float64)
    tiebreak = rng.random(len(index))
    while True:
        over = size - target
        moved = False
        for j in np.argsort(-over, kind="stable"):
            if over[j] <= 0:
                break
            for dst in np.argsort(over, kind="stable"):
                if over[dst] >= 0:
                    break
                members = np.flatnonzero(index == j)
                w = weights[members]
                gain = abs(over[j]) + abs(over[dst]) - np.abs(over[j] - w) - np.abs(over[dst] + w)
                ok = gain > 1e-9
                if not ok.any():
                    continue
                cand, gain = members[ok], gain[ok]
                c = counts[cand]
                ej, ed = have[j] - want[j], have[dst] - want[dst]  # each class's excess in both parts
                damage = (np.abs(ej - c) - np.abs(ej) + np.abs(ed + c) - np.abs(ed)) @ scale
                order = np.lexsort((tiebreak[cand], -gain, damage))
                # The best move, then more in the same order up to half the gap (in images) before looking again:
                # a few rounds instead of one per image. Only the first may overshoot (a group bigger than the gap).
                budget, taken = min(over[j], -over[dst]) / 2, 0.0
                for n_moved, i in enumerate(cand[order]):
                    if n_moved and taken + weights[i] > budget:
                        continue
                    index[i] = dst
                    have[j] -= counts[i]
                    have[dst] += counts[i]
                    size[j] -= weights[i]
                    size[dst] += weights[i]
                    taken += weights[i]
                moved = True
                break
            if moved:
                break
        if not moved:
            return index


def balance_by_swaps(index: np.ndarray, counts: np.ndarray, targets: Sequence[int], *, rng: np.random.Generator,
                     weights: np.ndarray | None = None, candidates: int = 64,
                     attempts: int | None = None) -> np.ndarray:
    """Swap samples between parts where that brings every class closer to its asked share, in objects and in images
    at once, without changing the part sizes. For groups of different sizes a swap must not move the part sizes away
    from their targets; one that brings them closer is taken first, whatever it does to the classes.

    The objective is the sum over parts and classes of the squared error of the share, counted in objects and (at
    half weight) in images containing the class, each relative to the class's total (so a rare class weighs as much
    as a common one). On a skewed 3,000-image set, objects alone leave the images per class 12% off; half weight
    keeps both within 1.5-2.5%. Each sample, in a seeded order, tries a swap with up to ``candidates`` samples drawn at
    random from the other parts and takes the best one that lowers the objective. ``attempts`` (default: every
    sample, but at most max(4000, n/6) of them) bounds the time on large sets; each attempt costs the same whatever
    n is. Returns a new index.
    """
    index = np.array(index, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    n = len(index)
    k = len(targets)
    weights = _sample_sizes(weights, n)
    feats = np.hstack([counts, (counts > 0).astype(np.float64)])  # objects, then "has the class", per class
    tot = feats.sum(axis=0)
    scale = 1.0 / np.maximum(tot, 1.0)
    scale[counts.shape[1]:] *= np.sqrt(0.5)  # the images term weighs half the objects term (measured best)
    target = np.asarray(targets, dtype=np.float64)
    want = _wanted(targets, tot)
    err = np.zeros((k, feats.shape[1]))
    np.add.at(err, index, feats)
    err = (err - want) * scale  # each part's scaled error per feature
    off = np.bincount(index, weights=weights, minlength=k) - target  # each part's size error, in images
    scaled = feats * scale
    budget = attempts if attempts is not None else min(n, max(4000, n // 6))
    for i in rng.permutation(n)[:budget]:
        a = index[i]
        # Candidates drawn at random from the whole set (those in part a dropped), not from a list of the other
        # parts' members, which would cost a pass over n per attempt.
        others = np.unique(rng.integers(0, n, size=2 * candidates))
        others = others[index[others] != a][:candidates]
        if others.size == 0:
            continue
        b = index[others]
        d = scaled[others] - scaled[i]  # what part a gains, and each candidate's part loses, by the swap
        ea, eb = err[a], err[b]
        delta = ((ea + d) ** 2 - ea ** 2).sum(axis=1) + ((eb - d) ** 2 - eb ** 2).sum(axis=1)
        dw = weights[others] - weights[i]
        sizes = (off[a] + dw) ** 2 - off[a] ** 2 + (off[b] - dw) ** 2 - off[b] ** 2  # 0 for images of one size
        good = (sizes < -1e-9) | ((sizes <= 1e-9) & (delta < -1e-12))
        if good.any():
            pick = np.flatnonzero(good)
            best = int(pick[np.lexsort((delta[pick], np.round(sizes[pick], 9)))[0]])
            m, pb = others[best], b[best]
            err[a] += d[best]
            err[pb] -= d[best]
            off[a] += dw[best]
            off[pb] -= dw[best]
            index[i], index[m] = pb, a
    return index


def _pick(primary: np.ndarray, secondary: np.ndarray, rng: np.random.Generator) -> int:
    """The part with the most ``primary`` need, ties to the most ``secondary`` need, then to a seeded coin."""
    best = np.flatnonzero(primary == primary.max())
    if best.size > 1:
        sec = secondary[best]
        best = best[sec == sec.max()]
    return int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])
