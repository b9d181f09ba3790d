"""Dataset surgery: merge several datasets, remap classes, filter objects and images, take a sample.

Each job is a pure function on the annotation model (:func:`merge_datasets`, :func:`remap_classes`,
:func:`filter_dataset`, :func:`sample_dataset`: a dataset in, a new dataset out, every object or image removed
recorded as a finding that counts it) and a file-level function (:func:`merge`, :func:`remap`, :func:`filter_data`,
:func:`sample`) that reads SRC with :func:`~datatools.ops.convert.read_source`, applies the job, runs the same
policies as ``convert`` (:func:`~datatools.ops.sanitize.prepare`) and writes through
:func:`~datatools.ops.convert.write_dataset` (atomic, never inside or over an input). Use the pure functions when the
dataset is already in memory; the books balance the same way: objects read = written + dropped, by reason.
"""
from __future__ import annotations

import inspect
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Mapping, Sequence

import numpy as np

from datatools.core.atomic import ImagesMode
from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.errors import NoInputError, UsageError
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, Severity, all_classes
from datatools.core.parallel import Mapper, StageProgress, stage_callbacks
from datatools.core.paths import check_output_dir
from datatools.formats import coco
from datatools.formats.common import DEFAULT_SPLIT, info, warn
from datatools.ops.convert import Summary, prepare_and_write, read_source
from datatools.ops.sanitize import normalize_name


@dataclass
class SurgeryReport:
    """What a surgery command did: the conversion :class:`~datatools.ops.convert.Summary` (the books, classes,
    splits, findings) plus the command's own ``details`` (collisions, class counts before, classes missing, ...)."""

    command: str
    summary: Summary
    details: dict = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.summary.balanced

    def to_dict(self, *, max_findings: int | None = None) -> dict:
        return {"command": self.command, **self.summary.to_dict(max_findings=max_findings), **self.details}


# ---------------------------------------------------------------------------------------------------------- merge

def merge_datasets(datasets: Sequence[Dataset], *, splits: Sequence[str] | None = None) -> tuple[Dataset, dict]:
    """One dataset from several: classes united by name, image ids kept unless two sources share one.

    Collisions are resolved in source order: the first source keeps the id, a later one becomes ``<id>__src<k>``
    (k its 1-based position; ``__2``, ``__3``... added if that is taken too), each a ``name-collision`` warning.
    Class order: the sources' common list when they all have the same one, else the sorted union. Names that differ
    only in case or spacing are listed in ``details["case_variants"]`` (fold them with ``prepare(normalize_names=
    True)``). ``splits`` keeps only images in those splits (an image without a split is in ``all``); the others are
    dropped as ``split-not-chosen``; a split no source has is a usage error naming those found. COCO fields beyond
    boxes are kept (:func:`datatools.formats.coco.merge_meta`: the first ``info``, licenses united, a clashing
    license id renumbered in its images, a category field such as ``supercategory`` given differently a
    ``category-conflict`` warning, the first kept). Returns the dataset as read (its ``objects_read`` the sum) and
    the details."""
    if not datasets:
        raise UsageError("merge needs at least one dataset")
    if splits:
        found = sorted({s for ds in datasets for im in ds.images for s in (im.splits or (DEFAULT_SPLIT,))})
        unknown = [s for s in splits if s not in found]
        if unknown:  # a typo would silently keep fewer images
            raise UsageError(f"--splits: {', '.join(map(repr, unknown))} not in any source (splits found: "
                             f"{', '.join(found)})")
    lists = [tuple(ds.classes) for ds in datasets]
    classes = lists[0] if all(c == lists[0] for c in lists) else tuple(sorted({c for cl in lists for c in cl}))
    taken: set[str] = set()
    images: list[ImageRecord] = []
    findings: list[Finding] = []
    collisions: list[dict] = []
    wanted = set(splits) if splits else None
    coco_meta, relicensed, meta_findings = coco.merge_meta([(ds.meta or {}).get("coco") or {} for ds in datasets],
                                                           sources=[str(ds.root) for ds in datasets])
    for k, ds in enumerate(datasets, 1):
        findings.extend(ds.findings)
        own = {im.image_id for im in ds.images}  # a new name is never one of this source's own ids either
        for im in ds.images:
            im = coco.relicense(im, relicensed[k - 1])
            if wanted is not None:
                keep = tuple(s for s in (im.splits or (DEFAULT_SPLIT,)) if s in wanted)
                if not keep:
                    findings.append(_image_drop("split-not-chosen", im, f"in split(s) "
                                                f"{', '.join(im.splits or (DEFAULT_SPLIT,))}, not asked for",
                                                len(im.annotations)))
                    continue
                im = replace(im, splits=keep if im.splits else ())
            iid = im.image_id
            if iid in taken:
                new, n = f"{iid}__src{k}", 1
                while new in taken or new in own:
                    n += 1
                    new = f"{iid}__src{k}__{n}"
                collisions.append({"source": k, "image_id": iid, "renamed": new})
                findings.append(warn("name-collision", im.source, "image_id",
                                     f"image id {iid!r} is already used by an earlier source; written as {new!r}",
                                     image_id=new))
                im = replace(im, image_id=new)
            taken.add(im.image_id)
            images.append(im)
    findings.extend(meta_findings)
    variants: dict[str, set[str]] = defaultdict(set)
    for c in classes:
        variants[normalize_name(c)].add(c)
    case_variants = [sorted(v) for _, v in sorted(variants.items()) if len(v) > 1]
    merged = Dataset(images=tuple(images), classes=classes, findings=tuple(findings),
                     objects_read=sum(ds.objects_read for ds in datasets), root=datasets[0].root,
                     format=datasets[0].format,
                     meta={**datasets[0].meta, "coco": coco_meta} if any(coco_meta.values()) else dict(datasets[0].meta))
    per_source = [{"root": ds.root, "format": ds.format, "images": len(ds.images), "objects": ds.num_objects}
                  for ds in datasets]
    return merged, {"sources": per_source, "collisions": collisions, "case_variants": case_variants}


