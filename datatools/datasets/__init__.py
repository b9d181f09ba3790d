"""PyTorch datasets, box-aware transforms, collate functions and samplers for object detection.

This package imports torch; the rest of datatools never does. Importing it changes no process-wide state (no warning
filters, no seeds, no torch settings). Use and options: docs/training.md#pytorch-datasets-datatoolsdatasets; the
target layout: :mod:`datatools.datasets.detection`.
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
