"""datatools: an object-detection dataset toolkit.

Quick use::

    import datatools
    ds = datatools.load("voc", "VOCdevkit/VOC2012")         # -> datatools.Dataset
    datatools.save(ds, "yolo", "out/yolo")                   # ultralytics layout
    summary = datatools.convert("voc", "VOC2012", "coco", "out/coco.json")

Importing datatools never imports torch; ``datatools.datasets``, ``datatools.training`` and ``datatools.metrics`` do.
"""
from __future__ import annotations

from datatools.core.boxes import BoxFormat, PixelConvention
from datatools.core.errors import DatatoolsError, FormatError, StrictModeError, UsageError
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, Severity

__version__ = "0.1.0"

__all__ = ["Annotation", "BoxFormat", "Dataset", "DatatoolsError", "Finding", "FormatError", "ImageRecord",
           "PixelConvention", "Severity", "StrictModeError", "UsageError", "convert", "load", "save"]


def load(format: str, path, **options) -> Dataset:
    """Read a dataset in ``format`` (voc, yolo, coco, cvat, labelme, labelstudio, openimages; ``auto`` or None:
    detected as every command detects it) into the annotation model. Bad data becomes findings, not errors; a source
    with nothing in it is an error (NoInputError), as in every command."""
    from datatools import formats
    from datatools.core.errors import NoInputError
    from datatools.core.model import class_list
    from datatools.ops.convert import no_images_message, resolve_source

    if options.get("classes") is not None:
        options["classes"] = class_list(options["classes"])
    ds = formats.get(resolve_source(path, format)).read(path, **options)
    if not ds.images and not any(f.image_dropped for f in ds.findings):
        raise NoInputError(no_images_message(ds, path))
    return ds


def save(ds: Dataset, format: str, out, **options):
    """Write ``ds`` as ``format`` under ``out`` as it is (all or nothing; never inside or over the dataset's own
    folders). Use :func:`convert` for the full pipeline with policies."""
    from datatools.ops.convert import write_dataset

    return write_dataset(ds, format, out, **options)


def convert(src_format: str, src, dst_format: str, out, **options):
    """Read, apply policies (classes, difficult, clipping), write, and return a balanced summary.

    See :func:`datatools.ops.convert.convert` for the options.
    """
    from datatools.ops.convert import convert as _convert

    return _convert(src_format, src, dst_format, out, **options)
