"""Format registry: each format module has ``read(src, **options) -> Dataset`` and ``write(ds, out, **options)``."""
from __future__ import annotations

import importlib
from types import ModuleType

from datatools.core.errors import UsageError

FORMATS = ("voc", "yolo", "coco", "cvat", "openimages", "labelme", "labelstudio")


def get(name: str) -> ModuleType:
    """The module for a format name (``voc``, ``yolo``, ``coco``)."""
    key = name.lower().strip()
    aliases = {"pascal": "voc", "pascalvoc": "voc", "pascal_voc": "voc", "ultralytics": "yolo", "yolov5": "yolo",
               "yolov8": "yolo", "cvat_xml": "cvat", "open_images": "openimages", "oid": "openimages",
               "label_studio": "labelstudio", "label-studio": "labelstudio"}
    key = aliases.get(key, key)
    if key not in FORMATS:
        raise UsageError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"datatools.formats.{key}")


class UnknownFormat(UsageError):
    """No format fits a path (:func:`detect`)."""


def detect(path) -> str:
    """Guess the format of a dataset path or fsspec URL: ``coco`` for a .json file or a folder with
    annotations/*.json, ``yolo`` for a data.yaml or a folder with images/ and labels/, ``voc`` for a folder with
    Annotations/, annotations/*.xml or XML files (or a VOCdevkit root, which the VOC reader then refuses by name);
    then the exports' own layouts: LabelImg's, CVAT's and Roboflow's YOLO (:mod:`datatools.formats.yolo_layout`),
    Roboflow's COCO (:func:`datatools.formats.coco_layout.split_folders`) and VOC (XML files in
    :func:`~datatools.formats.common.role_folders`); last, ``labelme`` for LabelMe JSON one or two folders down
    (:func:`nested_labelme`). Loose files of two formats in one folder (LabelImg saved as VOC, then as YOLO) are
    refused, never guessed. Local paths and URLs follow the same rules (:func:`datatools.core.fs.files_for`).

    Raises :class:`UnknownFormat` when nothing fits, so commands can ask for ``--format``, and UsageError when
    more than one does.
    """
    import os

    from datatools.core.fs import files_for

    src = os.fspath(path)
    files = files_for(src)  # the same rules on local paths and on URLs
    low = src.rstrip("/").lower()

    def has_files(folder: str, suffix: str) -> bool:
        return any(n.lower().endswith(suffix) for n in files.listdir(folder)[1])

    if files.isfile(src):
        if low.endswith(".xml"):
            from datatools.formats.cvat import is_cvat_xml

            if is_cvat_xml(src):  # root <annotations>, from the first 4 KiB only
                return "cvat"
        if low.endswith(".csv"):
            from datatools.formats.openimages import is_box_csv

            if is_box_csv(src):
                return "openimages"
        if low.endswith(".json"):
            return sniff_json(src)  # COCO, LabelMe or Label Studio, from the first 64 KiB
        if low.endswith((".yaml", ".yml")):
            return "yolo"
    elif files.isdir(src):
        if files.isdir(files.join(src, "Annotations")):
            return "voc"
        if any(files.isfile(files.join(src, n)) for n in ("data.yaml", "dataset.yaml", "data.yml")) or (
                files.isdir(files.join(src, "images")) and files.isdir(files.join(src, "labels"))):
            return "yolo"
        if files.isfile(files.join(src, "annotations.xml")):
            from datatools.formats.cvat import is_cvat_xml

            if is_cvat_xml(files.join(src, "annotations.xml")):
                return "cvat"
        ann = files.join(src, "annotations")
        if has_files(src, "bbox.csv") or (files.isdir(ann) and has_files(ann, "bbox.csv")):
            return "openimages"
        if files.isdir(ann) and has_files(ann, ".json"):
            return _sniff_folder(files, ann)
        if files.isdir(ann) and has_files(ann, ".xml"):  # annotations/ beside images/: see voc.voc_folders
            return "voc"
        from datatools.formats.common import role_folders
        from datatools.formats.yolo_layout import darknet_splits, labels_beside_images

        loose = {}  # the formats of the files in SRC itself: more than one is refused, never guessed
        if has_files(src, ".json"):  # LabelMe's one .json per image, or Label Studio exports
            loose[_sniff_folder(files, src)] = "*.json"
        if has_files(src, ".xml"):
            loose.setdefault("voc", "*.xml")
        if labels_beside_images(src):  # LabelImg's YOLO save
            loose.setdefault("yolo", "*.txt beside the images, with classes.txt")
        if len(loose) > 1:
            raise UsageError(f"{path} holds annotations in {len(loose)} formats: "
                             f"{', '.join(f'{k} ({v})' for k, v in loose.items())}; pass --format "
                             f"{' or --format '.join(loose)}")
        if loose:
            return next(iter(loose))
        if darknet_splits(src) or role_folders(src, labels_beside_images):  # CVAT's YOLO 1.1; Roboflow's Darknet
            return "yolo"
        from datatools.formats.coco_layout import split_folders

        nested = split_folders(src)  # Roboflow's COCO export: <split>/_annotations.coco.json beside the images
        if nested and '"images"' in (json_head(nested[0][1]) or "") and sniff_json(nested[0][1]) == "coco":
            return "coco"
        from datatools.formats.voc import devkit_years

        # a VOCdevkit root (the reader says which year to pick); Roboflow's VOC export, <split>/*.xml beside images
        if devkit_years(src) or role_folders(src, lambda d: has_files(d, ".xml")):
            return "voc"
        if nested_labelme(src):
            return "labelme"
    if files.isfile(src) and low.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".7z")):
        raise UsageError(f"{path}: an archive; unpack it and pass the folder (datatools reads no archives)")
    raise UnknownFormat(f"{path}: cannot tell its format ({', '.join(FORMATS)}); pass --format")


