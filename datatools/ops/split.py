"""``split``: leak-free train/val/test splits and k folds, written in the input's own convention.

Use :func:`plan_split` to decide which image goes where (pure: the dataset in, a :class:`SplitPlan` out, nothing
written), then :func:`write_split` to write the parts next to each other in OUT. Methods:

* ``stratified`` (default): multi-label iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011). The rarest
  class is placed first, each of its images going to the part that still needs the most objects of that class, so
  every class, rare ones included, lands in every part close to the asked share. Demands are counted in objects (an
  image with 5 cars moves 5 cars); within a class, images with more of its objects go first; ties go to the part that
  still needs the most images, then to a seeded coin. Images without objects count as one more class, so they are
  spread in the asked proportions too. Then :func:`fit_part_sizes` moves images until every part holds exactly its
  asked number of images (a count asked is the count you get), and :func:`balance_by_swaps` swaps images between
  parts where that brings each class closer to its share, in objects and in images containing it.
* ``random``: a seeded permutation cut at the asked sizes.
* ``group``: the same stratification on groups of images, so frames of one video never straddle parts (part sizes
  close to the ask, as far as moving and swapping whole groups gets). The group key
  comes from ``group_by``: a regex on the image id (``regex:P`` or a bare ``P``: the first capture group, or the whole
  match), an image-level field (``attr:video_id``: a COCO image dict key; ``attr:folder``, ``attr:source.database``:
  VOC tags), or a mapping file (:func:`read_group_file`). Images without a key are each their own group, counted in a
  finding, never dropped.
* ``hash``: a part chosen by ``sha1(image id)`` (or of the group key) mapped to [0, 1): adding images later never moves
  an existing one. Ratios only; the seed is not used.

Randomness comes from a ``numpy.random.Generator`` made from the seed; the caller's data and the global generators are
never touched. The same seed and input give the same plan and the same output bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from datatools.core.errors import FormatError, UsageError
from datatools.core.engine import place_images
from datatools.core.io import (ImagesMode, ProgressFn, check_output_dir, dataset_inputs, read_small_file,
                               refuse_replacing_inputs, safe_join, staged_dir, write_files)
from datatools.core.model import Dataset, Finding, ImageRecord, Severity
from datatools.formats.common import warn

METHODS = ("stratified", "random", "group", "hash")
TRAIN, VAL, TEST = "train", "val", "test"


# --------------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True, slots=True)
class PartReport:
    """What one part holds: images, objects, empty images, objects and images per class."""

    name: str
    asked: float
    images: int
    objects: int
    empty: int
    class_objects: dict[str, int]
    class_images: dict[str, int]

    def to_dict(self) -> dict:
        return {"name": self.name, "asked": self.asked, "images": self.images, "objects": self.objects,
                "empty_images": self.empty, "class_objects": self.class_objects, "class_images": self.class_images}


@dataclass(frozen=True)
class SplitPlan:
    """Which part every image goes to, and how close each part came to the asked share.

    ``parts`` maps part name (``train``/``val``/``test``, or ``fold_0``... and ``test`` for k-fold) to sorted image ids.
    ``deviation`` is the largest |actual share - asked share| over parts, for images and for each class's objects.
    """

    dataset: Dataset
    method: str
    seed: int
    kfold: int
    parts: dict[str, tuple[str, ...]]
    asked: dict[str, float]
    reports: tuple[PartReport, ...]
    deviation: dict[str, object]
    dropped_empty: tuple[str, ...] = ()
    groups: int = 0
    findings: tuple[Finding, ...] = ()
    group_source: str = ""

    def part_of(self) -> dict[str, str]:
        return {iid: name for name, ids in self.parts.items() for iid in ids}

    def layouts(self) -> list[tuple[str, dict[str, str]]]:
        """What is written: ``[(subfolder, {image_id: split})]``; one entry, or one ``fold_i`` folder per fold
        (fold i is ``val``, the other folds ``train``, the held-out ``test`` stays ``test``)."""
        if not self.kfold:
            return [("", self.part_of())]
        out = []
        for i in range(self.kfold):
            me = f"fold_{i}"
            assign = {}
            for name, ids in self.parts.items():
                split = TEST if name == TEST else (VAL if name == me else TRAIN)
                assign.update({iid: split for iid in ids})
            out.append((me, assign))
        return out

    def to_dict(self) -> dict:
        return {"method": self.method, "seed": self.seed, "kfold": self.kfold, "images": len(self.dataset.images),
                "objects": self.dataset.num_objects, "groups": self.groups,
                "group_source": self.group_source or None, "asked": self.asked,
                "parts": [r.to_dict() for r in self.reports], "max_deviation": self.deviation,
                "dropped_empty": len(self.dropped_empty), "findings": [f.to_dict() for f in self.findings],
                "assignment": {name: list(ids) for name, ids in self.parts.items()}}


def _amount(value: float | None, n: int, what: str) -> float:
    """A ratio in [0, 1) stays a ratio; a whole number >= 1 is a count of images."""
    if value is None or value == 0:
        return 0.0
    if value < 0:
        raise UsageError(f"--{what} must not be negative")
    if value < 1:
        return float(value)
    if value != int(value):
        raise UsageError(f"--{what} {value}: give a ratio below 1 or a whole number of images")
    if n == 0:
        return 0.0
    return int(value) / n


def plan_split(ds: Dataset, *, val: float | None = None, test: float = 0.0, method: str = "stratified",
               seed: int = 0, group_by: "str | GroupFile | Mapping[str, str] | None" = None, kfold: int = 0,
               drop_empty: bool = False) -> SplitPlan:
    """Decide the parts for every image of ``ds`` (nothing is written; see :func:`write_split`).

    ``val``/``test`` are ratios (``0.2``) or image counts (``200``). ``kfold=K`` holds ``test`` out first and cuts the
    rest into K folds (``val`` must then be left unset). Images without objects are kept and spread over the parts
    unless ``drop_empty``.

    ``group_by`` (for ``group`` and ``hash``) names where an image's group comes from: ``"regex:PATTERN"`` (or a bare
    pattern) on the image id, ``"attr:NAME"`` an image-level field of the annotations (see :func:`image_attributes`),
    a :class:`GroupFile` from :func:`read_group_file`, or a ``{image_id: group}`` mapping. Images without a group
    become their own group and are counted in a finding.
    """
    if method not in METHODS:
        raise UsageError(f"unknown split method {method!r}: choose one of {', '.join(METHODS)}")
    if isinstance(group_by, str) and not group_by.strip():
        group_by = None
    if method == "group" and group_by is None:
        raise UsageError("--method group needs --group-by REGEX, --group-by attr:NAME or --groups FILE")
    if group_by is not None and method in ("random", "stratified"):
        raise UsageError(f"--group-by and --groups apply to --method group or hash, not {method}")
    if isinstance(group_by, str):
        parse_group_by(group_by)  # a bad form is a usage error before any work
    if kfold < 0 or kfold == 1:
        raise UsageError("--kfold must be at least 2")
    if kfold and val is not None:
        raise UsageError("--kfold makes the val parts itself: leave --val out")
    records = sorted(ds.images, key=lambda r: r.image_id)
    dropped: tuple[str, ...] = ()
    if drop_empty:
        dropped = tuple(r.image_id for r in records if not r.annotations)
        records = [r for r in records if r.annotations]
    n = len(records)
    if n == 0:
        raise UsageError("there are no images to split")
    if val is None and not kfold:
        val = 0.2
    if method == "hash" and any(v is not None and v >= 1 for v in (val, test)):
        raise UsageError("--method hash takes ratios (e.g. 0.2), not image counts: counts would move with growth")
    r_val, r_test = _amount(val, n, "val"), _amount(test, n, "test")
    if r_val + r_test >= 1:
        asked_parts = " + ".join(f"--{nm} {_as_given(v)}" for nm, v in (("val", val), ("test", test)) if v)
        raise UsageError(f"{asked_parts} is {round((r_val + r_test) * n):,} of the {n:,} images: that leaves "
                         "nothing to train on")
    if kfold:
        names = [TEST] + [f"fold_{i}" for i in range(kfold)] if r_test else [f"fold_{i}" for i in range(kfold)]
        asked = ({TEST: r_test} if r_test else {}) | {f"fold_{i}": round((1 - r_test) / kfold, 12)
                                                      for i in range(kfold)}
    else:
        names = [TRAIN, VAL] + ([TEST] if r_test else [])
        asked = {TRAIN: round(1 - r_val - r_test, 12), VAL: r_val} | ({TEST: r_test} if r_test else {})
        if not r_val:
            names.remove(VAL)
            del asked[VAL]
    fractions = np.array([asked[nm] for nm in names], dtype=np.float64)
    classes = list(ds.classes) + sorted({a.label for r in records for a in r.annotations} - set(ds.classes))
    findings: list[Finding] = []
    groups = 0
    source = ""
    keys = [r.image_id for r in records]
    if group_by is not None:
        keys, found, source = resolve_groups(ds, records, group_by)
        findings += found
        groups = len(set(keys))
    units = groups if group_by is not None else n
    for_folds = units - (max(1, round(r_test * units)) if r_test else 0)  # what the test part leaves to the folds
    if kfold and kfold > for_folds:
        what = f"{units:,} groups" if group_by is not None else f"{n:,} images"
        left = f", {for_folds:,} of them after the test part" if r_test else ""
        raise UsageError(f"--kfold {kfold}: there are only {what}{left}, so some folds would be empty")
    rng = np.random.default_rng(seed)
    if method == "hash":
        index = _hash_assign(keys, names, fractions)
    elif method == "random":
        targets = _integer_targets(n, fractions)
        order = rng.permutation(n)
        index = np.empty(n, dtype=np.int64)
        start = 0
        for j, t in enumerate(targets):
            index[order[start:start + t]] = j
            start += t
    else:
        counts = _label_matrix(records, classes)
        # Images without objects are one more label, so they spread in the asked proportions too.
        counts = np.hstack([counts, (counts.sum(axis=1) == 0).astype(np.int64)[:, None]])
        if method == "group":
            uniq = sorted(set(keys))
            gi = {k: i for i, k in enumerate(uniq)}
            member = np.array([gi[k] for k in keys], dtype=np.int64)
            gcounts = np.zeros((len(uniq), counts.shape[1]), dtype=np.int64)
            np.add.at(gcounts, member, counts)
            weights = np.bincount(member, minlength=len(uniq)).astype(np.float64)
            index = _stratify(gcounts, fractions, n, rng, weights=weights)[member]
        else:
            index = _stratify(counts, fractions, n, rng)
    parts = {nm: tuple(r.image_id for r, j in zip(records, index) if j == k) for k, nm in enumerate(names)}
    findings += _empty_parts(parts, asked, n, units if group_by is not None else 0, method)
    reports = tuple(_report(nm, asked[nm], [r for r, j in zip(records, index) if j == k], classes)
                    for k, nm in enumerate(names))
    kept = ds.evolve(images=tuple(records))
    return SplitPlan(dataset=kept, method=method, seed=seed, kfold=kfold, parts=parts, asked=asked, reports=reports,
                     deviation=_deviation(reports, classes, n), dropped_empty=dropped, groups=groups,
                     findings=tuple(findings), group_source=source)


def _stratify(counts: np.ndarray, fractions: np.ndarray, n: int, rng: np.random.Generator,
              weights: np.ndarray | None = None) -> np.ndarray:
    """The part of every sample (image, or group of ``weights`` images): iterative stratification, then the part
    sizes fitted to whole numbers of images, then swaps that balance the classes."""
    index = iterative_stratification(counts, fractions * n, rng=rng, weights=weights)
    sizes = _integer_targets(n, fractions)
    index = fit_part_sizes(index, counts, sizes, weights=weights, rng=rng)
    return balance_by_swaps(index, counts, sizes, weights=weights, rng=rng)


def _as_given(value: float) -> str:
    return f"{int(value)}" if value >= 1 else f"{value:g}"


def _empty_parts(parts: Mapping[str, tuple[str, ...]], asked: Mapping[str, float], n: int, groups: int,
                 method: str) -> list[Finding]:
    """A warning for each part that was asked for but got no image (too few images or groups for the ratio): a
    training script pointed at an empty val part would otherwise fail late, or validate on nothing."""
    out = []
    for name, ids in parts.items():
        if asked.get(name, 0) > 0 and not ids:
            units = f"{groups:,} groups" if groups else f"{n:,} images"
            if method == "hash":
                why = (f"none of the {units} hashed into its {asked[name]:.3g} share (hash never moves an image, "
                       "so a small set can leave a part empty)")
            elif groups:
                why = f"{units} for {len(parts)} parts"
            else:
                why = f"{asked[name]:.3g} of {units} rounds to none"
            out.append(warn("empty-part", "", name, f"the {name} part is empty: {why}"))
    return out


# --------------------------------------------------------------------------------------------------- algorithms

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
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
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
    weights = np.ones(len(index)) if weights is None else np.asarray(weights, dtype=np.float64)
    target = np.asarray(targets, dtype=np.float64)
    totals = counts.sum(axis=0)
    scale = 1.0 / np.maximum(totals, 1.0)  # a class's error as a share of that class: rare classes count as much
    want = np.outer(target / max(target.sum(), 1.0), totals)
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
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    feats = np.hstack([counts, (counts > 0).astype(np.float64)])  # objects, then "has the class", per class
    tot = feats.sum(axis=0)
    scale = 1.0 / np.maximum(tot, 1.0)
    scale[counts.shape[1]:] *= np.sqrt(0.5)  # the images term weighs half the objects term (measured best)
    target = np.asarray(targets, dtype=np.float64)
    want = np.outer(target / max(target.sum(), 1.0), tot)
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
    best = np.flatnonzero(primary == primary.max())
    if best.size > 1:
        sec = secondary[best]
        best = best[sec == sec.max()]
    return int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])


def _integer_targets(n: int, fractions: np.ndarray) -> list[int]:
    """Whole image counts that add up to n: the largest remainders get the leftover images, ties to the first part."""
    raw = fractions * n
    base = np.floor(raw).astype(np.int64)
    rest = n - int(base.sum())
    order = sorted(range(len(raw)), key=lambda j: (-(raw[j] - base[j]), j))
    for j in order[:rest]:
        base[j] += 1
    return [int(b) for b in base]


def stable_unit(key: str) -> float:
    """``sha1(key)`` as a number in [0, 1): the same on every machine and Python version (unlike ``hash()``)."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def _hash_assign(keys: Sequence[str], names: Sequence[str], fractions: np.ndarray) -> np.ndarray:
    """Fixed intervals of [0, 1): val first, then test, train last (k-fold: test first, then the folds), so growing
    the dataset or changing nothing never moves an image."""
    order = [nm for nm in (VAL, TEST) if nm in names] + [nm for nm in names if nm not in (VAL, TEST)]
    bounds = np.cumsum([fractions[names.index(nm)] for nm in order])
    bounds[-1] = 1.0
    part = {nm: names.index(nm) for nm in order}
    out = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        u = stable_unit(key)
        slot = int(np.searchsorted(bounds, u, side="right"))
        out[i] = part[order[min(slot, len(order) - 1)]]
    return out


