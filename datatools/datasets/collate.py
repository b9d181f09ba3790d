"""Collate functions: turn a list of ``(image, target)`` samples into a batch.

* :func:`detection_collate` for torchvision detection models (Faster R-CNN, RetinaNet, FCOS, SSD), which take a list
  of images of any size and a list of target dicts.
* :func:`padded_collate` for single-stage models that need one dense tensor: images padded to a common size and boxes
  padded to a common count with a validity mask, plus a YOLO-style ``(batch_idx, cls, cx, cy, w, h)`` table.

Both are module-level functions (configure :func:`padded_collate` with ``functools.partial``), so they pickle for
``spawn`` DataLoader workers.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

__all__ = ["detection_collate", "padded_collate"]


def detection_collate(batch: Sequence[tuple[Any, dict]], *, stack: bool | None = None
                      ) -> tuple[torch.Tensor | list[torch.Tensor], list[dict]]:
    """``(images, targets)`` as torchvision detection models expect: ``model(images, targets)``.

    ``images`` is a stacked ``(B, C, H, W)`` tensor when every image has the same shape (``stack=None``, the
    default) and a list of ``(C, H, W)`` tensors otherwise; ``stack=True`` requires the same shape, ``stack=False``
    always gives a list. ``targets`` is the list of target dicts, unchanged.
    """
    if not batch:
        raise ValueError("empty batch")
    images = [b[0] for b in batch]
    targets = [b[1] for b in batch]
    same = all(isinstance(im, torch.Tensor) and im.shape == images[0].shape for im in images)
    if stack is True and not same:
        raise ValueError(f"cannot stack images of different shapes: {sorted({tuple(im.shape) for im in images})}")
    if (stack is None and same) or stack is True:
        return torch.stack([torch.as_tensor(im) for im in images]), targets
    return [torch.as_tensor(im) for im in images], targets


def padded_collate(batch: Sequence[tuple[Any, dict]], *, stride: int = 32, fill: float = 0,
                   label_pad: int = -1) -> dict[str, torch.Tensor]:
    """One dense batch for single-stage detectors.

    Images are placed at the top-left of a canvas ``(B, C, H_pad, W_pad)`` filled with ``fill``, where ``H_pad`` and
    ``W_pad`` are the largest height and width in the batch rounded up to a multiple of ``stride``. Placing at the
    top-left means boxes do not move.

    Returns a dict:

    * ``images``: ``(B, C, H_pad, W_pad)``, the images' dtype;
    * ``image_sizes``: int64 ``(B, 2)``, each image's ``(H, W)`` before padding;
    * ``boxes``: float32 ``(B, N_max, 4)`` XYXY pixels, zeros where padded;
    * ``labels``: int64 ``(B, N_max)``, ``label_pad`` where padded;
    * ``mask``: bool ``(B, N_max)``, True for real boxes;
    * ``targets``: float32 ``(M, 6)`` YOLO-style rows ``(batch_idx, cls, cx, cy, w, h)`` for all M boxes, normalized
      by the padded size ``(W_pad, H_pad)`` (the frame the network sees);
    * ``image_id``: int64 ``(B,)``.
    """
    if not batch:
        raise ValueError("empty batch")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, not {stride}")
    images = [torch.as_tensor(b[0]) for b in batch]
    targets = [b[1] for b in batch]
    channels = {im.shape[0] for im in images}
    if len(channels) != 1:
        raise ValueError(f"images have different channel counts: {sorted(channels)}")
    h_pad = math.ceil(max(im.shape[-2] for im in images) / stride) * stride
    w_pad = math.ceil(max(im.shape[-1] for im in images) / stride) * stride
    out = images[0].new_full((len(images), images[0].shape[0], h_pad, w_pad), fill)
    sizes = torch.zeros(len(images), 2, dtype=torch.int64)
    for i, im in enumerate(images):
        h, w = im.shape[-2:]
        out[i, :, :h, :w] = im
        sizes[i, 0], sizes[i, 1] = h, w
    counts = [int(t["boxes"].shape[0]) for t in targets]
    n_max = max(counts)
    boxes = torch.zeros(len(batch), n_max, 4, dtype=torch.float32)
    labels = torch.full((len(batch), n_max), label_pad, dtype=torch.int64)
    mask = torch.zeros(len(batch), n_max, dtype=torch.bool)
    rows = []
    scale = torch.tensor([w_pad, h_pad, w_pad, h_pad], dtype=torch.float32)
    for i, (t, n) in enumerate(zip(targets, counts)):
        if not n:
            continue
        b = torch.as_tensor(t["boxes"]).to(torch.float32).reshape(-1, 4)
        boxes[i, :n] = b
        labels[i, :n] = torch.as_tensor(t["labels"]).to(torch.int64)
        mask[i, :n] = True
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
        rows.append(torch.cat([torch.full((n, 1), float(i)), labels[i, :n, None].to(torch.float32), cxcywh / scale], 1))
    table = torch.cat(rows) if rows else torch.zeros(0, 6, dtype=torch.float32)
    image_id = torch.tensor([int(t["image_id"]) if "image_id" in t else -1 for t in targets], dtype=torch.int64)
    return {"images": out, "image_sizes": sizes, "boxes": boxes, "labels": labels, "mask": mask, "targets": table,
            "image_id": image_id}
