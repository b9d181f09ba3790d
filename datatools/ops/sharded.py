"""Reading and conversion over shards of files, for ``--engine ray`` (see :mod:`datatools.core.engine`).

What runs where:

* The driver lists the files (VOC: ``Annotations/`` and the split lists; YOLO: the image folders, data.yaml and the
  label folders, for label files without an image), cuts the sorted list into contiguous shards and merges what
  comes back in shard order. It never opens an image, an XML or a label file.
* A worker gets a shard (a list of ``(image_id, path, splits)`` plus options) and reads it: VOC XML with
  :func:`datatools.formats.voc.parse_xml` and its images found in the image folder, or YOLO label files and image
  headers with the YOLO reader's own per-image function. Then it either returns the records (:func:`read_voc`:
  stats, check, split and COCO output need the whole model on the driver) or, for YOLO or VOC output, applies the
  conversion policies and writes the label/XML files and images itself, returning only counts and findings
  (:func:`convert_voc_sharded`: the driver holds per-shard summaries, never the records).

Both give exactly what the local code gives: the same :class:`~datatools.core.model.Dataset`, the same summary, the
same findings in the same order and the same output bytes (tested against ``--engine local``). Findings are kept in
the groups the local reader makes (discovery, per-file, image-header sizes, dataset-wide reader findings such as
label files without an image, then the policies) and concatenated group by group, shard by shard.
"""
from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.engine import make_shards, run_shards
from datatools.core.errors import StrictModeError, UsageError
from datatools.core.io import (ImagesMode, place_stage_file, refuse_replacing_inputs, removed_after,
                               retry_safe_writes, safe_relpath, scratch_beside, staged_dir, symlink_url_message,
                               write_many, write_stage_file)
from datatools.core.model import (Dataset, Finding, ImageRecord, Severity, pack_finding, pack_record, sorted_classes,
                                  unpack_finding, unpack_record)
from datatools.formats.common import DEFAULT_SPLIT, fill_sizes_from_headers, warn

ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------------------------------- the plan

class VocPlan:
    """What the driver knows before any XML is parsed: the files to read (sorted), their splits, and the findings
    that need no parsing (split lists naming missing files, files in no list, a missing image folder)."""

    def __init__(self, src: str | os.PathLike, *, images=None, sets=None) -> None:
        from datatools.formats import voc

        layout = voc.Layout(src, images)
        files, split_of, chosen, findings = voc.plan_files(layout, sets)
        self.image_dir = str(layout.image_dir)
        self.index_exists = layout.image_dir_exists()
        self.root = str(layout.src)
        self.chosen = chosen
        self.findings = findings
        self.tail: list[Finding] = []  # dataset-wide findings that come after the per-file ones
        self.format = "voc"
        self.names: tuple[str, ...] = ()
        self.jobs = [(iid, p, tuple(split_of.get(iid, ()))) for iid, p in files]


class YoloPlan:
    """The same for a YOLO source: the image list (sorted by id) with each image's splits, the class names of
    data.yaml (or ``classes``), the discovery findings, and the label files without an image (listed by the driver,
    reported after the per-file findings, as the local reader does)."""

    def __init__(self, src: str | os.PathLike, *, classes=None) -> None:
        from datatools.formats import yolo

        root, splits, names, findings, items = yolo.plan_reads(src, classes)
        self.root = str(root)
        self.names = names
        self.findings = findings
        self.tail = yolo._orphan_labels(splits, {path for _, path, _ in items})
        self.format = "yolo"
        self.image_dir = ""
        self.index_exists = False
        self.chosen: list[str] = []
        self.jobs = items


# --------------------------------------------------------------------------------------------------- workers

_INDEX: dict = {}


def _image_index(token: str, folder: str):
    """One listing of the image folder per worker process and run (Ray reuses workers across tasks)."""
    from datatools.formats.common import ImageIndex

    key = (token, folder)
    if key not in _INDEX:
        _INDEX.clear()
        _INDEX[key] = ImageIndex(folder)
    return _INDEX[key]