# --------------------------------------------------------------------------------------------------- group keys
#
# A group key comes from one of three sources, so that frames of one video or crops of one source never straddle
# parts wherever that fact is recorded:
#   * ``regex:PATTERN`` (or a bare PATTERN): a regex on the image id;
#   * ``attr:NAME``: an image-level field of the annotation (a COCO image dict key, a VOC tag below <annotation>);
#   * a mapping file (:func:`read_group_file`) or a ``{image_id: group}`` mapping, for grouping kept elsewhere.
# Images without a key are never dropped: each becomes its own group and a finding counts them.

_OWN = "\0"  # prefix of an image's own group: never equal to a real group key


def group_keys(image_ids: Sequence[str], pattern: str) -> tuple[list[str], list[str]]:
    """The group of every image id: the regex's first capture group (or whole match) found by ``re.search``.
    Returns (keys, ids that did not match, which become their own group)."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--group-by {pattern!r} is not a valid regular expression: {e}") from e
    keys, unmatched = [], []
    for iid in image_ids:
        m = rx.search(iid)
        if m is None:
            unmatched.append(iid)
            keys.append(_OWN + iid)
        else:
            keys.append(m.group(1) if rx.groups and m.group(1) is not None else m.group(0))
    return keys, unmatched


def _unmatched_findings(unmatched: list[str], pattern: str, total: int) -> list[Finding]:
    if not unmatched:
        return []
    if len(unmatched) == total:  # a typo, not a grouping: as with attr:NAME or a --groups file that matches nothing
        raise UsageError(f"--group-by {pattern}: no image id matches this pattern (first ids: {_first(unmatched)}), "
                         "so there are no groups to keep together")
    return [warn("group-unmatched", "", "group-by",
                 f"{len(unmatched)} image id(s) do not match {pattern} and are each their own group "
                 f"(first: {', '.join(unmatched[:3])})")]


def parse_group_by(text: str) -> tuple[str, str]:
    """``--group-by`` as ``(kind, value)``: ``regex:P`` and a bare ``P`` are ``("regex", P)``; ``attr:NAME`` is
    ``("attr", NAME)``. A regex that itself starts with ``attr:`` or ``regex:`` needs the ``regex:`` prefix."""
    kind, sep, rest = text.partition(":")
    if sep and kind in ("regex", "attr"):
        if not rest.strip():
            raise UsageError(f"--group-by {text!r}: give a {'pattern' if kind == 'regex' else 'field name'} after "
                             f"'{kind}:'")
        return kind, rest if kind == "regex" else rest.strip()
    return "regex", text


@dataclass(frozen=True)
class GroupFile:
    """A ``image -> group`` table read by :func:`read_group_file`; pass it to :func:`plan_split` as ``group_by``.

    ``rows`` are ``(line number, image, group)``; the image cell may be the image id, the annotation's file name or
    the id with an extension. ``maybe_header``: the first row may be a header; it is ignored when its image cell names
    no image of the dataset (a data row for an image that is not there would be ignored anyway).
    """

    path: str
    rows: tuple[tuple[int, str, str], ...]
    image_column: str
    group_column: str
    maybe_header: bool = False


def read_group_file(path: str | os.PathLike, *, group_column: str | None = None,
                    image_column: str | None = None) -> GroupFile:
    """Read a CSV/TSV that maps images to groups, for datasets whose grouping lives outside the annotations.

    Without column names the first column is the image and the second the group, and a header row is optional.
    With ``group_column`` (and/or ``image_column``) the first row must be a header naming them; the image column is
    then the first one that is not the group column unless named. The delimiter is a tab when the first row has one,
    else a comma, else a semicolon. Blank lines and lines starting with ``#`` are skipped. An image given two
    different groups, a short row or an unreadable file raise :class:`FormatError` (file, line, problem); a column
    name the header lacks raises :class:`UsageError`.
    """
    import csv

    p = str(path)
    try:
        text = Path(p).read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise FormatError(p, "", f"cannot read the group file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise FormatError(p, f"byte {e.start}", "expected UTF-8 text (a CSV or TSV file)") from e
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise FormatError(p, "", "the file has no rows; expected lines of 'image_id,group'")
    first = lines[0][1]
    delim = "\t" if "\t" in first else "," if "," in first else ";" if ";" in first else None
    if delim is None:
        raise FormatError(p, f"line {lines[0][0]}", f"expected two columns (image, group) separated by a tab or a "
                                                    f"comma, found {first.strip()!r}")
    parsed = [(n, [c.strip() for c in row]) for (n, _), row in
              zip(lines, csv.reader([ln for _, ln in lines], delimiter=delim))]
    maybe_header = False
    if group_column is None and image_column is None:
        gi, ii, names = 1, 0, ("column 1", "column 2")
        maybe_header = True
    else:
        header = parsed[0][1]
        for opt, name in (("--group-column", group_column), ("--image-column", image_column)):
            if name is not None and name not in header:
                raise UsageError(f"{p}: {opt} {name!r} is not in the header row (line {parsed[0][0]}: columns "
                                 f"{', '.join(repr(h) for h in header)})")
        if group_column is None:
            gi = 1 if header.index(image_column) == 0 else 0  # type: ignore[arg-type]
        else:
            gi = header.index(group_column)
        if image_column is None:
            ii = next((k for k in range(len(header)) if k != gi), -1)
            if ii < 0:
                raise UsageError(f"{p}: the header row has only the group column {group_column!r}; the images need "
                                 "a column too")
        else:
            ii = header.index(image_column)
        if ii == gi:
            raise UsageError(f"{p}: --image-column and --group-column are the same column {header[ii]!r}")
        names = (header[ii], header[gi])
        parsed = parsed[1:]
    need = max(gi, ii) + 1
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, tuple[int, str]] = {}
    for n, cells in parsed:
        if len(cells) < need:
            raise FormatError(p, f"line {n}", f"expected at least {need} columns ({names[0]}, {names[1]}) separated "
                                              f"by {'a tab' if delim == chr(9) else repr(delim)}, found {len(cells)}: "
                                              f"{delim.join(cells)!r}")
        image, group = _norm_image(cells[ii]), cells[gi]
        if not image:
            raise FormatError(p, f"line {n}", f"the {names[0]} cell is empty")
        if group and image in seen and seen[image][1] != group:
            raise FormatError(p, f"line {n}", f"image {image!r} is given group {group!r} here but "
                                              f"{seen[image][1]!r} on line {seen[image][0]}")
        if group:
            seen.setdefault(image, (n, group))
        rows.append((n, image, group))
    return GroupFile(path=p, rows=tuple(rows), image_column=names[0], group_column=names[1], maybe_header=maybe_header)


def _norm_image(cell: str) -> str:
    s = cell.strip().replace("\\", "/")
    while s.startswith("./"):
        s = s[2:]
    return s


def _first(items: Sequence[str], k: int = 3) -> str:
    return ", ".join(items[:k]) + (", ..." if len(items) > k else "")


def _tables(rows: Sequence[tuple[int, str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Lookups by the image cell as written and by it without its extension (``frame1.jpg`` finds id ``frame1``)."""
    by_name: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for _, image, group in rows:
        if group:  # an empty group cell: the image has no group
            by_name.setdefault(image, group)
            by_stem.setdefault(os.path.splitext(image)[0], group)
    return by_name, by_stem