# ---------------------------------------------------------------------------------------------------------- remap

def parse_mapping(value: str | os.PathLike | Mapping[str, str | None]) -> dict[str, str | None]:
    """A class map from ``'old:new,old2:new,gone:'``, a YAML file (``{old: new}``; an empty or null target drops) or
    a CSV file (rows ``old,new``; a header row ``old,new`` or ``from,to`` is skipped). ``None`` means drop. A value
    ending in a map file's suffix that is not a file is a missing file; a name or target that is not a string (YAML
    reads ``no`` as a boolean, ``1.0`` as a number, ``[a, b]`` as a list) is a usage error, never its ``str()``."""
    if isinstance(value, Mapping):
        pairs = _names(value.items(), "--map")
    else:
        text = os.fspath(value)
        if os.path.isfile(text):
            pairs = _mapping_file(text)
        elif text.lower().endswith(MAP_SUFFIXES):
            raise UsageError(f"--map: {text}: no such file")
        else:
            pairs = []
            for item in (p for p in text.split(",") if p.strip()):
                if ":" not in item:
                    raise UsageError(f"--map: {item.strip()!r} is not old:new (use 'old:' to drop a class)")
                old, _, new = item.rpartition(":")
                pairs.append((old.strip(), new.strip() or None))
    out: dict[str, str | None] = {}
    for old, new in pairs:
        if not old:
            raise UsageError("--map: an entry has no class name before ':'")
        if old in out and out[old] != new:
            raise UsageError(f"--map: {old!r} is mapped twice ({out[old]!r} and {new!r})")
        out[old] = new
    if not out:
        raise UsageError("--map: no entries")
    return out


def _mapping_file(path: str) -> list[tuple[str, str | None]]:
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if path.lower().endswith((".yaml", ".yml")):
                import yaml

                try:
                    data = yaml.safe_load(f)
                except yaml.YAMLError as e:
                    raise UsageError(f"{path}: not valid YAML: {e}") from e
                if not isinstance(data, dict):
                    raise UsageError(f"{path}: expected a mapping of old: new class names")
                return _names(data.items(), path)
            if path.lower().endswith((".csv", ".tsv", ".txt")):
                rows = [r for r in csv.reader(f, delimiter="\t" if path.lower().endswith(".tsv") else ",") if r]
                if rows and [c.strip().lower() for c in rows[0][:2]] in (["old", "new"], ["from", "to"]):
                    rows = rows[1:]
                for i, r in enumerate(rows, 1):
                    if len(r) > 2:
                        raise UsageError(f"{path}: row {i}: expected old,new, found {len(r)} columns")
                return [(r[0].strip(), (r[1].strip() if len(r) > 1 else "") or None) for r in rows]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: {e}") from e
    raise UsageError(f"{path}: a map file is .yaml/.yml or .csv/.tsv")