def _read_shard(jobs, *, token: str, image_dir: str, index_exists: bool, convention: str):
    """Parse one shard's XML files and find their images: (records, per-file findings, size findings, objects)."""
    from datatools.formats.voc import parse_file, locate_image

    conv = PixelConvention(convention)
    index = _image_index(token, image_dir) if index_exists else None
    records: list[ImageRecord] = []
    file_findings: list[Finding] = []
    objects = 0
    for iid, path, splits in jobs:
        rec, fnd, n = parse_file((path, iid, conv.value, splits))
        file_findings.extend(fnd)
        objects += n
        if rec is None:
            continue
        if index is not None:
            rec, notes = locate_image(rec, path, index, image_dir)
            file_findings.extend(notes)
        records.append(rec)
    size_findings: list[Finding] = []
    records = fill_sizes_from_headers(records, size_findings, workers=1)
    return records, file_findings, size_findings, objects


def _read_yolo_shard(jobs, names: tuple[str, ...]):
    """Read one shard of YOLO images (label file + image header each), as :func:`datatools.formats.yolo.read` does."""
    from datatools.formats.yolo import _read_one

    records: list[ImageRecord] = []
    file_findings: list[Finding] = []
    objects = 0
    for iid, path, splits in jobs:
        rec, fnd, n = _read_one((path, iid, names))
        file_findings.extend(fnd)
        objects += n
        if rec is not None:
            records.append(replace(rec, splits=splits))
    return records, file_findings, [], objects


def read_shard_task(args: tuple) -> tuple:
    """Ray/process task for :func:`read_voc`: plain tuples, which pickle several times faster than dataclasses."""
    jobs, opts = args
    records, ff, sf, n = _read_shard(jobs, **opts)
    return [pack_record(r) for r in records], [pack_finding(f) for f in ff], [pack_finding(f) for f in sf], n


def names_shard_task(args: tuple) -> set[str]:
    """First pass of a conversion without ``--classes``: the class names a shard uses (nothing else comes back)."""
    from datatools.formats.voc import parse_file

    jobs, convention = args
    conv = PixelConvention(convention)
    names: set[str] = set()
    for iid, path, splits in jobs:
        rec, _, _ = parse_file((path, iid, conv.value, splits))
        if rec is not None:
            names.update(a.label for a in rec.annotations)
    return names


# --------------------------------------------------------------------------------------------------- reading

def read_voc(src: str | os.PathLike, *, images=None, sets=None, convention: PixelConvention | str = DEFAULT_CONVENTION,
             classes: Sequence[str] | None = None, engine: str = "ray", address: str | None = None,
             workers: int | None = None, progress: ProgressFn | None = None, on_total=None,
             shard_size: int | None = None) -> Dataset:
    """:func:`datatools.formats.voc.read` with the parsing done over shards (``engine``): the same Dataset."""
    plan = VocPlan(src, images=images, sets=sets)
    if on_total:
        on_total(len(plan.jobs))
    shards = make_shards(plan.jobs, size=shard_size)
    opts = {"token": uuid.uuid4().hex, "image_dir": plan.image_dir, "index_exists": plan.index_exists,
            "convention": PixelConvention(convention).value}
    results = run_shards(read_shard_task, [(s, opts) for s in shards], engine=engine, address=address,
                         progress=progress, sizes=[len(s) for s in shards], workers=workers)
    records: list[ImageRecord] = []
    file_findings: list[Finding] = []
    size_findings: list[Finding] = []
    objects = 0
    for recs, ff, sf, n in results:
        records.extend(unpack_record(r) for r in recs)
        file_findings.extend(unpack_finding(f) for f in ff)
        size_findings.extend(unpack_finding(f) for f in sf)
        objects += n
    cls = tuple(classes) if classes else sorted_classes(records)
    return Dataset(images=tuple(records), classes=cls, findings=tuple(plan.findings + file_findings + size_findings),
                   objects_read=objects, root=plan.root, format="voc",
                   meta={"sets": plan.chosen, "image_dir": plan.image_dir})