def _mapping_keys(records: Sequence[ImageRecord], gf: GroupFile) -> tuple[list[str], list[Finding]]:
    rows = list(gf.rows)
    by_name, by_stem = _tables(rows)
    ids = {r.image_id for r in records}
    names = {_norm_image(r.file_name) for r in records if r.file_name}
    if gf.maybe_header and rows:  # a header row names no image: leave it out of the counts below
        image = rows[0][1]
        if image not in ids and image not in names and os.path.splitext(image)[0] not in ids:
            rows = rows[1:]
            by_name, by_stem = _tables(rows)
    keys: list[str] = []
    missing: list[str] = []
    for r in records:
        fname = _norm_image(r.file_name) if r.file_name else ""
        for cand, table in ((r.image_id, by_name), (fname, by_name), (r.image_id, by_stem)):
            if cand and cand in table:
                keys.append(table[cand])
                break
        else:
            missing.append(r.image_id)
            keys.append(_OWN + r.image_id)
    if len(missing) == len(records):
        sample = _first([im for _, im, _ in rows]) or "nothing"
        raise FormatError(gf.path, gf.image_column,
                          f"none of the {len(records)} images is in the file: its {gf.image_column} holds e.g. "
                          f"{sample}, while the image ids are e.g. {_first([r.image_id for r in records])} (give "
                          "the image id or the file name the annotation names)")
    findings: list[Finding] = []
    if missing:
        findings.append(warn("group-missing", gf.path, gf.image_column,
                             f"{len(missing)} image(s) have no group in {gf.path} and are each their own group "
                             f"(first: {_first(missing)})"))
    unknown = sorted({im for _, im, _ in rows
                      if im not in ids and im not in names and os.path.splitext(im)[0] not in ids})
    if unknown:
        findings.append(warn("group-unknown-image", gf.path, gf.image_column,
                             f"{len(unknown)} row(s) name images that are not in the dataset and are ignored "
                             f"(first: {_first(unknown)})"))
    return keys, findings