MAP_SUFFIXES = (".yaml", ".yml", ".csv", ".tsv")


def _names(items, where: str) -> list[tuple[str, str | None]]:
    """``(old, new)`` pairs of class names from a mapping's items: both strings, or ``new`` None or empty (drop)."""
    pairs = []
    for old, new in items:
        for what, v in (("name", old), ("target", new)):
            if not (isinstance(v, str) or (what == "target" and v is None)):
                hint = (" (YAML reads yes/no/on/off/true/false as booleans: quote it)" if isinstance(v, bool) else
                        " (quote it)" if isinstance(v, (int, float)) else "")
                kind = {bool: "boolean", int: "number", float: "number", dict: "mapping"}.get(type(v), type(v).__name__)
                raise UsageError(f"{where}: entry {old!r}: the {what} {v!r} is a {kind}, not a class name{hint}")
        pairs.append((old, new or None))
    return pairs


def remap_classes(ds: Dataset, mapping: Mapping[str, str | None], *, order: Sequence[str] | None = None) -> Dataset:
    """Rename classes, merge several into one (``a:x, b:x``), drop some (target ``None``) and fix the class order.

    The map is applied once (``a:b, b:c`` sends a to b and b to c, not a to c). Dropped objects are counted per image
    as ``class-removed``. The class order is ``order`` when given (it must name every class that keeps objects; extra
    names become empty classes), else the source order with each class replaced by its target where first met. A
    map entry naming no class of the dataset is a ``map-unused`` warning (a typo would otherwise do nothing)."""
    known = set(ds.classes) | {a.label for im in ds.images for a in im.annotations}
    findings = [warn("map-unused", ds.root, "map", f"class {old!r} is not in the dataset; entry ignored")
                for old in mapping if old not in known]
    images = []
    for im in ds.images:
        gone: Counter = Counter()
        kept: list[Annotation] = []
        for a in im.annotations:
            if a.label in mapping:
                new = mapping[a.label]
                if new is None:
                    gone[a.label] += 1
                    continue
                a = replace(a, label=new)
            kept.append(a)
        for name, n in sorted(gone.items()):
            findings.append(info("class-removed", im.source, "name", f"{n} object(s) of class {name!r} removed "
                                 "(--map)", image_id=im.image_id, objects=n))
        touched = gone or any(a.label in mapping for a in im.annotations)
        images.append(im.with_annotations(kept) if touched else im)  # untouched records are passed on as they are
    mapped = [mapping.get(c, c) for c in list(ds.classes) + sorted(known - set(ds.classes))]
    classes = tuple(dict.fromkeys(c for c in mapped if c is not None))
    if order is not None:
        order = tuple(order)
        if len(set(order)) != len(order):
            raise UsageError("--order: class names repeat")
        used = {a.label for im in images for a in im.annotations}
        missing = sorted(used - set(order))
        if missing:
            raise UsageError(f"--order leaves out {', '.join(missing)}, which still have objects")
        classes = order
    return ds.evolve(images=tuple(images), classes=classes, findings=ds.findings + tuple(findings))


# --------------------------------------------------------------------------------------------------------- filter