# --------------------------------------------------------------------------------------------------- VOC -> YOLO

def _prepare_shard(jobs, opts: dict, dst_format: str):
    """Read one shard and apply the conversion policies, as ``convert`` does for the whole dataset: (prepared
    dataset, summary counts, file findings, size findings, policy findings, class names seen)."""
    from datatools.ops.convert import summarize
    from datatools.ops.sanitize import prepare

    src_format = opts["src_format"]
    if src_format == "yolo":
        records, ff, sf, n = _read_yolo_shard(jobs, opts["names"])
        read_classes = opts["names"]
    else:
        records, ff, sf, n = _read_shard(jobs, token=opts["token"], image_dir=opts["image_dir"],
                                         index_exists=opts["index_exists"], convention=opts["convention"])
        read_classes = sorted_classes(records)
    labels = {a.label for r in records for a in r.annotations}
    ds_in = Dataset(images=tuple(records), classes=read_classes, findings=tuple(ff + sf), objects_read=n,
                    root=opts["root"], format=src_format)
    ds = prepare(ds_in, classes=opts["classes"], difficult=opts["difficult"], normalize_names=opts["normalize_names"],
                 require_size=dst_format == "yolo")
    # name-case is about the whole dataset: the driver makes it from every shard's names.
    policy = [f for f in ds.findings[len(ds_in.findings):] if f.code != "name-case"]
    ds = ds.evolve(findings=ds_in.findings + tuple(policy))
    part = summarize(ds_in, ds, src="", out="", src_format=src_format, dst_format=dst_format)
    part.findings = []  # shipped once, by the caller, in their groups
    return ds, part, ff, sf, policy, labels


def _made_dir(path: str, made: set[str]) -> None:
    d = os.path.dirname(path)
    if d not in made:
        os.makedirs(d, exist_ok=True)
        made.add(d)


def yolo_shard_task(args: tuple) -> dict:
    """Read, apply the policies and write one shard's YOLO label files and images; return counts and findings."""
    from datatools.formats.yolo import label_text

    jobs, opts = args
    ds, part, ff, sf, policy, labels = _prepare_shard(jobs, opts, "yolo")
    mode = ImagesMode(opts["images_mode"])
    class_ids = {c: i for i, c in enumerate(opts["classes"])}
    lstage, istage = opts["label_stage"], opts["image_stage"]
    splits_seen: dict[str, None] = {}
    label_files = pictures = 0
    made: set[str] = set()
    with retry_safe_writes(scratch_beside(lstage)):
        for rec in ds.images:
            if not rec.has_size:  # prepare(require_size=True) removed these; the local writer refuses them too
                raise ValueError(f"{rec.source}: YOLO needs the image size")
            # The same names, text and bytes as datatools.formats.yolo.write.
            ext = os.path.splitext(rec.image_path or rec.file_name or "")[1] or ".jpg"
            rel = safe_relpath(rec.image_id)
            data = label_text(rec, class_ids, precision=opts["precision"]).encode("utf-8")
            for split in rec.splits or (DEFAULT_SPLIT,):
                split = safe_relpath(split)
                splits_seen.setdefault(split, None)
                dst = os.path.join(lstage, split, rel + ".txt")
                _made_dir(dst, made)
                write_stage_file(dst, data)
                label_files += 1
                if rec.image_path and mode is not ImagesMode.NONE:
                    idst = os.path.join(istage, split, rel + ext)
                    _made_dir(idst, made)
                    place_stage_file(rec.image_path, idst, mode)
                    pictures += 1
    return {"summary": part, "labels": labels, "splits": list(splits_seen), "files": label_files,
            "pictures": pictures, "file_findings": [pack_finding(f) for f in ff],
            "size_findings": [pack_finding(f) for f in sf], "policy_findings": [pack_finding(f) for f in policy]}


