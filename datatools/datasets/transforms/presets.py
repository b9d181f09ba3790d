"""The training and evaluation pipelines: :func:`train_preset` and :func:`eval_preset`.

Stock torchvision.transforms.v2 transforms plus this package's :class:`Letterbox`, :class:`KeepAspectResize`,
:class:`PhotometricDistort` and :class:`SanitizeBoxes`. Cheap work first: the presets resize before the photometric
distortion and the flip, so colour work runs on uint8 pixels at the training size rather than on the full-size image,
and convert to float last (or not at all, ``dtype=None``, to convert on the GPU).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from datatools.datasets.transforms.colour import PhotometricDistort
from datatools.datasets.transforms.geometry import KeepAspectResize, Letterbox, parse_size
from datatools.datasets.transforms.sanitize import SanitizeBoxes

__all__ = ["eval_preset", "train_preset"]

_MODES = ("letterbox", "resize", "keep-aspect")


def _fill_arg(fill: float) -> dict:
    return {tv_tensors.Image: fill, tv_tensors.Video: fill, "others": 0}


def _resize_step(th: int, tw: int, mode: str, fill: float, max_size: int | None, size: Any) -> v2.Transform:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'letterbox', 'resize' or 'keep-aspect', not {mode!r}")
    if mode == "keep-aspect":
        if th != tw:
            raise ValueError(f"mode='keep-aspect' takes one shorter-side size, not {size!r}")
        return KeepAspectResize(th, max_size)
    if mode == "letterbox":
        return Letterbox((th, tw), fill=fill)
    return v2.Resize((th, tw), antialias=True)


def train_preset(size: int | Sequence[int], *, mode: str = "letterbox", flip: float = 0.5, photometric: bool = True,
                 scale_jitter: tuple[float, float] | None = None, iou_crop: bool = False, zoom_out: bool = False,
                 fill: float = 114, min_size: float = 1.0, dtype: torch.dtype | None = torch.float32,
                 max_size: int | None = None) -> v2.Compose:
    """The training pipeline, in the order torchvision's docs require and with cheap work first.

    1. optional ``zoom_out`` (``RandomZoomOut``, side up to 2x) and ``iou_crop`` (``RandomIoUCrop``, SSD-style), at
       full size because they change the geometry the resize sees;
    2. to ``size``: ``mode="letterbox"`` (:class:`Letterbox`, keeps aspect ratio), ``"resize"`` (stretch), or, with
       ``scale_jitter=(lo, hi)``, large-scale jitter (``ScaleJitter`` then ``RandomCrop`` padded to ``size``), or
       ``"keep-aspect"`` (:class:`KeepAspectResize`: shorter side ``size``, longer side at most ``max_size``,
       default :func:`keep_aspect_max_size`; no padding, so batch with aspect-ratio grouping);
    3. horizontal flip with probability ``flip``, and :class:`PhotometricDistort` (torchvision's
       ``RandomPhotometricDistort`` fused into one colour matrix) on uint8 at the training size;
    4. ``ClampBoundingBoxes`` then :class:`SanitizeBoxes` (drops boxes under ``min_size`` px with their labels);
    5. ``ToDtype(dtype, scale=True)`` for the image only (``dtype=None`` keeps uint8, e.g. to convert on the GPU).

    Expects uint8 images (what the datasets return); for speed pass ``dtype=None`` (see
    :func:`datatools.datasets.make_loader`).
    """
    th, tw = parse_size(size)
    resize = _resize_step(th, tw, mode, fill, max_size, size)
    if not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip must be a probability, not {flip}")
    steps: list[Any] = []
    if zoom_out:
        steps.append(v2.RandomZoomOut(fill=_fill_arg(fill), side_range=(1.0, 2.0), p=0.5))
    if iou_crop:
        steps += [v2.RandomIoUCrop(), SanitizeBoxes(min_size=min_size)]
    if scale_jitter is not None:
        steps += [v2.ScaleJitter((th, tw), scale_range=tuple(scale_jitter), antialias=True),
                  v2.RandomCrop((th, tw), pad_if_needed=True, fill=_fill_arg(fill))]
    else:
        steps.append(resize)
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    if photometric:
        steps.append(PhotometricDistort(p=0.5))
    steps += [v2.ClampBoundingBoxes(), SanitizeBoxes(min_size=min_size)]
    if dtype is not None:
        steps.append(v2.ToDtype(dtype, scale=True))
    return v2.Compose(steps)


def eval_preset(size: int | Sequence[int], *, mode: str = "letterbox", fill: float = 114,
                dtype: torch.dtype | None = torch.float32, max_size: int | None = None) -> v2.Compose:
    """The evaluation pipeline: :class:`Letterbox` (or ``Resize`` with ``mode="resize"``, or
    :class:`KeepAspectResize` with ``mode="keep-aspect"`` and ``max_size``, as in :func:`train_preset`) then
    ``ToDtype``.

    Deterministic and box-preserving (no sanitizing: every ground-truth box stays for the metrics). Map predictions
    back to the original image with :func:`boxes_to_original`.
    """
    th, tw = parse_size(size)
    steps: list[Any] = [_resize_step(th, tw, mode, fill, max_size, size)]
    if dtype is not None:
        steps.append(v2.ToDtype(dtype, scale=True))
    return v2.Compose(steps)
