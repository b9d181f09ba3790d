"""Model factory: torchvision's detection builders, with no download ever.

Use :func:`build_model` to get a detector for ``num_classes`` object classes (the background class is added here:
torchvision's detectors take labels 1..K, so the datasets are built with ``label_offset=1``). Weights: ``weights=None``
and ``weights_backbone=None`` always, so torchvision builds plain ``BatchNorm2d`` (not the frozen BN it uses with
pretrained weights) and trains every backbone layer; :func:`load_weights` loads a local state dict with
``torch.load(weights_only=True)`` (no pickled code runs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from datatools.core.errors import UsageError


@dataclass(frozen=True)
class ModelSpec:
    builder: str
    description: str
    fixed_size: bool = False  # SSDlite resizes every input to 320x320 itself


MODELS: dict[str, ModelSpec] = {
    "fasterrcnn_mobilenet_v3_large_fpn": ModelSpec("fasterrcnn_mobilenet_v3_large_fpn",
                                                   "Faster R-CNN, MobileNetV3-Large FPN (default: fast, accurate)"),
    "fcos_resnet50_fpn": ModelSpec("fcos_resnet50_fpn", "FCOS, ResNet-50 FPN (anchor-free)"),
    "retinanet_resnet50_fpn_v2": ModelSpec("retinanet_resnet50_fpn_v2", "RetinaNet v2, ResNet-50 FPN"),
    "ssdlite320_mobilenet_v3_large": ModelSpec("ssdlite320_mobilenet_v3_large", "SSDlite 320, MobileNetV3-Large",
                                               fixed_size=True),
}
DEFAULT_MODEL = "fasterrcnn_mobilenet_v3_large_fpn"


RESIZE_MODES = ("letterbox", "keep-aspect")


def build_model(name: str, num_classes: int, *, image_size: int = 512, resize_mode: str = "letterbox",
                **overrides: Any) -> nn.Module:
    """A torchvision detector for ``num_classes`` object classes (+1 background), randomly initialized.

    ``image_size`` sets torchvision's internal resize (``min_size``/``max_size``) to what the data pipeline already
    did, so images are not resized again (torchvision's default would upscale to 800 px): for
    ``resize_mode="letterbox"`` ``min_size = max_size = image_size`` (square letterboxed inputs); for
    ``"keep-aspect"`` ``min_size = image_size`` and ``max_size = keep_aspect_max_size(image_size)``, the same rule
    as :class:`~datatools.datasets.transforms.KeepAspectResize`, so its scale is 1 and its own batching pads each
    batch only to its largest image. Predictions come back in the input image's pixels either way.
    ``overrides`` go to the builder (e.g. ``box_detections_per_img``).
    """
    from torchvision.models import detection

    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if num_classes < 1:
        raise UsageError("the dataset has no classes")
    if resize_mode not in RESIZE_MODES:
        raise UsageError(f"unknown resize mode {resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    spec = MODELS[name]
    if spec.fixed_size and resize_mode == "keep-aspect":
        raise UsageError(f"{name} resizes every image to a fixed square itself: use --resize-mode letterbox")
    builder: Callable[..., nn.Module] = getattr(detection, spec.builder)
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes + 1}
    if not spec.fixed_size:
        if resize_mode == "keep-aspect":
            from datatools.datasets.transforms import keep_aspect_max_size

            kwargs.update(min_size=image_size, max_size=keep_aspect_max_size(image_size))
        else:
            kwargs.update(min_size=image_size, max_size=image_size)
    if name == "fasterrcnn_mobilenet_v3_large_fpn":
        kwargs["rpn_score_thresh"] = 0.0  # the builder's 0.05 drops most proposals of an untrained RPN
    kwargs.update(overrides)
    return builder(**kwargs)


def inference_overrides(name: str, *, conf: float, max_det: int) -> dict[str, Any]:
    """Builder options for the score threshold and detections per image (their names differ by model)."""
    if name.startswith("fasterrcnn"):
        return {"box_score_thresh": conf, "box_detections_per_img": max_det}
    return {"score_thresh": conf, "detections_per_img": max_det}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or torch.compile wrappers (what checkpoints store)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = False) -> dict[str, int]:
    """Load a local state dict (a plain ``state_dict`` or a datatools checkpoint with a ``model`` key) safely.

    ``torch.load(weights_only=True)`` never runs pickled code. Tensors whose shape does not fit (e.g. a head trained
    for another number of classes) are skipped and counted, unless ``strict``. Returns counts: loaded, skipped
    (shape), missing (in the model, not in the file), unexpected (in the file, not in the model).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error is a bad file for the user
        raise UsageError(f"{path}: cannot load the weights with torch.load(weights_only=True): {e}") from e
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: expected a state dict of tensors (or a checkpoint with a 'model' state dict)")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = [k for k in state if k in own and own[k].shape != state[k].shape]
    if strict and (skipped or len(fit) != len(own)):
        raise UsageError(f"{path}: {len(skipped)} tensor(s) do not fit and {len(own) - len(fit)} are missing")
    model.load_state_dict(fit, strict=False)
    return {"loaded": len(fit), "skipped": len(skipped), "missing": len(own) - len(fit),
            "unexpected": len([k for k in state if k not in own])}


def freeze_batchnorm(model: nn.Module) -> int:
    """Put every BatchNorm layer in eval mode (it normalizes with its stored statistics and stops updating them) and
    stop training its affine parameters, as torchvision's ``FrozenBatchNorm2d`` does for fine-tuning. Call it after
    every ``model.train()``. Use it with ``--weights`` from a pretrained backbone or with small per-GPU batches,
    where batch statistics are noisy; it also makes every image's gradient independent of the rest of its batch, so
    N processes x batch b equal 1 process x batch N*b. Returns the number of layers frozen."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
            n += 1
    return n
