"""PyTorch datasets, box-aware transforms, collate functions and samplers for object detection.

This package imports torch; the rest of datatools never does. Importing it changes no process-wide state (no warning
filters, no seeds, no torch settings). Quick use::

    from datatools.datasets import VOCDetection, make_loader, train_preset

    ds = VOCDetection("VOCdevkit/VOC2012", image_set="train", transforms=train_preset(512))
    loader = make_loader(ds, batch_size=8)
    for images, targets in loader:      # images: (B, 3, 512, 512) float; targets: list of dicts
        loss = model(images, targets)   # labels 1..K (0 is the background), as torchvision's detectors take them

``target["image_id"]`` is the image's COCO id (the file's own for COCO, the one ``voc2coco`` writes for VOC and
YOLO), so predictions go straight into a COCO results file; ``ds.index_of(image_id)`` gives the index back.
:class:`VOCDetection`, :class:`YOLODetection`, :class:`COCODetection` and :meth:`DetectionDataset.from_path` read
through the one builder of :mod:`datatools.datasets.sources`.

Faster: keep images uint8 through the workers and convert on the GPU::

    ds = VOCDetection("VOCdevkit/VOC2012", image_set="train", transforms=train_preset(512, dtype=None))
    for images, targets in make_loader(ds, batch_size=8):
        images, targets = to_device(images, targets, "cuda")   # float 0-1 on the GPU

See :mod:`datatools.datasets.detection` for the target layout and :mod:`datatools.datasets.transforms` for the
presets and transforms.
"""
from __future__ import annotations

from datatools.datasets.collate import detection_collate, padded_collate
from datatools.datasets.detection import (COCODetection, DetectionDataset, VOCDetection, YOLODetection, box_masks,
                                          decode, make_target)
from datatools.datasets.loader import default_num_workers, make_loader, set_epoch, to_device
from datatools.datasets.samplers import DistributedGroupedBatchSampler, GroupedBatchSampler, aspect_ratio_groups
from datatools.datasets.sources import read_source
from datatools.datasets.transforms import (KeepAspectResize, Letterbox, Mosaic, MosaicDataset, SanitizeBoxes,
                                           boxes_to_original, eval_preset, train_preset)

__all__ = ["COCODetection", "DetectionDataset", "DistributedGroupedBatchSampler", "GroupedBatchSampler",
           "KeepAspectResize", "Letterbox", "Mosaic", "MosaicDataset", "SanitizeBoxes", "VOCDetection",
           "YOLODetection", "aspect_ratio_groups", "box_masks", "boxes_to_original", "decode", "default_num_workers",
           "detection_collate", "eval_preset", "make_loader", "make_target", "padded_collate", "read_source",
           "set_epoch", "to_device", "train_preset"]
