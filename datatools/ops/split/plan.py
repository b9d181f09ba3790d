"""The plan of a split: which image goes to which part, and how close each part came to its asked share.

Use :func:`plan_split` to decide (pure: the dataset in, a :class:`SplitPlan` out, nothing written), then
:func:`datatools.ops.split.write.write_split` to write it. The methods are described in :mod:`datatools.ops.split`.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from datatools.core.errors import UsageError
from datatools.core.model import Dataset, Finding, ImageRecord, all_classes
from datatools.formats.common import warn
from datatools.ops.split.group_file import GroupFile
from datatools.ops.split.groups import merge_clusters, parse_group_by, resolve_groups, straddling
from datatools.ops.split.stratify import integer_targets, stratify

METHODS = ("stratified", "random", "group", "hash")
TRAIN, VAL, TEST = "train", "val", "test"


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
    dedup_clusters: int = 0  # duplicate clusters kept together (split --dedup)
    straddled_before: int = 0  # of those, how many the same split without --dedup cut across parts

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
                "dedup": {"clusters": self.dedup_clusters, "straddled_before": self.straddled_before,
                          "straddled_after": 0} if self.group_source.endswith("duplicates") else None,
                "parts": [r.to_dict() for r in self.reports], "max_deviation": self.deviation,
                "dropped_empty": len(self.dropped_empty), "findings": [f.to_dict() for f in self.findings],
                "assignment": {name: list(ids) for name, ids in self.parts.items()}}


def _amount(value: float | None, n: int, what: str) -> float:
    """The share of ``n`` images that ``value`` asks for: a float in [0, 1) is a ratio, an int a count of images. A
    float of 1 or more is refused rather than guessed (``1.0`` is not one image): a count has no point."""
    if value is None or value == 0:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise UsageError(f"--{what} {value!r}: give a ratio below 1 (0.2) or a whole number of images (200)")
    if not isinstance(value, numbers.Integral):
        if value >= 1:
            raise UsageError(f"--{what} {value!r} has a point, so it is a ratio, and a ratio must be below 1; a "
                             "number of images is written without one (200)")
        return float(value)
    return int(value) / n if n else 0.0


def plan_split(ds: Dataset, *, val: float | None = None, test: float = 0.0, method: str = "stratified",
               seed: int = 0, group_by: str | GroupFile | Mapping[str, str] | None = None, kfold: int = 0,
               drop_empty: bool = False, dedup: Sequence[Sequence[str]] | None = None) -> SplitPlan:
    """Decide the parts for every image of ``ds`` (nothing is written; see :func:`write_split`).

    ``val``/``test`` are ratios (``0.2``) or image counts (``200``). ``kfold=K`` holds ``test`` out first and cuts the
    rest into K folds (``val`` must then be left unset). Images without objects are kept and spread over the parts
    unless ``drop_empty``.

    ``group_by`` (for ``group`` and ``hash``) names where an image's group comes from (``"regex:PATTERN"``,
    ``"attr:NAME"``, a :class:`GroupFile` or a ``{image_id: group}`` mapping: :mod:`datatools.ops.split.groups`).

    ``dedup`` (clusters of image ids, e.g. :meth:`~datatools.ops.dupes.DupesReport.cluster_ids`) keeps each cluster
    of copies in one part, on top of ``group_by``; ``stratified`` then stratifies the groups (as ``group`` does).
    The plan records how many clusters the same split without ``dedup`` would have cut across parts.
    """
    if dedup is not None:
        if method == "random":
            raise UsageError("--dedup keeps copies together with --method stratified, group or hash, not random")
        plain = "stratified" if method == "group" and group_by is None else method
        before = plan_split(ds, val=val, test=test, method=plain, seed=seed, group_by=group_by, kfold=kfold,
                            drop_empty=drop_empty)
        plan = _plan(ds, val=val, test=test, method="group" if method == "stratified" else method, seed=seed,
                     group_by=group_by, kfold=kfold, drop_empty=drop_empty, dedup=dedup)
        real = [c for c in dedup if len(c) > 1]
        return replace(plan, dedup_clusters=len(real), straddled_before=straddling(before.parts, real))
    return _plan(ds, val=val, test=test, method=method, seed=seed, group_by=group_by, kfold=kfold,
                 drop_empty=drop_empty)


def _plan(ds: Dataset, *, val: float | None, test: float, method: str, seed: int,
          group_by: str | GroupFile | Mapping[str, str] | None, kfold: int, drop_empty: bool,
          dedup: Sequence[Sequence[str]] | None = None) -> SplitPlan:
    group_by = _check_options(method, group_by, kfold=kfold, val=val, dedup=dedup is not None)
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
    asked = _asked_shares(kfold, r_val, r_test)
    names = list(asked)
    classes = list(all_classes(ds.classes, records))
    findings: list[Finding] = []
    groups = 0
    source = ""
    keys = [r.image_id for r in records]
    if group_by is not None:
        keys, found, source = resolve_groups(ds, records, group_by)
        findings += found
    if dedup is not None:
        keys = merge_clusters([r.image_id for r in records], keys, dedup)
        source = f"{source} + duplicates" if source else "duplicates"
    grouped = group_by is not None or dedup is not None
    if grouped:
        groups = len(set(keys))
    units = groups if grouped else n
    for_folds = units - (max(1, round(r_test * units)) if r_test else 0)  # what the test part leaves to the folds
    if kfold and kfold > for_folds:
        what = f"{units:,} groups" if grouped else f"{n:,} images"
        left = f", {for_folds:,} of them after the test part" if r_test else ""
        raise UsageError(f"--kfold {kfold}: there are only {what}{left}, so some folds would be empty")
    fractions = np.array([asked[nm] for nm in names], dtype=np.float64)
    index = _assign(method, records, keys, classes, names, fractions, np.random.default_rng(seed),
                    grouped=grouped)
    parts = {nm: tuple(r.image_id for r, j in zip(records, index) if j == k) for k, nm in enumerate(names)}
    findings += _empty_parts(parts, asked, n, units if grouped else 0, method)
    reports = tuple(_report(nm, asked[nm], [r for r, j in zip(records, index) if j == k], classes)
                    for k, nm in enumerate(names))
    kept = ds.evolve(images=tuple(records))
    return SplitPlan(dataset=kept, method=method, seed=seed, kfold=kfold, parts=parts, asked=asked, reports=reports,
                     deviation=_deviation(reports, classes, n), dropped_empty=dropped, groups=groups,
                     findings=tuple(findings), group_source=source)


def _check_options(method: str, group_by: str | GroupFile | Mapping[str, str] | None, *, kfold: int,
                   val: float | None, dedup: bool = False) -> str | GroupFile | Mapping[str, str] | None:
    """Usage errors for options that do not go together, before any work; ``group_by`` with a blank one as None."""
    if method not in METHODS:
        raise UsageError(f"unknown split method {method!r}: choose one of {', '.join(METHODS)}")
    if isinstance(group_by, str) and not group_by.strip():
        group_by = None
    if method == "group" and group_by is None and not dedup:
        raise UsageError("--method group needs --group-by REGEX, --group-by attr:NAME or --groups FILE")
    if group_by is not None and method in ("random", "stratified"):
        raise UsageError(f"--group-by and --groups apply to --method group or hash, not {method}")
    if isinstance(group_by, str):
        parse_group_by(group_by)  # a bad form is a usage error before any work
    if kfold < 0 or kfold == 1:
        raise UsageError("--kfold must be at least 2")
    if kfold and val is not None:
        raise UsageError("--kfold makes the val parts itself: leave --val out")
    return group_by


def _asked_shares(kfold: int, r_val: float, r_test: float) -> dict[str, float]:
    """The parts in order and the share asked of each: train, val, test; or test, then the k folds."""
    if kfold:
        return ({TEST: r_test} if r_test else {}) | {f"fold_{i}": round((1 - r_test) / kfold, 12)
                                                     for i in range(kfold)}
    return ({TRAIN: round(1 - r_val - r_test, 12)} | ({VAL: r_val} if r_val else {})
            | ({TEST: r_test} if r_test else {}))


def _assign(method: str, records: Sequence[ImageRecord], keys: Sequence[str], classes: Sequence[str],
            names: Sequence[str], fractions: np.ndarray, rng: np.random.Generator, *, grouped: bool) -> np.ndarray:
    """The part index of every record by ``method``; ``keys`` are the group keys (the image ids without groups)."""
    n = len(records)
    if method == "hash":
        return _hash_assign(keys, names, fractions)
    if method == "random":
        index = np.empty(n, dtype=np.int64)
        order = rng.permutation(n)
        start = 0
        for j, t in enumerate(integer_targets(n, fractions)):
            index[order[start:start + t]] = j
            start += t
        return index
    counts = label_matrix(records, classes)
    # Images without objects are one more label, so they spread in the asked proportions too.
    counts = np.hstack([counts, (counts.sum(axis=1) == 0).astype(np.int64)[:, None]])
    if not grouped:
        return stratify(counts, fractions, n, rng)
    uniq = sorted(set(keys))
    gi = {k: i for i, k in enumerate(uniq)}
    member = np.array([gi[k] for k in keys], dtype=np.int64)
    gcounts = np.zeros((len(uniq), counts.shape[1]), dtype=np.int64)
    np.add.at(gcounts, member, counts)
    weights = np.bincount(member, minlength=len(uniq)).astype(np.float64)
    return stratify(gcounts, fractions, n, rng, weights=weights)[member]


def _as_given(value: float) -> str:
    """A ratio or a count as the user wrote it, for a message."""
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


def label_matrix(records: Sequence[ImageRecord], classes: Sequence[str]) -> np.ndarray:
    """(images, classes) object counts."""
    col = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(records), len(classes)), dtype=np.int64)
    for i, r in enumerate(records):
        for a in r.annotations:
            m[i, col[a.label]] += 1
    return m


def _report(name: str, asked: float, records: Sequence[ImageRecord], classes: Sequence[str]) -> PartReport:
    """What the part ``name`` holds, per class in objects and in images containing the class."""
    objs: Counter = Counter()
    imgs: Counter = Counter()
    for r in records:
        labels = [a.label for a in r.annotations]
        objs.update(labels)
        imgs.update(set(labels))
    return PartReport(name=name, asked=asked, images=len(records), objects=sum(objs.values()),
                      empty=sum(1 for r in records if not r.annotations),
                      class_objects={c: objs.get(c, 0) for c in classes},
                      class_images={c: imgs.get(c, 0) for c in classes})


def _deviation(reports: Sequence[PartReport], classes: Sequence[str], n: int) -> dict[str, object]:
    """The largest |actual share - asked share| over parts: in images, and in objects over every class (naming the
    worst class and part)."""
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
