"""Box-aware transforms for detection, built on torchvision.transforms.v2.

Use :func:`train_preset` and :func:`eval_preset` as the ``transforms=`` of a
:class:`~datatools.datasets.DetectionDataset`. They take and return ``(image, target)`` with ``target["boxes"]`` a
``tv_tensors.BoundingBoxes``; every v2 transform composes with them, and the presets are made of stock v2 transforms
plus what v2 lacks, written here as transforms that move boxes together with the image:

* :mod:`.geometry`: :class:`Letterbox` and :class:`KeepAspectResize` (aspect-keeping resizes that record
  ``target["letterbox"]``) and :func:`boxes_to_original`, which maps predictions back with it;
* :mod:`.colour`: :class:`PhotometricDistort` (``RandomPhotometricDistort`` as one colour matrix);
* :mod:`.mosaic`: :class:`Mosaic` (4 images into one, boxes clipped to their visible part) and
  :class:`MosaicDataset`, which feeds it, with a probability and a switch to turn it off for the last epochs;
* :mod:`.sanitize`: :class:`SanitizeBoxes` (``SanitizeBoundingBoxes`` that also filters ``area``, ``iscrowd`` and
  ``difficult``, which the stock one would leave misaligned with the boxes);
* :mod:`.presets`: :func:`train_preset` and :func:`eval_preset`.

Custom transforms use only torchvision's public transform-authoring API (``make_params`` and ``transform``,
torchvision 0.21+).
"""
from __future__ import annotations

from datatools.datasets.transforms.colour import PhotometricDistort
from datatools.datasets.transforms.geometry import (KEEP_ASPECT_MAX_RATIO, KeepAspectResize, Letterbox,
                                                    boxes_to_original, keep_aspect_max_size, keep_aspect_params,
                                                    letterbox_params)
from datatools.datasets.transforms.mosaic import Mosaic, MosaicDataset
from datatools.datasets.transforms.presets import eval_preset, train_preset
from datatools.datasets.transforms.sanitize import PER_BOX_KEYS, SanitizeBoxes, per_box_fields

__all__ = ["KEEP_ASPECT_MAX_RATIO", "PER_BOX_KEYS", "KeepAspectResize", "Letterbox", "Mosaic", "MosaicDataset",
           "PhotometricDistort", "SanitizeBoxes", "boxes_to_original", "eval_preset", "keep_aspect_max_size",
           "keep_aspect_params", "letterbox_params", "per_box_fields", "train_preset"]