def voc_shard_task(args: tuple) -> dict:
    """Read, apply the policies and write one shard's VOC XML files and images; return counts, findings and the
    image ids of each split (the driver writes ImageSets/Main from them, in shard order)."""
    from datatools.core.boxes import PixelConvention as Conv
    from datatools.formats.voc import output_image_name, to_xml

    jobs, opts = args
    ds, part, ff, sf, policy, labels = _prepare_shard(jobs, opts, "voc")
    mode = ImagesMode(opts["images_mode"])
    astage, istage = opts["label_stage"], opts["image_stage"]
    split_ids: dict[str, list[str]] = {}
    files = pictures = 0
    made: set[str] = set()
    conv = Conv(opts["convention"])
    with retry_safe_writes(scratch_beside(astage)):
        for rec in ds.images:
            # The same names, text and bytes as datatools.formats.voc.write.
            name = safe_relpath(output_image_name(rec))
            for sp in rec.splits:
                split_ids.setdefault(safe_relpath(sp), []).append(rec.image_id)
            dst = os.path.join(astage, safe_relpath(rec.image_id) + ".xml")
            _made_dir(dst, made)
            write_stage_file(dst, to_xml(rec, image_name=name, convention=conv,
                                         precision=opts["precision"]).encode("utf-8"))
            files += 1
            if rec.image_path and mode is not ImagesMode.NONE:
                idst = os.path.join(istage, name)
                _made_dir(idst, made)
                place_stage_file(rec.image_path, idst, mode)
                pictures += 1
    return {"summary": part, "labels": labels, "split_ids": split_ids, "files": files, "pictures": pictures,
            "file_findings": [pack_finding(f) for f in ff], "size_findings": [pack_finding(f) for f in sf],
            "policy_findings": [pack_finding(f) for f in policy]}


def _merge(parts: Sequence) -> dict:
    """Add up per-shard :class:`~datatools.ops.convert.Summary` counts exactly as one summary over everything."""
    canon = {"train": 0, "val": 1, "test": 2}
    tot: dict = {k: 0 for k in ("images_read", "images_written", "objects_read", "objects_written")}
    counters = {k: Counter() for k in ("images_dropped", "objects_dropped", "errors", "warnings", "notes", "splits")}
    difficult: dict[str, int] = {}
    classes: dict[str, int] = {}
    for p in parts:
        for k in tot:
            tot[k] += getattr(p, k)
        for k, c in counters.items():
            c.update(getattr(p, k))
        for k, v in p.difficult.items():
            difficult[k] = difficult.get(k, 0) + v
        for k, v in p.class_counts.items():
            classes[k] = classes.get(k, 0) + v
    out = dict(tot)
    for k, c in counters.items():
        out[k] = dict(sorted(c.items(), key=(lambda kv: (canon.get(kv[0], 3), kv[0])) if k == "splits" else None))
    out["difficult"] = difficult
    out["class_counts"] = classes
    return out


def _name_case(root: str, labels: set[str]) -> list[Finding]:
    """The dataset-wide ``name-case`` warnings of :func:`datatools.ops.sanitize.prepare`, from the names alone."""
    from datatools.ops.sanitize import normalize_name

    variants: dict[str, set[str]] = {}
    for name in labels:
        variants.setdefault(normalize_name(name), set()).add(name)
    return [warn("name-case", root, "name", f"class names {sorted(names)} differ only in case or spacing; kept apart "
                 "(use --normalize-names to merge)") for key, names in sorted(variants.items()) if len(names) > 1]


class _NoImages(Exception):
    """Leave an images stage unused: the local writer does not touch images/ when there is nothing to place."""


def convert_voc_to_yolo(src: str | os.PathLike, out: str | os.PathLike, **kw):
    """VOC -> YOLO with the workers writing (see :func:`convert_voc_sharded`)."""
    return convert_voc_sharded(src, out, dst_format="yolo", **kw)


