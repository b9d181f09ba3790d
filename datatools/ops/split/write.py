"""Writing a :class:`~datatools.ops.split.plan.SplitPlan`: the parts side by side in OUT, in the input's own format.

Use :func:`write_split` after :func:`~datatools.ops.split.plan.plan_split`. Each folder it owns is built beside its
place and swapped in whole, so a split written over an earlier one leaves none of the earlier files behind.

How a part is written follows how the format carries splits. VOC and COCO keep the input's own files (copied, or
filtered by image id). A format that records each image's split (YOLO's folders, CVAT's ``subset``, Open Images'
``<split>-annotations-bbox.csv``) is written once through its writer, each record's split set to its part. A format
without a notion of split (LabelMe, Label Studio, and any format added later) gets one complete dataset per part,
``OUT/<part>/``, each through its writer.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from datatools import formats
from datatools.core.atomic import (ImagesMode, mark_written, output_transaction, place_images, remove_at_commit,
                                   staged_dir, write_files, write_staged)
from datatools.core.errors import UsageError
from datatools.core.fs import read_small_file
from datatools.core.model import Dataset, Finding, ImageRecord, Severity
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import (check_output_dir, dataset_inputs, input_folders, is_absolute_name,
                                  refuse_replacing_inputs, safe_join, safe_relpath)
from datatools.formats.common import output_image_name, warn
from datatools.ops.split.plan import TEST, TRAIN, VAL, SplitPlan
from datatools.formats.coco_ids import coco_documents, coco_source, id_text

ORIGINALS = ("voc", "coco")  # the input's own files, copied or filtered: every field kept
PARTS = (TRAIN, VAL, TEST)  # the part folders of a format without splits, in this order
_FOLD = re.compile(r"fold_\d+")


@dataclass
class SplitWriteResult:
    """What :func:`write_split` wrote: files (annotations and lists), images placed, and findings (images not
    placed, folders of an earlier split removed or left)."""

    out: str
    files: int = 0
    images_placed: int = 0
    findings: list[Finding] = field(default_factory=list)


def write_split(plan: SplitPlan, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK,
                workers: int | None = None, progress: ProgressFn | None = None, engine: str = "local",
                ray_address: str | None = None) -> SplitWriteResult:
    """Write the plan into ``out`` in the input's own format (see the module doc; ``fold_<i>/`` each with ``kfold``);
    the input is never modified. Each layout and what happens to an earlier split's files: docs/split.md#output and
    #writing-over-an-earlier-split. Folders are swapped in whole (:func:`datatools.core.atomic.staged_dir`); nothing
    replaced or removed may hold an input (:func:`datatools.core.paths.refuse_replacing_inputs`). The input's
    annotation files are read again through :mod:`datatools.core.fs`, so a source behind a URL splits like a local one.
    """
    ds = plan.dataset
    mod = formats.get(ds.format)
    if not callable(getattr(mod, "write", None)):
        raise UsageError(f"cannot write splits for format {ds.format!r}: it has no writer")
    _refuse_sizeless(ds, mod)
    mode, mapper = ImagesMode(images_mode), Mapper(engine=engine, address=ray_address, workers=workers)
    inputs = [ds.root] + ([os.path.join(ds.root, "Annotations")] if ds.format == "voc" and ds.root else [])
    out = check_output_dir(out, input_folders(ds, *inputs))  # not the input, nor inside it
    layouts = plan.layouts()
    # What this split replaces whole: the format's folders (and data.yaml), or the part folders, at the top or in
    # each fold, and every fold_<i> folder, written or stale. None of it may hold an input.
    owned = list(owned_names(ds.format))
    folds = {sub for sub, _ in layouts if sub} | ({p.name for p in out.iterdir() if _FOLD.fullmatch(p.name)}
                                                  if out.is_dir() else set())
    refuse_replacing_inputs(out, owned + sorted(folds), dataset_inputs(ds))
    # Read once for every fold; also before anything is written, so an unreadable source changes nothing in OUT.
    docs = coco_documents(coco_source(r)[0] for r in ds.images) if ds.format == "coco" else {}
    result = SplitWriteResult(out=str(out))
    with output_transaction(out):  # every part, fold and list lands together, or none does (OUT stays as it was)
        _write_layouts(plan, out, layouts, docs, mode, mapper, result, progress)
    return result


def _write_layouts(plan: SplitPlan, out: Path, layouts, docs: dict[str, dict], mode: ImagesMode, mapper: Mapper,
                   result: SplitWriteResult, progress: ProgressFn | None) -> None:
    ds = plan.dataset
    mod = formats.get(ds.format)
    owned = owned_names(ds.format)
    by_id = {r.image_id: r for r in ds.images}
    for sub, assign in layouts:
        target = out / sub if sub else out
        recs = [replace(by_id[iid], splits=(assign[iid],)) for iid in sorted(assign)]
        roots = [target]  # the dataset roots written: target, or one folder per part
        if ds.format == "voc":
            _write_voc(recs, target, mode, mapper, result)
        elif ds.format == "coco":
            _write_coco(recs, docs, target, mode, mapper, result)
        elif "splits" in mod.KEEPS:
            _write_part(mod, ds.evolve(images=tuple(recs)), target, mode, mapper, result)
        else:
            names = [p for p in PARTS if any(r.splits[0] == p for r in recs)]
            roots = [target / p for p in names]
            for name, root in zip(names, roots):
                _write_part(mod, ds.evolve(images=tuple(r for r in recs if r.splits[0] == name)), root, mode,
                            mapper, result)
                mark_written(root)  # a part folder may hold files only (tasks.json): its own marker says whose
            # An earlier split's test/ beside this one's train/ and val/ would bring its images back into play.
            _remove_stale([target / p for p in PARTS if p not in names], result, "stale-parts-removed", target,
                          "split", "left by an earlier split with other parts")
        if mode is ImagesMode.NONE:  # an earlier split's images would sit under this one's part names: removed
            for root in roots:
                _remove_stale([root / mod.IMAGE_FOLDER], result, "stale-images-removed", root / mod.IMAGE_FOLDER,
                              "images", "the image folder of an earlier split (--images-mode none places no images)")
        if sub:
            mark_written(target)
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


def owned_names(fmt: str) -> tuple[str, ...]:
    """What a split in format ``fmt`` replaces whole at the top of OUT or of a ``fold_<i>``: the format's own
    entries (:data:`OWNED` of its module), or the part folders for a format written one dataset per part."""
    if fmt in ORIGINALS or "splits" in formats.get(fmt).KEEPS:
        return tuple(formats.get(fmt).OWNED)
    return PARTS


def _refuse_sizeless(ds: Dataset, mod) -> None:
    """A writer whose boxes are relative to the image size (YOLO, Open Images, Label Studio) cannot write an image
    without one, and a split leaves no image out: refused before anything is written, naming the first such image.
    (Read from that same format, every image has its size.)"""
    if ds.format in ORIGINALS or not getattr(mod, "NEEDS_SIZE", False):
        return
    sizeless = [r for r in ds.images if not r.has_size]
    if sizeless:
        first = sizeless[0]
        raise UsageError(f"{first.source or first.image_id}: image {first.image_id!r} has no size, and {mod.NAME} "
                         f"writes boxes relative to it ({len(sizeless):,} image(s) without a size); give the "
                         "images (--images) so their headers give the size")


# --------------------------------------------------------------------------------------------------- folders

def _remove_stale(folders: Sequence[Path], result: SplitWriteResult, code: str, where: Path, field_: str,
                  why: str) -> None:
    """Remove folders an earlier split left that this one does not write, with one info finding naming them."""
    folders = [p for p in folders if p.is_dir() and not p.is_symlink()]
    for p in folders:
        remove_at_commit(p)  # with the rest of the split: a failed run leaves them
    if folders:
        result.findings.append(Finding(code, Severity.INFO, str(where), field_,
                                       f"removed {', '.join(p.name for p in folders)}, {why}"))


def _remove_stale_folds(out: Path, written: set[str], result: SplitWriteResult) -> None:
    """Remove ``OUT/fold_<i>`` folders left by an earlier split that this one did not write."""
    stale = sorted((p for p in out.iterdir() if _FOLD.fullmatch(p.name) and p.name not in written),
                   key=lambda p: int(p.name[5:])) if out.is_dir() else []
    _remove_stale(stale, result, "stale-folds-removed", out, "kfold", "left by an earlier split with other folds")


def _place_images(recs: Sequence[ImageRecord], folder: Path, name_of: Callable[[ImageRecord], str],
                  mode: ImagesMode, mapper: Mapper, result: SplitWriteResult) -> None:
    """Place the images of ``recs`` in ``folder`` as ``name_of(record)``, built as a stage and swapped in (on Ray, by
    the workers). An unsafe file name is a finding, and that image is not placed."""
    if mode is ImagesMode.NONE:
        return
    pairs = []
    for rec in recs:
        if not rec.image_path:
            continue
        try:
            pairs.append((rec.image_path, safe_relpath(name_of(rec))))
        except UsageError as e:
            result.findings.append(warn("unsafe-filename", rec.source, "file_name",
                                        f"{e}; the image was not placed", image_id=rec.image_id))
    place_images(folder, pairs, mode, mapper=mapper)
    result.images_placed += len(pairs)


# --------------------------------------------------------------------------------------------------- formats

def _write_voc(recs: list[ImageRecord], target: Path, mode: ImagesMode, mapper: Mapper,
               result: SplitWriteResult) -> None:
    """A complete VOC root: the original XMLs, the images, and ImageSets/Main lists (with ``trainval``)."""
    with staged_dir(target / "Annotations") as stage:
        # XMLs are copied, never hard-linked: editing the split copy must not edit the input.
        write_staged([(read_small_file(r.source), [str(safe_join(stage, r.image_id + ".xml"))]) for r in recs],
                     stage=stage, mapper=mapper)  # per-image files, as every writer writes them
    _place_images(recs, target / formats.get("voc").IMAGE_FOLDER, lambda r: r.file_name or (r.image_id + ".jpg"),
                  mode, mapper, result)
    lists: dict[str, list[str]] = {}
    for r in recs:
        lists.setdefault(r.splits[0], []).append(r.image_id)
    if TRAIN in lists or VAL in lists:
        lists["trainval"] = sorted(lists.get(TRAIN, []) + lists.get(VAL, []))
    with staged_dir(target / "ImageSets") as stage:
        sets = [(os.path.join(stage, "Main", f"{name}.txt"), "".join(i + "\n" for i in ids))
                for name, ids in sorted(lists.items())]
        write_files(sets)
    result.files += len(recs) + len(sets)


def _write_part(mod, part: Dataset, target: Path, mode: ImagesMode, mapper: Mapper, result: SplitWriteResult) -> None:
    """``part`` written at ``target`` by the format's own writer, with the records' splits set (YOLO: labels, images,
    data.yaml, classes.txt; CVAT: annotations.xml with subsets; LabelMe: annotations/ and images/; ...)."""
    res = mod.write(part, target, images_mode=mode, workers=mapper.workers, mapper=mapper)
    if mode is not ImagesMode.NONE:
        result.images_placed += sum(1 for r in part.images if r.image_path)
    if mod.NAME == "yolo" and VAL not in {r.splits[0] for r in part.images}:
        result.findings.append(warn("val-is-train", str(target / "data.yaml"), "val",
                                    "there is no val part, so data.yaml's val points at images/train (ultralytics "
                                    "needs a val entry): validation there scores training images"))
    result.files += len(res.files)
    result.findings += res.findings


def _write_coco(recs: list[ImageRecord], docs: dict[str, dict], target: Path, mode: ImagesMode, mapper: Mapper,
                result: SplitWriteResult) -> None:
    """One JSON per split: the original JSON with its images and annotations filtered by image id, every other field
    kept. When the input is several files whose ids collide (e.g. instances_train.json and instances_val.json both
    counting from 1), ids are renumbered over all files in file order (the same numbers in every split and fold)."""
    from datatools.formats.coco import dumps

    wanted: dict[str, dict[str, set[str]]] = {}  # split -> json path -> raw image ids (as str)
    names: dict[tuple[str, str], str] = {}  # (json path, raw id) -> the file name written and placed
    used: dict[str, str] = {}
    # an image whose own id's name is its file name takes that name first: valid/x0 (x0.jpg of the valid file) never
    # takes x0.jpg from x0 of the train file, whose own name it is (a name both would then want)
    for r in sorted(recs, key=lambda r: output_image_name(r) != (r.file_name or r.image_id)):
        path, raw_id = coco_source(r)
        wanted.setdefault(r.splits[0], {}).setdefault(path, set()).add(raw_id)
        name = r.file_name or r.image_id
        if is_absolute_name(name) or ".." in name.replace("\\", "/").split("/"):  # C:\\al\\a.jpg: the image found
            name = output_image_name(r)
        if used.setdefault(name, r.image_id) != r.image_id:  # images/train/0.jpg and images/val/0.jpg: two images
            name = output_image_name(r)  # its own id's name (val/0.jpg), as every writer names what it places
        names[(path, raw_id)] = name
    paths = sorted(docs)
    base = docs[paths[0]]
    for p in paths[1:]:
        if docs[p].get("categories") != base.get("categories"):
            raise UsageError(f"{p} and {paths[0]} have different categories: split one COCO file at a time")
    renumber = _ids_collide([docs[p] for p in paths])
    if renumber and not any(f.code == "ids-renumbered" for f in result.findings):
        result.findings.append(warn("ids-renumbered", ", ".join(paths), "id",
                                    "the input files share image or annotation ids; ids were renumbered from 1 over "
                                    "all files in file order"))
    new_image_id: dict[tuple[str, object], int] = {}
    new_ann_id: dict[tuple[str, int], int] = {}
    for p in paths:
        for im in docs[p]["images"]:
            if isinstance(im, dict) and im.get("id") is not None:
                new_image_id.setdefault((p, im["id"]), len(new_image_id) + 1)
        for k, a in enumerate(docs[p].get("annotations") or []):
            new_ann_id[(p, k)] = len(new_ann_id) + 1
    items = []
    for split, per_file in sorted(wanted.items()):
        obj = {k: v for k, v in base.items() if k not in ("images", "annotations")}
        images, anns = [], []
        for p in paths:
            ids = per_file.get(p, set())
            keep = set()
            for im in docs[p]["images"]:
                # an id listed twice: the first entry, the one the reader kept (duplicate-image-id)
                if isinstance(im, dict) and id_text(im.get("id")) in ids and im["id"] not in keep:
                    keep.add(im["id"])
                    name = names[(p, id_text(im["id"]))]
                    im = im if im.get("file_name") == name else {**im, "file_name": name}
                    images.append({**im, "id": new_image_id[(p, im["id"])]} if renumber else im)
            for k, a in enumerate(docs[p].get("annotations") or []):
                if isinstance(a, dict) and a.get("image_id") in keep:
                    anns.append({**a, "id": new_ann_id[(p, k)], "image_id": new_image_id[(p, a["image_id"])]}
                                if renumber else a)
        obj["images"], obj["annotations"] = images, anns
        items.append((f"instances_{split}.json", dumps(obj)))
    with staged_dir(target / "annotations") as stage:
        write_files([(os.path.join(stage, name), text) for name, text in items])
    _place_images(recs, target / formats.get("coco").IMAGE_FOLDER, lambda r: names[coco_source(r)], mode, mapper,
                  result)
    result.files += len(items)


def _ids_collide(docs: Sequence[dict]) -> bool:
    """True when two input files share an image id or an annotation id (then ids are renumbered)."""
    if len(docs) < 2:
        return False
    img: Counter = Counter(im.get("id") for d in docs for im in d["images"] if isinstance(im, dict))
    ann: Counter = Counter(a.get("id") for d in docs for a in d.get("annotations") or [] if isinstance(a, dict))
    return any(v > 1 for v in img.values()) or any(v > 1 for v in ann.values())