def _flatten(value: object, prefix: str, out: dict[str, str]) -> None:
    """Nested dicts become dotted names (``source.video``); lists and numbers become their JSON text."""
    if value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
        return
    if prefix in out:
        return
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if text.strip():
        out[prefix] = text.strip()




def image_attributes(ds: Dataset, records: Sequence[ImageRecord]) -> list[dict[str, str]]:
    """The image-level fields of every record, by dotted name, as ``--group-by attr:NAME`` sees them.

    COCO: every key of the image's dict in the original JSON (``video_id``, ``source.video`` for nested dicts).
    VOC: every leaf tag below ``<annotation>`` other than the objects (``folder``, ``source.database``,
    ``owner.name``). Read from the record's source file, which :func:`write_split` reads again anyway.
    YOLO has no image-level fields: :class:`UsageError`.
    """
    if ds.format == "yolo":
        raise UsageError("--group-by attr:NAME: YOLO labels have no image-level fields; use --groups FILE, or "
                         "--group-by regex:PATTERN on the image id (e.g. '^(.*)/' for the folder)")
    cache: dict[str, dict[str, dict]] = {}
    out: list[dict[str, str]] = []
    for r in records:
        fields: dict[str, str] = {}
        if ds.format == "coco" and "#" in r.source:
            path, _, raw = r.source.rpartition("#")
            if path not in cache:
                try:
                    doc = json.loads(read_small_file(path).decode("utf-8-sig"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise FormatError(path, "", f"cannot read it again for attr: group keys: {e}") from e
                cache[path] = {str(im.get("id")): im for im in doc.get("images") or [] if isinstance(im, dict)}
            im = cache[path].get(raw) or {}
            flat: dict[str, str] = {}
            _flatten(im, "", flat)
            fields = flat
        elif ds.format == "voc" and r.source:
            from datatools.formats.voc import image_fields

            fields = image_fields(r.source)
        out.append(fields)
    return out


def _attribute_keys(ds: Dataset, records: Sequence[ImageRecord], name: str) -> tuple[list[str], list[Finding]]:
    attrs = image_attributes(ds, records)
    keys: list[str] = []
    missing: list[str] = []
    for r, a in zip(records, attrs):
        if name in a:
            keys.append(a[name])
        else:
            missing.append(r.image_id)
            keys.append(_OWN + r.image_id)
    if len(missing) == len(records):
        known = sorted({k for a in attrs for k in a})
        where = "image dicts" if ds.format == "coco" else "annotations" if ds.format == "voc" else "images"
        raise UsageError(f"--group-by attr:{name}: no image has a field {name!r}; the {where} here have: "
                         f"{', '.join(known[:30]) + (' ...' if len(known) > 30 else '') if known else 'none'}")
    findings = []
    if missing:
        findings.append(warn("group-attr-missing", ds.root, name,
                             f"{len(missing)} image(s) have no field {name!r} and are each their own group "
                             f"(first: {_first(missing)})"))
    return keys, findings


def resolve_groups(ds: Dataset, records: Sequence[ImageRecord],
                   group_by: "str | GroupFile | Mapping[str, str]") -> tuple[list[str], list[Finding], str]:
    """The group key of every record, the findings about images without one, and a label for the source
    (``regex:...``, ``attr:...``, ``file:...``). Images without a key get their own group, never dropped."""
    if isinstance(group_by, GroupFile):
        keys, findings = _mapping_keys(records, group_by)
        return keys, findings, f"file:{group_by.path}"
    if isinstance(group_by, Mapping):
        gf = GroupFile(path="<mapping>", rows=tuple((0, _norm_image(str(k)), str(v)) for k, v in group_by.items()),
                       image_column="image", group_column="group")
        keys, findings = _mapping_keys(records, gf)
        return keys, findings, "mapping"
    kind, value = parse_group_by(group_by)
    if kind == "attr":
        keys, findings = _attribute_keys(ds, records, value)
        return keys, findings, f"attr:{value}"
    keys, unmatched = group_keys([r.image_id for r in records], value)
    return keys, _unmatched_findings(unmatched, value, len(records)), f"regex:{value}"


def _label_matrix(records: Sequence[ImageRecord], classes: Sequence[str]) -> np.ndarray:
    col = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(records), len(classes)), dtype=np.int64)
    for i, r in enumerate(records):
        for a in r.annotations:
            m[i, col[a.label]] += 1
    return m