def convert_voc_sharded(src: str | os.PathLike, out: str | os.PathLike, *, dst_format: str = "yolo",
                        src_format: str = "voc", images=None,
                        sets=None, classes: Sequence[str] | None = None, difficult: str = "keep",
                        normalize_names: bool = False, convention: PixelConvention | str = DEFAULT_CONVENTION,
                        images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6, strict: bool = False,
                        engine: str = "ray", address: str | None = None, workers: int | None = None,
                        progress=None, shard_size: int | None = None):
    """VOC or YOLO -> YOLO or VOC with the workers reading, checking and writing: the same files, summary and
    findings as ``convert(src_format, src, dst_format, out)``. From VOC without ``classes`` a first pass parses every
    XML for its class names, because label ids (and the summary's class order) need the sorted class list before any
    file is written; a YOLO source names its classes in data.yaml.

    ``out`` must be reachable at the same path from every worker (a shared file system on a multi-node cluster).
    The annotation folder (``labels/`` or ``Annotations/``) and the image folder (``images/`` or ``JPEGImages/``) are
    staged beside their final place and swapped in whole, as locally; inside the stage each file is also written
    atomically (scratch file + ``os.replace``), so a retried task rewrites whole files and a killed one leaves nothing
    half-written. The driver writes the few aggregate files (data.yaml and classes.txt, or ImageSets/Main).
    """
    from datatools.ops.sanitize import normalize_name

    if dst_format not in ("yolo", "voc"):
        raise UsageError(f"internal: workers write YOLO or VOC output, not {dst_format}")
    images_mode = ImagesMode(images_mode)
    if images_mode is ImagesMode.SYMLINK and "://" in os.fspath(images or src):
        raise UsageError(symlink_url_message(os.fspath(images or src)))
    if src_format == "yolo" and sets:
        raise UsageError("--sets applies to VOC input only")
    plan = YoloPlan(src, classes=classes) if src_format == "yolo" else VocPlan(src, images=images, sets=sets)
    # the files the workers will read (annotation files, YOLO images; label files sit beside in labels/)
    read = {os.path.dirname(p) for _, p, _ in plan.jobs}
    from datatools import formats
    from datatools.ops.convert import owned_by

    owned = owned_by(formats.get(dst_format), out, images_mode)
    refuse_replacing_inputs(out, owned, [src, images, plan.root, plan.image_dir, *read])
    shards = make_shards(plan.jobs, size=shard_size)
    sizes = [len(s) for s in shards]

    def stage(name: str):
        if progress is None:
            return None
        progress(name, 0, len(plan.jobs))
        return lambda n: progress(name, n, None)

    conv = PixelConvention(convention).value
    if src_format == "yolo":  # data.yaml's names (or --classes), merged by --normalize-names as prepare() does
        from datatools.ops.sanitize import prepare

        wanted = list(prepare(Dataset(images=(), classes=plan.names, root=plan.root, format="yolo"),
                              normalize_names=normalize_names).classes)
    elif classes:
        wanted = list(classes)
    else:
        names: set[str] = set()
        for part in run_shards(names_shard_task, [(s, conv) for s in shards], engine=engine, address=address,
                               progress=stage("classes"), sizes=sizes, workers=workers):
            names |= part
        wanted = sorted({normalize_name(n) for n in names}) if normalize_names else sorted(names)
    # A failed run leaves no output folder it made: staged_dir removes the parents it created.
    return _write_sharded(plan, shards, sizes, Path(out), wanted, stage, dst_format=dst_format, src=src, conv=conv,
                          difficult=difficult, normalize_names=normalize_names, precision=precision,
                          images_mode=images_mode, strict=strict, engine=engine, address=address, workers=workers)