def filter_dataset(ds: Dataset, *, classes: Sequence[str] | None = None, min_size: float | None = None,
                   max_size: float | None = None, min_area: float | None = None, drop_empty: bool = False,
                   only_empty: bool = False, ids: str | None = None) -> Dataset:
    """Keep the objects and images that pass every test; count the rest by reason.

    Images first: ``ids`` (a regex searched in the image id) drops the others as ``id-not-matched``. Then objects:
    ``classes`` keeps those classes (in that order: the new class list; ``class-not-kept``), ``min_size`` drops a
    box whose shorter side is below it (``too-small``), ``max_size`` one whose longer side is above it
    (``too-large``), ``min_area`` one with w*h below it (``area-too-small``), all in pixels. Then, on what is left,
    ``drop_empty`` drops images without objects (``empty-image``) and ``only_empty`` keeps only those
    (``image-not-empty``, its objects counted)."""
    if drop_empty and only_empty:
        raise UsageError("--drop-empty and --only-empty exclude each other")
    for name, v in (("--min-size", min_size), ("--max-size", max_size), ("--min-area", min_area)):
        if v is not None and not 0 <= v < math.inf:  # nan passes `v < 0`
            raise UsageError(f"{name} must be a number >= 0, not {v}")
    if classes is not None:
        unknown = [c for c in classes if c not in ds.classes]
        if unknown:
            raise UsageError(f"--classes: {', '.join(map(repr, unknown))} not in the dataset (classes: "
                             f"{', '.join(ds.classes)})")
    try:
        pattern = re.compile(ids) if ids else None
    except re.error as e:
        raise UsageError(f"--ids: not a regular expression: {e}") from e
    wanted = set(classes) if classes is not None else None
    findings: list[Finding] = []
    images: list[ImageRecord] = []
    for im in ds.images:
        n = len(im.annotations)
        if pattern is not None and not pattern.search(im.image_id):
            findings.append(_image_drop("id-not-matched", im, f"id does not match {ids!r}", n))
            continue
        dropped: Counter = Counter()
        kept = []
        for a in im.annotations:
            w, h = a.box[2] - a.box[0], a.box[3] - a.box[1]
            reason = ("class-not-kept" if wanted is not None and a.label not in wanted else
                      "too-small" if min_size is not None and min(w, h) < min_size else
                      "too-large" if max_size is not None and max(w, h) > max_size else
                      "area-too-small" if min_area is not None and w * h < min_area else None)
            if reason:
                dropped[reason] += 1
            else:
                kept.append(a)
        for reason, k in sorted(dropped.items()):
            findings.append(info(reason, im.source, "object", f"{k} object(s) dropped ({reason})",
                                 image_id=im.image_id, objects=k))
        if drop_empty and not kept:
            findings.append(_image_drop("empty-image", im, "no objects left (--drop-empty)", 0))
            continue
        if only_empty and kept:
            findings.append(_image_drop("image-not-empty", im, "has objects (--only-empty)", len(kept)))
            continue
        images.append(im.with_annotations(kept) if dropped else im)
    return ds.evolve(images=tuple(images), classes=tuple(classes) if classes is not None else ds.classes,
                     findings=ds.findings + tuple(findings))


def _image_drop(code: str, im: ImageRecord, why: str, objects: int) -> Finding:
    return Finding(code, Severity.INFO, im.source, "image", f"{why}; image and its {objects} object(s) left out",
                   im.image_id, objects, True)


# --------------------------------------------------------------------------------------------------------- sample

def sample_dataset(ds: Dataset, *, n: int | None = None, frac: float | None = None, stratified: bool = False,
                   seed: int = 0) -> tuple[Dataset, dict]:
    """A subset of ``n`` images (or ``frac`` of them), the rest dropped as ``not-sampled``.

    ``stratified`` splits the images in two parts with split's iterative stratification
    (:func:`datatools.ops.split.stratify`), so each class keeps about its share of objects and images; then every
    class missing from the sample is brought in by swapping an image that holds it for one whose class is covered
    twice, while the sample is large enough. Otherwise a seeded random choice. The images keep their order."""
    total = len(ds.images)
    if (n is None) == (frac is None):
        raise UsageError("give one of -n and --frac")
    if frac is not None:
        if not 0 < frac <= 1:
            raise UsageError("--frac must be in (0, 1]")
        n = max(1, round(frac * total))
    if n is None or n <= 0:
        raise UsageError("-n must be at least 1")
    if n > total:
        raise UsageError(f"-n {n} asks for more images than SRC holds ({total})")
    rng = np.random.default_rng(seed)
    from datatools.ops.split.plan import label_matrix

    names = list(all_classes(ds.classes, ds.images))
    counts = label_matrix(ds.images, names).astype(np.float64)
    if stratified and n < total:
        from datatools.ops.split.stratify import stratify

        part = stratify(counts, np.array([n / total, 1 - n / total]), total, rng)
        chosen = part == 0
        _cover_classes(chosen, counts, rng)
    else:
        chosen = np.zeros(total, dtype=bool)
        chosen[rng.permutation(total)[:n]] = True
    findings = [_image_drop("not-sampled", im, "not in the sample", len(im.annotations))
                for i, im in enumerate(ds.images) if not chosen[i]]
    images = tuple(im for i, im in enumerate(ds.images) if chosen[i])
    present = counts.sum(axis=0) > 0
    missing = [names[j] for j in np.flatnonzero(present & (counts[chosen].sum(axis=0) == 0))]
    out = ds.evolve(images=images, findings=ds.findings + tuple(findings))
    return out, {"sample": {"asked": n, "of": total, "stratified": stratified, "seed": seed,
                            "classes_missing": missing}}


