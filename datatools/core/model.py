"""The one annotation model every format reads into and writes from.

Boxes are absolute continuous pixel XYXY floats (see :mod:`datatools.core.boxes`). Operations return new datasets
instead of editing the ones they are given: records are values, changed with :func:`dataclasses.replace`, never in
place (tests/test_records_not_edited.py runs every operation and checks its input is unchanged).

:class:`Annotation` and :class:`ImageRecord` are slotted dataclasses without ``frozen=True``: a frozen dataclass's
``__init__`` sets each field through ``object.__setattr__`` and took 1.2 us against 0.26 us, paid for every object
read, again when a worker's records reach the driver, and again by each ``replace``. On 17,125 VOC files that cost
``voc2yolo`` about 0.1 of its ratio to the floor (benchmarks/RESULTS.md). They hash by value (``unsafe_hash``) as they
did when frozen; everything else stays frozen.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterable, Mapping

from datatools.core.boxes import Box
from datatools.core.errors import UsageError


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """Something noticed about the data: a stable ``code``, where it is (``path`` + ``field``) and what happened.

    ``objects`` is how many objects this finding removed from the output (0 for a warning or a repair, 1 for a
    dropped box, N for a dropped image with N boxes). Summaries add these up so that
    objects read == objects written + objects dropped. ``box`` is the box concerned (continuous pixel XYXY) when
    there is one, so tools can show where a dropped box was.
    """

    code: str
    severity: Severity
    path: str
    field: str
    message: str
    image_id: str = ""
    objects: int = 0
    image_dropped: bool = False
    box: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity.value, "path": self.path, "field": self.field,
                "message": self.message, "image_id": self.image_id, "objects_dropped": self.objects,
                "image_dropped": self.image_dropped, "box": list(self.box) if self.box else None}


@dataclass(slots=True, unsafe_hash=True)
class Annotation:
    """One object. ``box`` is continuous pixel XYXY. ``attributes`` holds extra per-object fields (pose, ...)."""

    label: str
    box: Box
    difficult: bool = False
    truncated: bool = False
    occluded: bool = False
    iscrowd: bool = False
    score: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    # Where the object is in its source file, as its reader names it in its own findings (``object[2]`` of a VOC XML,
    # ``line 3`` of a YOLO or Open Images file, ``annotations[5]`` of a COCO file, ``shapes[1]``, ...), so that a
    # later finding about it (a box clipped or dropped) names the same place; "" for an object made in code. Not part
    # of equality: the same object read from VOC and from YOLO is the same object.
    where: str = field(default="", compare=False, repr=False)
    # Fields of the source format that the model does not hold (COCO ``segmentation``, ``area``, custom keys), as
    # (key, JSON value) pairs, written back by the same format's writer. Not part of equality either.
    extra: tuple[tuple[str, object], ...] = field(default=(), compare=False, repr=False)

    @property
    def attrs(self) -> dict[str, str]:
        return dict(self.attributes)

    def __reduce__(self):
        # Records travel from reader processes to the driver by the ten thousand: rebuilding one from a tuple of
        # its fields pickles about twice as fast as the default state dict of a frozen slotted dataclass.
        return (Annotation, (self.label, self.box, self.difficult, self.truncated, self.occluded, self.iscrowd,
                             self.score, self.attributes, self.where, self.extra))


@dataclass(slots=True, unsafe_hash=True)
class ImageRecord:
    """One image and its objects.

    ``image_id`` is a stable key (the annotation file's path relative to the dataset root, without extension); it is
    what output files are named after, never text from inside an annotation. ``file_name`` is the image path as the
    annotation names it, ``image_path`` the file found on disk (absolute) or ``None``.
    Width and height are the image as displayed, i.e. after its EXIF orientation.
    """

    image_id: str
    file_name: str
    width: int | None
    height: int | None
    annotations: tuple[Annotation, ...] = ()
    depth: int | None = None
    image_path: str | None = None
    source: str = ""
    splits: tuple[str, ...] = ()
    # As Annotation.extra: the source format's other image fields (COCO ``license``, ``coco_url``, ...).
    extra: tuple[tuple[str, object], ...] = field(default=(), compare=False, repr=False)

    @property
    def source_key(self) -> tuple[str, str]:
        """``(file, key)`` of a record read from a file of many images, whose ``source`` is ``file#key`` (COCO: the
        image's ``id`` as written there; Label Studio: the task's ``id``); ``("", "")`` for any other record."""
        path, _, key = self.source.rpartition("#")
        return (path, key) if path else ("", "")

    @property
    def has_size(self) -> bool:
        return bool(self.width) and bool(self.height) and self.width > 0 and self.height > 0  # type: ignore[operator]

    def with_annotations(self, annotations: Iterable[Annotation]) -> "ImageRecord":
        return replace(self, annotations=tuple(annotations))

    def __reduce__(self):
        # See Annotation.__reduce__.
        return (ImageRecord, (self.image_id, self.file_name, self.width, self.height, self.annotations, self.depth,
                              self.image_path, self.source, self.splits, self.extra))


@dataclass(frozen=True)
class Dataset:
    """A whole dataset: images in a stable order, the class list (its order defines class ids) and what reading noticed.

    ``objects_read`` counts every object the reader met, including those it had to drop; the books balance as
    ``objects_read == sum(len(im.annotations)) + sum(f.objects for f in findings)``.
    """

    images: tuple[ImageRecord, ...]
    classes: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    objects_read: int = 0
    root: str = ""
    format: str = ""
    meta: Mapping[str, object] = field(default_factory=dict)

    @property
    def num_objects(self) -> int:
        return sum(len(im.annotations) for im in self.images)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for im in self.images for s in im.splits))

    def class_counts(self) -> dict[str, int]:
        c = Counter(a.label for im in self.images for a in im.annotations)
        return {name: c.get(name, 0) for name in self.classes} | {k: v for k, v in sorted(c.items()) if k not in self.classes}

    def evolve(self, **changes) -> "Dataset":
        return replace(self, **changes)


def json_ready(obj):
    """``obj`` (dicts, lists, numbers) with every NaN or infinity as None: JSON has no such number, and
    ``json.dumps`` writes ``NaN`` tokens that strict readers refuse."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def class_list(classes: Iterable[str] | None) -> list[str] | None:
    """A class list a caller gives (``classes=``), as a list; a usage error for a string (its letters would be the
    classes) or a name given twice (two ids for one class: COCO categories and YOLO ids went wrong)."""
    if classes is None:
        return None
    if isinstance(classes, str):
        raise UsageError(f"classes must be a list of names, not the string {classes!r}")
    names = [str(c) for c in classes]
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:
        raise UsageError(f"classes names {', '.join(map(repr, twice))} twice: one id a class")
    return names


def sorted_classes(images: Iterable[ImageRecord]) -> tuple[str, ...]:
    """The default class order: sorted discovered names, so every run numbers classes the same way."""
    return all_classes((), images)


def all_classes(classes: Iterable[str], images: Iterable[ImageRecord]) -> tuple[str, ...]:
    """``classes``, then every other label the records use, sorted: the class ids of a dataset written or counted as
    it is (a conversion has dropped unlisted objects before; a split or the statistics keep them)."""
    classes = tuple(classes)
    return classes + tuple(sorted({a.label for im in images for a in im.annotations} - set(classes)))
