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
    """Guess the format of a dataset path or fsspec URL: ``coco`` for a .json file or a folder with
    annotations/*.json, ``yolo`` for a data.yaml or a folder with images/ and labels/, ``voc`` for a folder with
    Annotations/ or XML files (or a VOCdevkit root, which the VOC reader then refuses by name). Local paths and URLs
    follow the same rules (:func:`datatools.core.fs.files_for`).

    Raises UsageError when nothing fits, so commands can ask for ``--format``.
    """
    import os

    from datatools.core.errors import UsageError
    from datatools.core.fs import files_for

    src = os.fspath(path)
    files = files_for(src)  # the same rules on local paths and on URLs
    low = src.rstrip("/").lower()

    def has_files(folder: str, suffix: str) -> bool:
        return any(n.lower().endswith(suffix) for n in files.listdir(folder)[1])

    if files.isfile(src):
        if low.endswith(".json"):
            return "coco"
        if low.endswith((".yaml", ".yml")):
            return "yolo"
    elif files.isdir(src):
        if files.isdir(files.join(src, "Annotations")):
            return "voc"
        if any(files.isfile(files.join(src, n)) for n in ("data.yaml", "dataset.yaml", "data.yml")) or (
                files.isdir(files.join(src, "images")) and files.isdir(files.join(src, "labels"))):
            return "yolo"
        ann = files.join(src, "annotations")
        if files.isdir(ann) and has_files(ann, ".json"):
            return "coco"
        if has_files(src, ".xml"):
            return "voc"
        from datatools.formats.voc import devkit_years

        if devkit_years(src):  # a VOCdevkit root: the VOC reader says which year to pick
            return "voc"
    raise UsageError(f"{path}: cannot tell its format (VOC, YOLO or COCO); pass --format")


def resolve(name: str | None, path) -> str:
    """``name`` unless it is None or ``auto``, else :func:`detect`."""
    return detect(path) if name in (None, "", "auto") else get(name).NAME