def _report(name: str, asked: float, records: Sequence[ImageRecord], classes: Sequence[str]) -> PartReport:
    objs: Counter = Counter()
    imgs: Counter = Counter()
    for r in records:
        labels = [a.label for a in r.annotations]
        objs.update(labels)
        imgs.update(set(labels))
    return PartReport(name=name, asked=asked, images=len(records), objects=sum(objs.values()),
                      empty=sum(1 for r in records if not r.annotations),
                      class_objects={c: objs.get(c, 0) for c in classes}, class_images={c: imgs.get(c, 0) for c in classes})


def _deviation(reports: Sequence[PartReport], classes: Sequence[str], n: int) -> dict[str, object]:
    img = max(abs(r.images / n - r.asked) for r in reports)
    worst = (0.0, "", "")
    for c in classes:
        tot = sum(r.class_objects[c] for r in reports)
        if not tot:
            continue
        for r in reports:
            d = abs(r.class_objects[c] / tot - r.asked)
            if d > worst[0]:
                worst = (d, c, r.name)
    return {"images": img, "class_objects": worst[0], "worst_class": worst[1], "worst_part": worst[2]}


# --------------------------------------------------------------------------------------------------- writing

@dataclass
class SplitWriteResult:
    out: str
    files: int = 0
    images_placed: int = 0
    findings: list[Finding] = field(default_factory=list)


