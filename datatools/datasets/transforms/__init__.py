"""Box-aware transforms for detection, built on torchvision.transforms.v2.

:func:`train_preset` and :func:`eval_preset` (:mod:`.presets`) are made of stock v2 transforms plus what v2 lacks,
written here as transforms that move boxes together with the image: :mod:`.geometry` (``Letterbox``,
``KeepAspectResize``, ``boxes_to_original``), :mod:`.colour`, :mod:`.mosaic` and :mod:`.sanitize`. Each is described
in docs/training.md#transforms-datatoolsdatasetstransforms. Custom transforms use only torchvision's public
transform-authoring API (``make_params`` and ``transform``, torchvision 0.21+).
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
