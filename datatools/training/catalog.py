"""The detectors ``train`` builds, by name: torchvision's builder, what each is, and where its parts sit in its state
dict. Nothing here imports torch, so ``datatools train --help`` lists the models from this table."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A detector builder and where its parts sit in its state dict."""

    builder: str
    description: str
    backbone: str  # the torchvision classifier whose layers are the trunk (for --weights-backbone)
    trunk: str  # state-dict prefix of those layers inside the detector (what --freeze-backbone freezes)
    head: str  # state-dict prefix of the tensors that depend on the classes (rebuilt for the dataset's classes)
    fixed_size: bool = False  # SSDlite resizes every input to 320x320 itself
    batch_norm: bool = False  # trains BatchNorm layers (SSDlite), which cannot train on a batch of one image


MODELS: dict[str, ModelSpec] = {
    "fasterrcnn_mobilenet_v3_large_fpn": ModelSpec("fasterrcnn_mobilenet_v3_large_fpn",
                                                   "Faster R-CNN, MobileNetV3-Large FPN (default: fast, accurate)",
                                                   "mobilenet_v3_large", "backbone.body.", "roi_heads.box_predictor."),
    "fcos_resnet50_fpn": ModelSpec("fcos_resnet50_fpn", "FCOS, ResNet-50 FPN (anchor-free)", "resnet50",
                                   "backbone.body.", "head.classification_head.cls_logits."),
    "retinanet_resnet50_fpn_v2": ModelSpec("retinanet_resnet50_fpn_v2", "RetinaNet v2, ResNet-50 FPN", "resnet50",
                                           "backbone.body.", "head.classification_head.cls_logits."),
    # SSDlite's whole classification head: each level's depthwise block and the class convolution after it
    "ssdlite320_mobilenet_v3_large": ModelSpec("ssdlite320_mobilenet_v3_large", "SSDlite 320, MobileNetV3-Large",
                                               "mobilenet_v3_large", "backbone.features.",
                                               "head.classification_head.", fixed_size=True, batch_norm=True),
}
DEFAULT_MODEL = "fasterrcnn_mobilenet_v3_large_fpn"
RESIZE_MODES = ("letterbox", "keep-aspect")