_FOLD = re.compile(r"fold_\d+")


def write_split(plan: SplitPlan, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK,
                workers: int | None = None, progress: ProgressFn | None = None, engine: str = "local",
                ray_address: str | None = None) -> SplitWriteResult:
    """Write the plan into ``out`` in the input's own format; the input is never modified.

    * VOC: ``Annotations/`` (the original XML files, copied byte for byte), ``JPEGImages/`` (per ``images_mode``) and
      ``ImageSets/Main/{train,val,test,trainval}.txt``: a complete VOC root.
    * YOLO: ``images/<split>``, ``labels/<split>``, ``data.yaml`` and ``classes.txt`` (the YOLO writer).
    * COCO: ``annotations/instances_<split>.json``, each the original JSON filtered by image id (ids and every other
      field kept), and ``images/<file_name>`` per ``images_mode``.

    With ``kfold`` each fold gets its own ``fold_<i>/`` folder in that layout.

    Each of these folders is built beside its place and swapped in whole (:func:`datatools.core.io.staged_dir`), so
    a split written over an earlier one in the same layout leaves none of its files behind (an old ``test.txt``
    would put test images back into play). ``fold_<i>`` folders that this split does not write (an earlier run had
    more folds, or none) are removed, and so is an earlier image folder under ``images_mode="none"``; each with a
    finding. A k-fold split over a plain one leaves the plain one's top-level folders, with a warning. Nothing that
    is replaced or removed may hold an input (:func:`datatools.core.io.refuse_replacing_inputs`).
    """
    ds = plan.dataset
    images_mode = ImagesMode(images_mode)
    inputs = [ds.root] + ([str(Path(ds.root) / "Annotations")] if ds.format == "voc" else [])
    out = check_output_dir(out, [p for p in inputs if p])
    root = Path(ds.root).resolve() if ds.root else None
    if root is not None and root.is_dir() and (out == root or root in out.parents):
        raise UsageError(f"the output {out} is inside the input {ds.root}: choose a folder outside it")
    from datatools import formats

    layouts = plan.layouts()
    # What this split replaces whole: the format's folders (and data.yaml) at the top or in each fold, and every
    # fold_<i> folder, written or stale. None of it may hold an input.
    owned = list(formats.get(ds.format).OWNED) if ds.format in ("voc", "yolo", "coco") else []
    folds = {sub for sub, _ in layouts if sub} | ({p.name for p in out.iterdir() if _FOLD.fullmatch(p.name)}
                                                  if out.is_dir() else set())
    refuse_replacing_inputs(out, owned + sorted(folds), dataset_inputs(ds))
    result = SplitWriteResult(out=str(out))
    by_id = {r.image_id: r for r in ds.images}
    on = {"engine": engine, "address": ray_address, "workers": workers}
    for sub, assign in layouts:
        target = out / sub if sub else out
        recs = [replace(by_id[iid], splits=(assign[iid],)) for iid in sorted(assign)]
        if ds.format == "voc":
            _write_voc(recs, target, images_mode, result, on)
        elif ds.format == "yolo":
            from datatools.formats import yolo

            res = yolo.write(ds.evolve(images=tuple(recs)), target, images_mode=images_mode, **on)
            if images_mode is ImagesMode.NONE:
                _drop_stale_images(target / "images", result)
            if VAL not in assign.values():
                result.findings.append(warn("val-is-train", str(target / "data.yaml"), "val",
                                            "there is no val part, so data.yaml's val points at images/train "
                                            "(ultralytics needs a val entry): validation there scores training "
                                            "images"))
            result.files += len(res.files)
            result.images_placed += 0 if images_mode is ImagesMode.NONE else sum(1 for r in recs if r.image_path)
            result.findings += res.findings
        elif ds.format == "coco":
            _write_coco(recs, target, images_mode, result, on)
        else:
            raise UsageError(f"cannot write splits for format {ds.format!r}")
        if progress:
            progress(len(recs))
    _remove_stale_folds(out, {sub for sub, _ in layouts if sub}, result)
    if plan.kfold:
        left = sorted(name for name in owned if (out / name).exists())
        if left:  # not removed: a folder of that name at the top of OUT may be the user's own
            result.findings.append(warn("top-level-split-left", str(out), "kfold",
                                        f"OUT also holds {', '.join(left)} at its top level (an earlier split "
                                        "without --kfold?); they were left as they are, beside the fold_<i> "
                                        "folders"))
    return result


