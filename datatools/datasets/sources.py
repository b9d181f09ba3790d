"""The one way the PyTorch datasets read annotations: :func:`read_source`, used by
:meth:`DetectionDataset.from_path <datatools.datasets.DetectionDataset.from_path>` and by :class:`VOCDetection`,
:class:`YOLODetection` and :class:`COCODetection`, so every way to build a dataset reads the same records as the CLI
does (:func:`datatools.ops.convert.read_source`: the same readers, and nothing found is the same error).

:func:`source_ids` numbers images as a COCO file of them does (``target["image_id"]``), and :func:`voc_year_root`
finds the VOC root of a torchvision download as torchvision's ``VOCDetection(root, year)`` does.
"""
from __future__ import annotations

import os
from typing import Sequence

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.errors import UsageError
from datatools.core.model import Dataset, ImageRecord
from datatools.core.parallel import Mapper


def read_source(path: str | os.PathLike, format: str = "auto", *, images: str | os.PathLike | None = None,
                splits: Sequence[str] | str | None = None, sets: Sequence[str] | str | None = None,
                year: str | None = None, convention: PixelConvention | str = DEFAULT_CONVENTION,
                classes: Sequence[str] | None = None, workers: int | None = None) -> Dataset:
    """Read ``path`` in ``format`` (voc, yolo, coco; ``auto`` detects it as the CLI does) into the annotation model.

    * VOC: ``path`` may be a VOC root, a folder of XML files, a ``VOCdevkit`` folder or a torchvision download root
      (``year`` picks ``VOC<year>``, :func:`voc_year_root`). ``sets`` chooses the ImageSets/Main lists to read
      (default: those of ``splits``, else every train/val/test list present); ``convention`` is the pixel
      convention (default ``as-is``).
    * YOLO: ``classes`` names the ids of a set without names (no ``data.yaml`` names, no ``classes.txt``).
    * ``images``: the image folder when it is not where the format's layout puts it.
    """
    from datatools.core.fs import source_path
    from datatools.ops.convert import read_source as read_any, resolve_source

    path = source_path(path)  # file:// made local, as the CLI's SRC
    if format in ("auto", "voc"):
        path = voc_year_root(path, year)
    elif year is not None:
        raise UsageError("year applies to VOC only")
    fmt = resolve_source(path, format)
    if fmt == "voc" and sets is None and splits is not None:
        sets = as_list(splits)
    elif fmt != "voc" and sets:
        raise UsageError("sets applies to VOC only; use splits= to filter YOLO or COCO splits")
    # A dataset made in a user's script reads on processes only where they fork: a spawned one (macOS, Windows,
    # forkserver) re-runs the script, and a script without a main guard died there building its dataset
    import multiprocessing

    forks = (multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]) == "fork"
    # The CLI's one read rule (ops.convert.read_source): nothing found is an error that says what was looked for.
    return read_any(path, fmt, classes=classes if fmt == "yolo" else None, images=images, sets=sets,
                    convention=convention, mapper=Mapper(workers=workers, threads=not forks))


def source_ids(records: Sequence[ImageRecord], format: str | None) -> dict[str, int]:
    """``{record.image_id: the image's COCO id}`` for ``records`` (one split, or the whole dataset).

    COCO: the image's own ``id`` in its JSON file, numbered as ``evaluate`` numbers it when the ids are not unique
    integers (:func:`datatools.formats.coco_ids.image_numbers`). VOC and YOLO: the 1-based position in ``records``, which
    is the id ``datatools voc2coco`` writes for that split (and that ``evaluate`` and ``predict`` use for the same
    ground truth), so predictions keyed by it go straight into a COCO results file."""
    if format == "coco":
        from datatools.formats.coco_ids import image_numbers

        raw = [rec.source_key[1] for rec in records]
        numbers = image_numbers(raw)[0]
        return {rec.image_id: numbers[r] for rec, r in zip(records, raw)}
    return {rec.image_id: k for k, rec in enumerate(records, 1)}


def as_list(v: Sequence[str] | str) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def voc_year_root(root: str | os.PathLike, year: str | None = None) -> str:
    """The VOC root to read for ``root``, found as torchvision's ``VOCDetection(root, year)`` finds it.

    A root with ``Annotations/`` or XML files of its own is itself. A torchvision download root holds
    ``VOCdevkit/VOC<year>`` (``TrainVal/VOCdevkit/VOC2011`` for 2011) and a VOCdevkit folder holds ``VOC<year>``
    folders: ``year`` picks one, and without it the only one is taken. Several years without ``year``, or a
    ``year`` that is not there, is a :class:`UsageError` that names the year folders found."""
    from datatools.core import fs
    from datatools.formats.voc import year_folders

    root = os.fspath(root)
    files = fs.files_for(root)
    if not files.isdir(root) or files.isdir(files.join(root, "Annotations")):
        return root
    if any(n.lower().endswith(".xml") for n in files.listdir(root)[1]):
        return root
    found = year_folders(root)
    if not found:
        return root  # nothing VOC-shaped: the reader and the empty-dataset check say what was looked for
    if year is not None:
        name = f"VOC{year}" if not str(year).startswith("VOC") else str(year)
        if name in found:
            return found[name]
        raise UsageError(f"{root}: no {name} folder with Annotations/; found {', '.join(found.values())}")
    if len(found) == 1:
        return next(iter(found.values()))
    raise UsageError(f"{root} holds {', '.join(found.values())}: pass year= (e.g. year=\"{sorted(found)[-1][3:]}\") "
                     "or point root at one of them")