def nested_labelme(src: str, *, depth: int = 2, folders: int = 8, sniffs: int = 4) -> bool:
    """Whether a folder holds LabelMe JSON one or two levels down (``LMN/batch1/*.json``), which the LabelMe reader
    reads (it recurses). Cheap, for :func:`detect`'s last resort, never a walk of the tree: at most ``folders``
    sub-folders per level (hidden ones skipped, in name order) are listed, and the first ``.json`` of at most
    ``sniffs`` of them is sniffed (64 KiB each); a folder whose first JSON is COCO or Label Studio (Roboflow's
    ``train/_annotations.coco.json``) is no LabelMe."""
    from itertools import islice

    from datatools.core.fs import files_for

    files = files_for(src)
    level, left = [(src, files.listdir(src)[0])], sniffs
    for _ in range(depth):
        below = list(islice((files.join(f, d) for f, subs in level for d in subs if not d.startswith((".", "__"))),
                            folders))
        level = []
        for folder in below:
            subs, names = files.listdir(folder)
            level.append((folder, subs))
            first = next((n for n in names if n.lower().endswith(".json")), None)
            if first is not None and left > 0:
                left -= 1
                if sniff_json(files.join(folder, first)) == "labelme":
                    return True
    return False


def sniff_json(path) -> str:
    """``labelstudio`` for a JSON list (an export of tasks, JSON or JSON-MIN) or one task (``data`` and
    ``annotations``), ``labelme`` for an object with ``shapes`` (and ``imagePath``), else ``coco`` (a COCO results
    list of ``image_id``/``category_id``/``bbox`` too: the COCO reader names it); from the first 64 KiB only (a COCO
    file can be gigabytes)."""
    text = json_head(path)
    if text is None:
        return "coco"  # the COCO reader says what is wrong with it
    if text.startswith("["):
        if '"coordinates"' in text and '"annotations"' in text and '"data"' not in text:  # [{image, annotations}]
            raise UsageError(f"{path}: a CreateML JSON file, which datatools does not read; export the dataset as "
                             "COCO, YOLO or VOC")
        results = '"category_id"' in text and '"bbox"' in text and '"data"' not in text
        return "coco" if results else "labelstudio"
    lm = [k in text for k in ('"shapes"', '"imagePath"', '"imageData"')]  # imageData may fill the 64 KiB first
    if all(lm[:2]) or (any(lm) and '"images"' not in text):
        return "labelme"
    if '"data"' in text and '"annotations"' in text and '"images"' not in text:
        return "labelstudio"
    return "coco"


def _sniff_folder(files, folder: str) -> str:
    """:func:`sniff_json` of the first of a folder's JSON files (by name) that holds JSON: an empty or broken first
    file (one bad LabelMe file of hundreds) decides nothing, and the reader reports it as a finding."""
    import json

    names = sorted(n for n in files.listdir(folder)[1] if n.lower().endswith(".json"))

    def first(order: list[str]) -> str | None:
        for name in order[:32]:
            head = json_head(files.join(folder, name))
            if not head:
                continue
            if whole_head(head):  # the whole file: it must parse
                try:
                    json.loads(head)
                except ValueError:
                    continue
            return name
        return None

    # The first and the last file by name: a COCO file beside LabelMe files is told from them, whichever sorts first
    ends = [n for n in dict.fromkeys([first(names), first(names[::-1])]) if n]
    kinds = {n: sniff_json(files.join(folder, n)) for n in ends}
    if len(set(kinds.values())) > 1 and any(k == "coco" and '"images"' in (json_head(files.join(folder, n)) or "")
                                            for n, k in kinds.items()):  # a COCO dataset, not a package.json
        raise UsageError(f"{folder} holds JSON of two formats: {', '.join(f'{n} ({k})' for n, k in kinds.items())}; "
                         "pass the COCO file itself, or --format")
    return kinds[ends[0]] if ends else sniff_json(files.join(folder, names[0]))


def whole_head(text: str) -> bool:
    """Whether a :func:`json_head` holds the whole file (one of 64 KiB or more may hold any key later)."""
    return len(text.encode()) < (1 << 16) - 16


def json_head(path) -> str | None:
    """The first 64 KiB of a JSON file as text, or None when it cannot be read."""
    from datatools.core.fs import read_head

    head = read_head(path, 1 << 16)
    return None if head is None else head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")


def resolve(name: str | None, path) -> str:
    """``name`` unless it is None or ``auto``, else :func:`detect`."""
    return detect(path) if name in (None, "", "auto") else get(name).NAME