def _remove_stale(folders: Sequence[Path], result: SplitWriteResult, code: str, where: Path, field_: str,
                  why: str) -> None:
    """Remove folders an earlier split left that this one does not write, with one info finding naming them."""
    import shutil

    folders = [p for p in folders if p.is_dir() and not p.is_symlink()]
    for p in folders:
        shutil.rmtree(p)
    if folders:
        result.findings.append(Finding(code, Severity.INFO, str(where), field_,
                                       f"removed {', '.join(p.name for p in folders)}, {why}"))


def _remove_stale_folds(out: Path, written: set[str], result: SplitWriteResult) -> None:
    """Remove ``OUT/fold_<i>`` folders left by an earlier split that this one did not write."""
    stale = sorted((p for p in out.iterdir() if _FOLD.fullmatch(p.name) and p.name not in written),
                   key=lambda p: int(p.name[5:])) if out.is_dir() else []
    _remove_stale(stale, result, "stale-folds-removed", out, "kfold", "left by an earlier split with other folds")


def _image_pairs(recs: Sequence[ImageRecord], stage: str, name_of, mode: ImagesMode,
                 result: SplitWriteResult) -> list[tuple[str, str]]:
    """(image, destination inside ``stage``) for every record with an image; an unsafe name is a finding."""
    pairs = []
    if mode is ImagesMode.NONE:
        return pairs
    for rec in recs:
        if not rec.image_path:
            continue
        try:
            dst = safe_join(stage, name_of(rec))
        except UsageError as e:
            result.findings.append(warn("unsafe-filename", rec.source, "file_name", f"{e}; the image was not placed",
                                        image_id=rec.image_id))
            continue
        pairs.append((rec.image_path, str(dst)))
    result.images_placed += len(pairs)
    return pairs


def _drop_stale_images(folder: Path, result: SplitWriteResult) -> None:
    """With ``--images-mode none`` nothing is placed, so an image folder left by an earlier split would hold that
    split's images under this one's part names (YOLO's data.yaml points straight at it). It is removed."""
    _remove_stale([folder], result, "stale-images-removed", folder, "images",
                  "the image folder of an earlier split (--images-mode none places no images)")


