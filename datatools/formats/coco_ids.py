"""What the consumers of a COCO source need besides its records: the file and raw id each record came from
(:func:`coco_source`), the one integer numbering of image ids (:func:`image_numbers`: the torch datasets' ``image_id``
and evaluate's ground truth agree), and the JSON files read again for what records do not keep (:func:`coco_documents`:
raw ids, areas, a split's other fields)."""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from datatools.core.errors import FormatError, UsageError
from datatools.core.fs import read_json
from datatools.core.model import ImageRecord


def coco_source(rec: ImageRecord) -> tuple[str, str]:
    """``(JSON file, image id as written there)`` of a record read from COCO (``ImageRecord.source_key``)."""
    path, raw_id = rec.source_key
    if not path:
        raise UsageError(f"{rec.image_id}: the record does not come from a COCO file")
    return path, raw_id


_INT_TEXT = re.compile(r"-?[0-9]+")


def id_text(v) -> str:
    """The text of a COCO id, by which every consumer keys it: ``str(v)``, except that a whole float is its integer
    (``1.0``, as pandas writes the ids of a column with a gap, is the id ``1``, as pycocotools and the reader take it)."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def image_numbers(raw: Sequence[str]) -> tuple[dict[str, int], bool]:
    """The integer every consumer gives each COCO image id (:func:`id_text` of the id as written): the id itself when
    every id is an integer (``7`` or ``"7"``) and no two are the same number, else 1..N in the sorted order of the
    ids' texts, the order pycocotools walks string ids in (it sorts ``imgIds``; the order decides how detections of
    equal score in different images are ranked). Returns the map and whether ids were renumbered. The torch
    datasets' ``image_id`` and evaluate's ground truth both number images here, so predictions written from one are
    scored against the right images by the other."""
    if all(_INT_TEXT.fullmatch(r) for r in raw) and len({int(r) for r in raw}) == len(raw):
        return {r: int(r) for r in raw}, False
    return {r: k for k, r in enumerate(sorted(set(raw)), 1)}, True


def coco_documents(paths: Iterable[str]) -> dict[str, dict]:
    """Each COCO JSON file of ``paths`` parsed again, once (through :func:`~datatools.core.fs.read_json`): for what
    the records do not keep (raw ids, areas, a split's other fields)."""
    docs: dict[str, dict] = {}
    for path in sorted(set(paths)):
        docs[path] = read_json(path)
        if not isinstance(docs[path], dict):
            raise FormatError(path, "", "expected a COCO object with images, annotations and categories")
    return docs
