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


def detect(path) -> str:
    """Guess the format of a dataset path: ``coco`` for a .json file or a folder with annotations/*.json, ``yolo``
    for a data.yaml or a folder with images/ and labels/, ``voc`` for a folder with Annotations/ or XML files.

    Raises UsageError when nothing fits, so commands can ask for ``--format``.
    """
    from pathlib import Path

    from datatools.core.errors import UsageError

    if isinstance(path, str) and "://" in path:  # an fsspec URL: the same rules through fsspec (datatools.core.fs)
        from datatools.core.fs import detect_format

        return detect_format(path)
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".json":
            return "coco"
        if p.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
    elif p.is_dir():
        if (p / "Annotations").is_dir():
            return "voc"
        if any((p / n).is_file() for n in ("data.yaml", "dataset.yaml", "data.yml")) or (
                (p / "images").is_dir() and (p / "labels").is_dir()):
            return "yolo"
        if (p / "annotations").is_dir() and any((p / "annotations").glob("*.json")):
            return "coco"
        if next(p.glob("*.xml"), None) is not None:
            return "voc"
    raise UsageError(f"{path}: cannot tell its format (VOC, YOLO or COCO); pass --format")


def resolve(name: str | None, path) -> str:
    """``name`` unless it is None or ``auto``, else :func:`detect`."""
    return detect(path) if name in (None, "", "auto") else get(name).NAME
