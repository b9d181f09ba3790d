"""The one annotation model every format reads into and writes from.

Boxes are absolute continuous pixel XYXY floats (see :mod:`datatools.core.boxes`). Records are frozen dataclasses;
operations return new datasets instead of editing the ones they are given.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Iterable, Mapping, NamedTuple

from datatools.core.boxes import Box


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


@dataclass(frozen=True, slots=True)
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

    @property
    def attrs(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True, slots=True)
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

    @property
    def has_size(self) -> bool:
        return bool(self.width) and bool(self.height) and self.width > 0 and self.height > 0  # type: ignore[operator]

    def with_annotations(self, annotations: Iterable[Annotation]) -> "ImageRecord":
        return replace(self, annotations=tuple(annotations))


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
        seen: dict[str, None] = {}
        for im in self.images:
            for s in im.splits:
                seen.setdefault(s, None)
        return tuple(seen)

    def class_counts(self) -> dict[str, int]:
        c = Counter(a.label for im in self.images for a in im.annotations)
        return {name: c.get(name, 0) for name in self.classes} | {k: v for k, v in sorted(c.items()) if k not in self.classes}

    def evolve(self, **changes) -> "Dataset":
        return replace(self, **changes)

    def add_findings(self, extra: Iterable[Finding]) -> "Dataset":
        return replace(self, findings=self.findings + tuple(extra))


# Compact, fast-to-pickle forms for shipping results between worker processes: plain tuples pickle several times
# faster than frozen slotted dataclasses, which matters when a worker returns tens of thousands of records.

def pack_record(rec: ImageRecord) -> tuple:
    return (rec.image_id, rec.file_name, rec.width, rec.height, rec.depth, rec.image_path, rec.source, rec.splits,
            tuple((a.label, a.box, a.difficult, a.truncated, a.occluded, a.iscrowd, a.score, a.attributes)
                  for a in rec.annotations))


def unpack_record(t: tuple) -> ImageRecord:
    return ImageRecord(t[0], t[1], t[2], t[3], tuple([Annotation(*a) for a in t[8]]), t[4], t[5], t[6], t[7])


def pack_finding(f: Finding) -> tuple:
    return (f.code, f.severity.value, f.path, f.field, f.message, f.image_id, f.objects, f.image_dropped, f.box)


def unpack_finding(t: tuple) -> Finding:
    return Finding(t[0], Severity(t[1]), *t[2:])


class ObjectColumns(NamedTuple):
    """A dataset's objects as columns, for readers that skip building an Annotation per box (label statistics over
    hundreds of thousands of files). Objects are in record order: the first ``counts[0]`` belong to the dataset's
    first image, and so on. ``cls`` indexes ``names`` (first-seen order, not the dataset's class order); ``boxes``
    is (N, 4) XYXY in pixels; ``flags`` has bit 0 difficult, 1 truncated, 2 occluded. All are numpy arrays."""

    names: tuple[str, ...]
    counts: Any
    cls: Any
    boxes: Any
    flags: Any


def sorted_classes(images: Iterable[ImageRecord]) -> tuple[str, ...]:
    """The default class order: sorted discovered names, so every run numbers classes the same way."""
    return tuple(sorted({a.label for im in images for a in im.annotations}))
