"""PyTorch datasets, box-aware transforms, collate functions and samplers for object detection.

This package imports torch; the rest of datatools never does. Quick use::

    from datatools.datasets import VOCDetection, make_loader
    from datatools.datasets.transforms import train_preset

    ds = VOCDetection("VOC2012", splits="train", label_offset=1, transforms=train_preset(512))
    loader = make_loader(ds, batch_size=8)
    for images, targets in loader:      # images: (B, 3, 512, 512) float; targets: list of dicts
        loss = model(images, targets)

Faster: keep images uint8 through the workers and convert on the GPU::

    ds = VOCDetection("VOC2012", label_offset=1, transforms=train_preset(512, dtype=None))
    for images, targets in make_loader(ds, batch_size=8):
        images, targets = to_device(images, targets, "cuda")   # float 0-1 on the GPU

See :mod:`datatools.datasets.detection` for the target layout.
"""
from __future__ import annotations

from datatools.datasets.collate import detection_collate, padded_collate
from datatools.datasets.detection import (COCODetection, DetectionDataset, VOCDetection, YOLODetection, box_masks,
                                          decode, make_target)
from datatools.datasets.loader import default_num_workers, make_loader, set_epoch, to_device
from datatools.datasets.samplers import DistributedGroupedBatchSampler, GroupedBatchSampler, aspect_ratio_groups

__all__ = ["COCODetection", "DetectionDataset", "DistributedGroupedBatchSampler", "GroupedBatchSampler",
           "VOCDetection", "YOLODetection", "aspect_ratio_groups", "box_masks", "decode", "default_num_workers",
           "detection_collate", "make_loader", "make_target", "padded_collate", "set_epoch", "to_device"]
