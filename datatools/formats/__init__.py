"""Format registry: each format module has ``read(src, **options) -> Dataset`` and ``write(ds, out, **options)``."""
from __future__ import annotations

import importlib
from types import ModuleType

FORMATS = ("voc", "yolo", "coco")


def get(name: str) -> ModuleType:
    """The module for a format name (``voc``, ``yolo``, ``coco``)."""
    key = name.lower().strip()
    aliases = {"pascal": "voc", "pascalvoc": "voc", "pascal_voc": "voc", "ultralytics": "yolo", "yolov5": "yolo",
               "yolov8": "yolo"}
    key = aliases.get(key, key)
    if key not in FORMATS:
        from datatools.core.errors import UsageError

        raise UsageError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"datatools.formats.{key}")