def _write_sharded(plan, shards, sizes, out: Path, wanted, stage, *, dst_format, src, conv, difficult,
                   normalize_names, precision, images_mode, strict, engine, address, workers):
    from datatools.core.io import write_files
    from datatools.formats.yolo import data_yaml

    ann_name, img_name = ("labels", "images") if dst_format == "yolo" else ("Annotations", "JPEGImages")
    task = yolo_shard_task if dst_format == "yolo" else voc_shard_task
    results: list[dict] = []
    with staged_dir(out / ann_name) as lstage, removed_after(scratch_beside(lstage)):
        try:
            with staged_dir(out / img_name) as istage:
                opts = {"token": uuid.uuid4().hex, "image_dir": plan.image_dir, "index_exists": plan.index_exists,
                        "convention": conv, "root": plan.root, "classes": tuple(wanted), "difficult": difficult,
                        "src_format": plan.format, "names": plan.names,
                        "normalize_names": normalize_names, "precision": precision, "images_mode": images_mode.value,
                        "label_stage": lstage, "image_stage": istage}
                results = run_shards(task, [(s, opts) for s in shards], engine=engine, address=address,
                                     progress=stage("convert"), sizes=sizes, workers=workers)
                summary = _summary(plan, results, wanted, normalize_names, src=str(src), out=str(out),
                                   dst_format=dst_format)
                if strict and summary.errors:
                    summary.written = False
                    raise StrictModeError(
                        f"{sum(summary.errors.values())} data error(s) under --strict; nothing was written",
                        tuple(f for f in summary.findings if f.severity is Severity.ERROR))
                if not any(r["pictures"] for r in results):
                    raise _NoImages
        except _NoImages:
            pass
    if dst_format == "voc":
        split_ids: dict[str, list[str]] = {}
        for r in results:
            for sp, ids in r["split_ids"].items():
                split_ids.setdefault(sp, []).extend(ids)
        if split_ids:
            with staged_dir(out / "ImageSets") as sstage:
                write_files([(os.path.join(sstage, "Main", sp + ".txt"), "".join(i + "\n" for i in ids))
                             for sp, ids in sorted(split_ids.items())])
        summary.files_written = sum(r["files"] for r in results)
        return summary
    splits_seen: dict[str, None] = {}
    for r in results:
        for sp in r["splits"]:
            splits_seen.setdefault(sp, None)
    order = ("train", "val", "test")
    splits = sorted(splits_seen, key=lambda sp: (order.index(sp) if sp in order else 3, sp))
    items = [(str(out / "classes.txt"), "".join(n + "\n" for n in wanted)),
             (str(out / "data.yaml"), data_yaml(out, splits, wanted))]
    write_many(items)
    summary.files_written = sum(r["files"] for r in results) + len(items)
    return summary


def _summary(plan: VocPlan | YoloPlan, results: Sequence[dict], wanted: Sequence[str], normalize_names: bool, *, src: str,
             out: str, dst_format: str = "yolo"):
    from datatools.ops.convert import Summary, summarize

    labels: set[str] = set()
    for r in results:
        labels |= r["labels"]
    global_read = tuple(plan.findings) + tuple(plan.tail)
    global_policy = tuple(_name_case(plan.root, labels)) if not normalize_names else ()
    # The dataset-wide findings as a shard of their own, so that they are counted by the same summarize().
    head = summarize(Dataset(images=(), classes=tuple(wanted), findings=global_read),
                     Dataset(images=(), classes=tuple(wanted), findings=global_read + global_policy),
                     src=src, out=out, src_format=plan.format, dst_format=dst_format)
    merged = _merge([head] + [r["summary"] for r in results])
    s = Summary(src=src, src_format=plan.format, out=out, dst_format=dst_format, **merged)
    fl: list[Finding] = list(plan.findings)
    for key in ("file_findings", "size_findings"):
        for r in results:
            fl.extend(unpack_finding(f) for f in r[key])
    fl.extend(plan.tail)
    fl.extend(global_policy)
    for r in results:
        fl.extend(unpack_finding(f) for f in r["policy_findings"])
    s.findings = fl
    return s
