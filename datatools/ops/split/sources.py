"""The COCO documents a split reads again after the reader is done, to filter them by image id or to look up an
image-level field. Like every read of the input, through :func:`datatools.core.fs.read_small_file`, so a source behind
a URL (fsspec's memory or S3 file systems, for example) is read the same way as a local one.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from datatools.core.errors import FormatError, UsageError
from datatools.core.fs import read_small_file
from datatools.core.model import ImageRecord


def coco_source(rec: ImageRecord) -> tuple[str, str]:
    """``(JSON file, image id as written there)`` of a record read from COCO (``ImageRecord.source_key``)."""
    path, raw_id = rec.source_key
    if not path:
        raise UsageError(f"{rec.image_id}: the record does not come from a COCO file")
    return path, raw_id


def coco_documents(paths: Iterable[str], *, why: str) -> dict[str, dict]:
    """Each COCO JSON file of ``paths`` parsed, read once; an unreadable file is a :class:`FormatError` that says
    ``why`` it was read again."""
    docs: dict[str, dict] = {}
    for path in sorted(set(paths)):
        try:
            doc = json.loads(read_small_file(path).decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(path, "", f"cannot read it again {why}: {e}") from e
        if not isinstance(doc, dict):
            raise FormatError(path, "", f"expected a JSON object, found {type(doc).__name__}")
        docs[path] = doc
    return docs
