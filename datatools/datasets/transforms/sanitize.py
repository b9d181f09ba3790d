"""Dropping boxes: :class:`SanitizeBoxes`, torchvision's ``SanitizeBoundingBoxes`` told about every per-box field."""
from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2

__all__ = ["PER_BOX_KEYS", "SanitizeBoxes", "per_box_fields", "target_of"]

#: Target keys holding one value per box; they are filtered together with the boxes.
PER_BOX_KEYS = ("labels", "area", "iscrowd", "difficult")


def target_of(sample: Any) -> dict | None:
    """The target dict of a sample: the sample itself when it is a dict, its second item when it is
    ``(image, target)``, else ``None``."""
    if isinstance(sample, dict):
        return sample
    if isinstance(sample, (tuple, list)) and len(sample) >= 2 and isinstance(sample[1], dict):
        return sample[1]
    return None


def per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...] | None:
    """``labels_getter`` for ``SanitizeBoundingBoxes``: every per-box tensor of the target (see :data:`PER_BOX_KEYS`).

    A module-level function (not a lambda) so that transforms using it pickle for ``spawn`` workers.
    """
    target = target_of(inputs)
    if target is None:
        return None
    return tuple(target[k] for k in PER_BOX_KEYS if isinstance(target.get(k), torch.Tensor)) or None


class SanitizeBoxes(v2.SanitizeBoundingBoxes):
    """Remove boxes smaller than ``min_size`` (or with less area than ``min_area``) together with their labels,
    areas, crowd and difficult flags and masks.

    The stock ``SanitizeBoundingBoxes`` filters only ``labels`` by default, which would leave ``area``, ``iscrowd``
    and ``difficult`` misaligned with the boxes; this one passes :func:`per_box_fields` as its ``labels_getter``.
    Put it last among the geometric transforms (after ``ClampBoundingBoxes``), and always after ``RandomIoUCrop``,
    as torchvision's docs require. Pass ``labels_getter`` to override which target entries are filtered.
    """

    def __init__(self, min_size: float = 1.0, min_area: float = 1.0, labels_getter=per_box_fields) -> None:
        super().__init__(min_size=min_size, min_area=min_area, labels_getter=labels_getter)