def _cover_classes(chosen: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> None:
    """Swap images into ``chosen`` (in place) until every class with objects is in it, where a swap can do that
    without losing another class: rarest missing class first, the image with the most of it in, one whose classes
    are all held by other chosen images out."""
    has = counts > 0
    for j in np.argsort(has.sum(axis=0), kind="stable"):
        if not has[:, j].any() or has[chosen, j].any():
            continue
        held = has[chosen].sum(axis=0)
        out_ok = [i for i in np.flatnonzero(chosen) if not (has[i] & (held <= 1)).any()]
        if not out_ok:
            continue
        donors = np.flatnonzero(~chosen & has[:, j])
        best_in = donors[np.lexsort((rng.random(donors.size), -counts[donors, j]))[0]]
        out_ok.sort(key=lambda i: counts[i].sum())
        chosen[out_ok[0]] = False
        chosen[best_in] = True


# ---------------------------------------------------------------------------------------------- file-level runs
# Every file-level function reads as ``convert`` does (:func:`~datatools.ops.convert.read_source`): ``images`` (for
# ``merge`` one per source), ``sets``, ``convention`` (VOC; also used to write VOC output) and ``max_xml_bytes``.

def _finish(command: str, ds_in: Dataset, ds: Dataset, out, *, srcs: Sequence, images: Sequence = (),
            src_format: str, dst_format: str | None, images_mode, workers, mapper, precision: int, progress=None,
            convention=DEFAULT_CONVENTION, normalize_names: bool = False, empty_ok: bool = False,
            details: dict | None = None) -> SurgeryReport:
    """The common tail, convert's own (:func:`~datatools.ops.convert.prepare_and_write`: its policies, the books,
    the atomic write; SRC and ``images`` protected), with the surgery rule for an empty result
    (:func:`_nothing_left`)."""
    dst = dst_format or src_format
    summary = prepare_and_write(ds_in, ds, dst, out, src=", ".join(map(str, srcs)), src_format=src_format,
                                inputs=[*srcs, *(i for i in images if i)], normalize_names=normalize_names,
                                empty_error=partial(_nothing_left, command, out, empty_ok), images_mode=images_mode,
                                precision=precision, workers=workers, mapper=mapper, convention=convention,
                                progress=progress)
    return SurgeryReport(command, summary, details or {})


def _nothing_left(command: str, out, empty_ok: bool, ds_in: Dataset, ds: Dataset, summary: Summary
                  ) -> NoInputError | None:
    """No image left, or (unless ``empty_ok``: ``sample``, ``filter --only-empty``) no object left of a source that
    had some: an error that says why, rather than an empty OUT and exit 0."""
    if ds.images and (ds.num_objects or not ds_in.num_objects or empty_ok):
        return None
    what = "image" if not ds.images else "object"
    # images and objects counted apart: one code (image-not-empty, split-not-chosen) often drops both
    why = "; ".join(f"{kind} dropped: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                    for kind, counts in (("images", summary.images_dropped), ("objects", summary.objects_dropped))
                    if counts)
    return NoInputError(f"{command}: no {what} is left ({why or 'nothing kept'}); nothing was written to {out}")


def merge(srcs: Sequence[str | os.PathLike], out: str | os.PathLike, *, to: str | None = None,
          fmt: str | None = None, normalize_names: bool = False, splits: Sequence[str] | None = None,
          images: Sequence[str | os.PathLike | None] | None = None, sets: Sequence[str] | str | None = None,
          convention: PixelConvention | str = DEFAULT_CONVENTION, max_xml_bytes: int | None = None,
          images_mode: ImagesMode | str = ImagesMode.LINK, workers: int | None = None, precision: int = 6,
          engine: str = "local", ray_address: str | None = None, progress: StageProgress | None = None
          ) -> SurgeryReport:
    """Merge datasets (any formats; ``fmt`` forces one for all) into OUT, in the first one's format unless ``to``.
    See :func:`merge_datasets` for classes, collisions and splits. ``images``: one image folder per source, in the
    sources' order (None: that source's default); ``sets``, ``convention`` and ``max_xml_bytes`` apply to every
    source. OUT is a folder (images from several places)."""
    if len(srcs) < 2:
        raise UsageError("merge needs at least two sources")
    if images is not None and len(images) != len(srcs):
        raise UsageError(f"--images: give one per source, in their order ({len(srcs)} sources, "
                         f"{len(images)} --images)")
    if os.fspath(out).lower().endswith(".json"):
        raise UsageError("merge writes a folder (images come from several sources), not one .json file")
    folders = list(images or [None] * len(srcs))
    check_output_dir(out, [x for x in (*srcs, *folders) if x])  # before reading any
    mapper = Mapper(engine, ray_address, workers)
    dss = [read_source(s, fmt, mapper=mapper, images=i, workers=workers, sets=sets, convention=convention,
                       max_xml_bytes=max_xml_bytes, **stage_callbacks(progress, f"read {k}"))  # a bar a source
           for k, (s, i) in enumerate(zip(srcs, folders), 1)]
    merged, details = merge_datasets(dss, splits=splits)
    # the books count everything read (--splits drops images after reading): the sources side by side suffice
    ds_in = merged.evolve(images=tuple(im for ds in dss for im in ds.images),
                          findings=tuple(f for ds in dss for f in ds.findings)) if splits else merged
    if normalize_names:
        details["case_variants_folded"] = True
    return _finish("merge", ds_in, merged, out, srcs=srcs, images=folders, src_format=dss[0].format, dst_format=to,
                   images_mode=images_mode, workers=workers, mapper=mapper, precision=precision, progress=progress,
                   convention=convention, normalize_names=normalize_names, details=details)


def _one_source(command: str, src, out, op, *, to: str | None = None, fmt: str | None = None,
                images: str | os.PathLike | None = None, sets: Sequence[str] | str | None = None,
                convention: PixelConvention | str = DEFAULT_CONVENTION, max_xml_bytes: int | None = None,
                images_mode: ImagesMode | str = ImagesMode.LINK, workers: int | None = None, precision: int = 6,
                engine: str = "local", ray_address: str | None = None, progress: StageProgress | None = None,
                empty_ok: bool = False) -> SurgeryReport:
    """Read SRC, apply ``op`` (the dataset read -> (the dataset to write, details)) and write OUT: what remap, filter
    and sample share, and the options they take besides their own (``io`` below): the output format ``to`` (default
    SRC's), SRC's ``fmt`` (default detected), how SRC is read (``images``, ``sets``, ``convention``,
    ``max_xml_bytes``), how OUT is written (``images_mode``, ``precision``), where the work runs (``workers``,
    ``engine``, ``ray_address``) and a command's progress bar. The details also hold the class counts before."""
    check_output_dir(out, [x for x in (src, images) if x])
    mapper = Mapper(engine, ray_address, workers)
    ds_in = read_source(src, fmt, mapper=mapper, images=images, workers=workers, sets=sets, convention=convention,
                        max_xml_bytes=max_xml_bytes, **stage_callbacks(progress, "read"))
    ds, details = op(ds_in)
    return _finish(command, ds_in, ds, out, srcs=[src], images=[images], src_format=ds_in.format, dst_format=to,
                   images_mode=images_mode, workers=workers, mapper=mapper, precision=precision, progress=progress,
                   convention=convention, empty_ok=empty_ok,
                   details={**details, "classes_before": ds_in.class_counts()})


def remap(src, out, mapping, *, order: Sequence[str] | None = None, **io) -> SurgeryReport:
    """Apply a class map (:func:`parse_mapping` input) to SRC and write OUT; the details hold the counts before.
    ``io``: the reading and writing options of :func:`_one_source`."""
    table = parse_mapping(mapping)
    return _one_source("remap", src, out, lambda ds: (remap_classes(ds, table, order=order), {"map": table}), **io)


def filter_data(src, out, **options) -> SurgeryReport:
    """Filter SRC into OUT: the options named like :func:`filter_dataset`'s keywords are its tests, the others the
    reading and writing options of :func:`_one_source`."""
    names = tuple(inspect.signature(filter_dataset).parameters)[1:]  # its keywords, named once: there
    tests = {k: options.pop(k) for k in names if k in options}
    return _one_source("filter", src, out, lambda ds: (filter_dataset(ds, **tests), {}),
                       empty_ok=bool(tests.get("only_empty")), **options)


def sample(src, out, *, n: int | None = None, frac: float | None = None, stratified: bool = False, seed: int = 0,
           **io) -> SurgeryReport:
    """Write a sample of SRC to OUT (:func:`sample_dataset`); ``io``: the options of :func:`_one_source`."""
    return _one_source("sample", src, out, partial(sample_dataset, n=n, frac=frac, stratified=stratified, seed=seed),
                       empty_ok=True, **io)


__all__ = ["SurgeryReport", "filter_data", "filter_dataset", "merge", "merge_datasets", "parse_mapping", "remap",
           "remap_classes", "sample", "sample_dataset"]
