"""Box and class policies shared by conversion and ``check --fix``: what to keep, repair or drop, each with a finding.

Use :func:`prepare` between reading and writing. It never edits its input; it returns a new dataset whose findings
say what happened to every object that was changed or removed.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Sequence

from datatools.core.boxes import Box, clip, file_box
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, class_list
from datatools.formats.common import err, info, warn

DIFFICULT_POLICIES = ("keep", "skip", "crowd")
# Float noise from normalized formats (a box edge at 1.0000001 * W) is clipped without a finding.
_NOISE = 1e-3


def box_problem(box: Box, width: int | None, height: int | None) -> str | None:
    """Classify a box: ``box-inverted``, ``zero-area``, ``box-outside-image`` (nothing inside), ``box-out-of-bounds``
    (partly outside) or ``None`` when it is fine. Without a size only the first two can be told."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return "box-inverted"
    if x2 == x1 or y2 == y1:
        return "zero-area"
    if width and height:
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            return "box-outside-image"
        if x1 < -_NOISE or y1 < -_NOISE or x2 > width + _NOISE or y2 > height + _NOISE:
            return "box-out-of-bounds"
    return None


BOX_MESSAGES = {
    "box-inverted": "xmin > xmax or ymin > ymax",
    "zero-area": "the box has zero width or height",
    "box-outside-image": "the box lies entirely outside the image",
    "box-out-of-bounds": "the box reaches outside the image",
}


def object_field(a: Annotation, k: int, part: str = "") -> str:
    """Where object ``k`` of a record is in its source file, for a finding: the place its reader gave it
    (``Annotation.where``: ``line 3``, ``annotations[5]``, ...), with the VOC tag ``part`` concerned
    (``object[2]/bndbox``) for a VOC object; ``object[k]/part`` for an object made in code."""
    where = a.where or f"object[{k}]"
    return f"{where}/{part}" if part and where.startswith("object[") else where


def normalize_name(name: str) -> str:
    return " ".join(name.split()).lower()


def prepare(ds: Dataset, *, classes: Sequence[str] | None = None, difficult: str = "keep",
            normalize_names: bool = False, require_size: bool = False, clip_boxes: bool = True) -> Dataset:
    """Apply the conversion policies and return a new dataset.

    * ``classes``: the class list and order; objects of other classes are dropped (``unknown-class``).
      Default: ``ds.classes`` (sorted discovered names for VOC).
    * ``difficult``: ``keep``, ``skip`` (dropped, counted as ``difficult-skipped``) or ``crowd`` (kept with
      ``iscrowd=1``, which COCO evaluation ignores).
    * ``normalize_names``: lower-case and collapse spaces in class names; otherwise names that differ only in case
      are reported (``name-case``) and kept as written.
    * ``require_size``: drop images whose size is unknown (a format whose ``NEEDS_SIZE``, such as YOLO, cannot be
      written without it).
    * ``clip_boxes``: clip boxes to the image (``box-out-of-bounds``); boxes with no area inside are always dropped.
    """
    if difficult not in DIFFICULT_POLICIES:
        raise ValueError(f"difficult must be one of {DIFFICULT_POLICIES}, not {difficult!r}")
    findings: list[Finding] = []
    images = ds.images
    classes = class_list(classes)
    base_classes = list(ds.classes)
    if normalize_names:
        images = tuple(im.with_annotations(replace(a, label=normalize_name(a.label)) for a in im.annotations)
                       for im in images)
        base_classes = list(dict.fromkeys(normalize_name(c) for c in base_classes))
        if not classes:
            base_classes = sorted(base_classes) if ds.format == "voc" else base_classes
    else:
        variants: dict[str, set[str]] = defaultdict(set)
        for label in {a.label for im in images for a in im.annotations}:
            variants[normalize_name(label)].add(label)
        for key, names in sorted(variants.items()):
            if len(names) > 1:
                findings.append(warn("name-case", ds.root, "name",
                                     f"class names {sorted(names)} differ only in case or spacing; kept apart "
                                     "(use --normalize-names to merge)"))
    wanted = list(classes) if classes else base_classes
    if classes:  # a misspelt name selects nothing: said once, not only as its class's objects dropped
        named = set(base_classes) | {a.label for im in images for a in im.annotations}
        absent = [c for c in classes if c not in named]
        if absent:
            findings.append(warn("class-not-in-source", ds.root, "classes",
                                 f"--classes names {', '.join(map(repr, absent))}, which the dataset does not name; "
                                 "--classes selects and orders classes by name, it does not rename them"))
    known = set(wanted)
    out: list[ImageRecord] = []
    unknown_names: dict[str, int] = defaultdict(int)
    for im in images:
        if require_size and not im.has_size:
            findings.append(err("missing-size", im.source, "size",
                                f"the image size is unknown (no <size> and no readable image); image and its "
                                f"{len(im.annotations)} object(s) dropped", image_id=im.image_id,
                                objects=len(im.annotations), image_dropped=True))
            continue
        kept: list[Annotation] = []
        width, height = im.width, im.height
        # records nothing touched are passed on as they are: rebuilding 100k of them costs seconds
        for k, a in enumerate(im.annotations):
            if a.label not in known:
                unknown_names[a.label] += 1
                findings.append(warn("unknown-class", im.source, object_field(a, k, "name"),
                                     f"class {a.label!r} is not in the class list; dropped", image_id=im.image_id,
                                     objects=1))
                continue
            x1, y1, x2, y2 = a.box
            if width and height and 0.0 <= x1 < x2 <= width and 0.0 <= y1 < y2 <= height:
                problem = None  # the common case, inside the image: nothing to check or clip
            else:
                problem = box_problem(a.box, width, height)
            if problem == "box-out-of-bounds" and clip_boxes:
                findings.append(warn("box-out-of-bounds", im.source, object_field(a, k, "bndbox"),
                                     f"{BOX_MESSAGES[problem]}: {box_text(ds, a.box)} clipped to {im.width}x{im.height}",
                                     image_id=im.image_id, box=a.box))
                a = replace(a, box=clip(a.box, im.width, im.height))  # type: ignore[arg-type]
            elif problem in ("box-inverted", "zero-area", "box-outside-image"):
                findings.append(err(problem, im.source, object_field(a, k, "bndbox"), f"{BOX_MESSAGES[problem]}: "
                                    f"{box_text(ds, a.box)}; dropped", image_id=im.image_id, objects=1, box=a.box))
                continue
            elif width and height and problem is None and _outside(a.box, width, height):
                a = replace(a, box=clip(a.box, width, height))  # float noise at an edge
            if a.difficult:
                if difficult == "skip":
                    findings.append(info("difficult-skipped", im.source, object_field(a, k, "difficult"),
                                         "difficult object skipped (--difficult skip)", image_id=im.image_id, objects=1))
                    continue
                if difficult == "crowd":
                    a = replace(a, iscrowd=True)
            kept.append(a)
        if len(kept) != len(im.annotations) or any(x is not y for x, y in zip(kept, im.annotations)):
            out.append(im.with_annotations(kept))
        else:
            out.append(im)
    return ds.evolve(images=tuple(out), classes=tuple(wanted), findings=ds.findings + tuple(findings))


def _outside(box: Box, w: int, h: int) -> bool:
    return box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h


def box_text(ds: Dataset, box: Box) -> str:
    """A box of ``ds`` for a message, in its file's own numbers (a VOC box under the convention it was read with)."""
    convention = ds.meta.get("convention") if ds.format == "voc" and ds.meta else None
    return "[" + ", ".join(f"{v:g}" for v in file_box(box, convention)) + "]"