def _place_staged(folder: Path, recs: Sequence[ImageRecord], name_of, mode: ImagesMode, result: SplitWriteResult,
                  on: dict) -> None:
    """Place the images of ``recs`` in ``folder``, built as a stage and swapped in (on Ray, by the workers)."""
    if mode is ImagesMode.NONE:
        _drop_stale_images(folder, result)
        return
    if not any(r.image_path for r in recs):
        return
    with staged_dir(folder) as stage:
        pairs = _image_pairs(recs, stage, name_of, mode, result)
        place_images(pairs, mode, stage=stage, **on)


def _write_voc(recs: list[ImageRecord], target: Path, mode: ImagesMode, result: SplitWriteResult, on: dict) -> None:
    lists: dict[str, list[str]] = {}
    with staged_dir(target / "Annotations") as stage:
        # XMLs are copied, never hard-linked: editing the split copy must not edit the input.
        items = [(str(safe_join(stage, r.image_id + ".xml")), read_small_file(r.source)) for r in recs]  # or a URL
        write_files(items, workers=on["workers"] or 1)
    _place_staged(target / "JPEGImages", recs, lambda r: r.file_name or (r.image_id + ".jpg"), mode, result, on)
    for r in recs:
        lists.setdefault(r.splits[0], []).append(r.image_id)
    if TRAIN in lists or VAL in lists:
        lists["trainval"] = sorted(lists.get(TRAIN, []) + lists.get(VAL, []))
    with staged_dir(target / "ImageSets") as stage:
        sets = [(os.path.join(stage, "Main", f"{name}.txt"), "".join(i + "\n" for i in ids))
                for name, ids in sorted(lists.items())]
        write_files(sets)
    result.files += len(items) + len(sets)


def _coco_source(rec: ImageRecord) -> tuple[str, str]:
    path, _, raw_id = rec.source.rpartition("#")
    if not path:
        raise UsageError(f"{rec.image_id}: the record does not come from a COCO file")
    return path, raw_id


def _write_coco(recs: list[ImageRecord], target: Path, mode: ImagesMode, result: SplitWriteResult, on: dict) -> None:
    """One JSON per split: the original JSON with its images and annotations filtered by image id, every other field
    kept. When the input is several files whose ids collide (e.g. instances_train.json and instances_val.json both
    counting from 1), ids are renumbered over all files in file order (the same numbers in every split and fold)."""
    from datatools.formats.coco import dumps

    cache: dict[str, dict] = {}
    wanted: dict[str, dict[str, set[str]]] = {}  # split -> json path -> raw image ids (as str)
    for r in recs:
        path, raw_id = _coco_source(r)
        if path not in cache:
            cache[path] = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
        wanted.setdefault(r.splits[0], {}).setdefault(path, set()).add(raw_id)
    paths = sorted(cache)
    base = cache[paths[0]]
    for p in paths[1:]:
        if cache[p].get("categories") != base.get("categories"):
            raise UsageError(f"{p} and {paths[0]} have different categories: split one COCO file at a time")
    renumber = _ids_collide([cache[p] for p in paths])
    if renumber and not any(f.code == "ids-renumbered" for f in result.findings):
        result.findings.append(warn("ids-renumbered", ", ".join(paths), "id",
                                    "the input files share image or annotation ids; ids were renumbered from 1 over "
                                    "all files in file order"))
    new_image_id: dict[tuple[str, object], int] = {}
    new_ann_id: dict[tuple[str, int], int] = {}
    for p in paths:
        for im in cache[p]["images"]:
            if isinstance(im, dict) and im.get("id") is not None:
                new_image_id.setdefault((p, im["id"]), len(new_image_id) + 1)
        for k, a in enumerate(cache[p].get("annotations") or []):
            new_ann_id[(p, k)] = len(new_ann_id) + 1
    items = []
    for split, per_file in sorted(wanted.items()):
        obj = {k: v for k, v in base.items() if k not in ("images", "annotations")}
        images, anns = [], []
        for p in paths:
            ids = per_file.get(p, set())
            keep = set()
            for im in cache[p]["images"]:
                if isinstance(im, dict) and str(im.get("id")) in ids:
                    keep.add(im["id"])
                    images.append({**im, "id": new_image_id[(p, im["id"])]} if renumber else im)
            for k, a in enumerate(cache[p].get("annotations") or []):
                if isinstance(a, dict) and a.get("image_id") in keep:
                    anns.append({**a, "id": new_ann_id[(p, k)], "image_id": new_image_id[(p, a["image_id"])]}
                                if renumber else a)
        obj["images"], obj["annotations"] = images, anns
        items.append((f"instances_{split}.json", dumps(obj)))
    with staged_dir(target / "annotations") as stage:
        write_files([(os.path.join(stage, name), text) for name, text in items])
    _place_staged(target / "images", recs, lambda r: r.file_name or r.image_id, mode, result, on)
    result.files += len(items)


def _ids_collide(docs: Sequence[dict]) -> bool:
    if len(docs) < 2:
        return False
    img: Counter = Counter(im.get("id") for d in docs for im in d["images"] if isinstance(im, dict))
    ann: Counter = Counter(a.get("id") for d in docs for a in d.get("annotations") or [] if isinstance(a, dict))
    return any(v > 1 for v in img.values()) or any(v > 1 for v in ann.values())
