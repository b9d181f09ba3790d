"""Model factory: torchvision's detection builders, and the weights a run starts from.

Use :func:`build_model` to get a detector for ``num_classes`` object classes (the background class is added here:
torchvision's detectors take labels 1..K, which is what :mod:`datatools.datasets` gives by default). The builders are
always called with ``weights=None`` and ``weights_backbone=None``, so torchvision builds plain ``BatchNorm2d`` (not the
frozen BN it uses with pretrained weights) and every layer is trainable; a run from scratch and a fine-tuned run have
the same layout, so every checkpoint loads into :func:`build_model`'s model.

Fine-tuning loads a state dict into that model (:func:`init_weights`, the ``--weights`` options of ``train``):
:func:`load_weights` (a whole detector, its class-specific ``ModelSpec.head`` only when it fits),
:func:`load_backbone_weights` (an ImageNet classifier into ``ModelSpec.trunk``) and :func:`freeze_backbone`; what each
option reads and refuses: docs/training.md#fine-tuning. Files are read with ``torch.load(weights_only=True)`` (no
pickled code runs).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

from datatools.core.errors import FormatError, InputError, UsageError
# The table of models lives in catalog (no torch import: the CLI lists it); re-exported here for callers.
from datatools.training.catalog import DEFAULT_MODEL, MODELS, RESIZE_MODES, ModelSpec  # noqa: F401

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


# The classifier's own head in an ImageNet state dict (not part of a detector's trunk)
_CLASSIFIER_HEADS = ("fc.", "classifier.")


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

    spec = _spec(name)
    if num_classes < 1:
        raise UsageError("the dataset has no classes")
    if resize_mode not in RESIZE_MODES:
        raise UsageError(f"unknown resize mode {resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
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


WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def resolve_weights(value: str | os.PathLike, model_name: str | None, *,
                    backbone: bool = False) -> "str | WeightsEnum":
    """What ``--weights`` (``backbone=True``: ``--weights-backbone``) names: a local file that exists, else a member of
    the model's torchvision weights enum (of its classifier's with ``backbone``), by its own name (``COCO_V1``,
    ``DEFAULT``) or in full (``FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1``). Nothing is fetched here.
    Anything else is a one-line :class:`UsageError` naming the choices."""
    value = os.fspath(value)
    if os.path.isfile(value):
        return value
    if os.path.exists(value):
        raise UsageError(f"{value}: a folder, not a weights file")
    looks_like_path = "/" in value or os.sep in value or value.lower().endswith(WEIGHT_SUFFIXES)
    if looks_like_path or model_name is None:
        raise UsageError(f"{value}: no such weights file")
    from torchvision.models import get_model_weights

    spec = _spec(model_name)
    enum_cls = get_model_weights(spec.backbone if backbone else spec.builder)
    try:
        member = enum_cls.verify(value)
    except (KeyError, ValueError, TypeError):
        of = f"{spec.backbone} (the backbone of {model_name})" if backbone else model_name
        raise UsageError(f"{value!r}: no such file, and not a torchvision weights name of {of}: use one of "
                         f"{', '.join(enum_cls.__members__)} (or {enum_cls.__name__}.<name>), or a local .pth"
                         ) from None
    if spec.builder == "ssdlite320_mobilenet_v3_large":
        # torchvision builds SSDlite with MobileNetV3's full tail only when it loads pretrained weights; a run from
        # scratch (what build_model always builds, so that every checkpoint loads into it) has the reduced tail.
        raise UsageError(f"{value}: torchvision's pretrained SSDlite and MobileNetV3 weights have the full MobileNetV3 "
                         "tail, and datatools' SSDlite has the reduced tail of a run from scratch: fine-tune SSDlite "
                         "from a datatools checkpoint, or use fasterrcnn_mobilenet_v3_large_fpn")
    return member


def load_file(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` of a file onto the CPU (plain containers, tensors and numbers: loading never
    runs pickled code); a file that cannot be read is an :class:`InputError`, one torch cannot load a
    :class:`FormatError`, each one line naming the file (exit 1: bad data)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise InputError(os.fspath(path), e) from e
    except Exception as e:  # noqa: BLE001 - any unpickling error is a bad file for the user
        why = _one_line(e)
        if "WeightsUnpickler error:" in why:  # its reason, without torch's advice to load the file unsafely
            detail = why.split("WeightsUnpickler error:", 1)[1]
            for stop in (" was not an allowed", " Check the documentation", ". "):
                detail = detail.split(stop, 1)[0]
            why = f"not a file of tensors, numbers and containers only ({detail.strip().rstrip('.')})"
        else:
            why = f"not a file torch.save wrote ({type(e).__name__}: {why})"
        raise FormatError(os.fspath(path), "", f"cannot load with torch.load(weights_only=True): {why}") from e


def scored_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The weights of a datatools checkpoint that its validation scored, for inference and fine-tuning: the EMA's
    when the run kept one (``--ema``), else the model's. (``last.pt``'s ``model`` holds the trained weights, which
    ``--resume`` continues from; ``best.pt``'s is the EMA's already, for tools that read ``model`` alone.)"""
    ema = ckpt.get("ema")
    if ema:
        return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
    return ckpt["model"]


def read_state(source: "str | WeightsEnum") -> tuple[dict[str, torch.Tensor], tuple[str, ...] | None, str]:
    """``(state dict, the object classes it was trained for when known, a label for messages)`` of a file or a
    torchvision weights member (fetched by torchvision into its cache, ``torch.hub.get_dir()/checkpoints``, and read
    from there when it is already there). Every failure is one line naming the file (:func:`load_file`'s errors for a
    file, :class:`UsageError` for a download)."""
    if isinstance(source, str):
        obj = load_file(source)
        state = (scored_weights(obj) if "model" in obj else obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UsageError(f"{source}: expected a state dict of tensors (or a checkpoint with a 'model' state dict)")
        classes = obj.get("classes") if state is not obj else None
        state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
        return state, (tuple(classes) if classes else None), source
    label = f"{type(source).__name__}.{source.name}"
    try:
        state = source.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - no network, a proxy, a broken download: one line, what to do
        hub = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise UsageError(f"{label}: cannot fetch {source.url} into {hub}: {_one_line(e)} (without a network, copy "
                         f"that file there, or pass a local .pth)") from e
    categories = tuple(source.meta.get("categories") or ())
    return state, categories[1:] if categories[:1] == ("__background__",) else categories or None, label


def load_weights(model: nn.Module, weights: str | os.PathLike, *, model_name: str | None = None,
                 classes: Sequence[str] | None = None) -> dict[str, int]:
    """Load a whole detector's weights (a torchvision weights name of ``model_name``, or a local state dict or
    datatools checkpoint) into ``model``, for fine-tuning.

    The class-specific tensors (``MODELS[model_name].head``; every model's head when ``model_name`` is None) are
    loaded only when they fit: never from torchvision's COCO weights (their 91 categories are not this dataset's
    classes), from a datatools checkpoint only when its classes are ``classes`` (when given), and only when their
    shapes fit; otherwise they stay as initialized, i.e. the predictor is rebuilt for the dataset's classes. Every
    other tensor of the model must be in the file with its shape (BatchNorm's ``num_batches_tracked`` may be absent):
    a file of another model is a one-line :class:`UsageError` naming the file and the first tensor that differs.
    Returns counts: loaded, skipped (head tensors left as initialized), missing (left as initialized, head
    included), unexpected (in the file, not in the model)."""
    source = resolve_weights(weights, model_name)
    state, file_classes, label = read_state(source)
    heads = (_spec(model_name).head,) if model_name else tuple(sorted({s.head for s in MODELS.values()}))
    if not isinstance(source, str):
        head_ok = False
    else:
        head_ok = file_classes is None or classes is None or tuple(file_classes) == tuple(classes)
    own = model.state_dict()
    fit: dict[str, torch.Tensor] = {}
    head_skipped, wrong = [], []
    for k, v in own.items():
        if k not in state:
            continue
        if k.startswith(heads) and not (head_ok and state[k].shape == v.shape):
            head_skipped.append(k)
        elif state[k].shape != v.shape:
            wrong.append(k)
        else:
            fit[k] = state[k]
    missing = [k for k in own if k not in state and not k.startswith(heads) and not k.endswith("num_batches_tracked")]
    if wrong or missing:
        what = model_name or type(model).__name__
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensor(s) of another shape (first {k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(own[k].shape)} in the model)")
        if missing:
            parts.append(f"{len(missing)} of the model's tensors missing from the file (first {missing[0]})")
        raise UsageError(f"{label} does not fit {what}: {'; '.join(parts)}")
    model.load_state_dict(fit, strict=False)
    return {"loaded": len(fit), "skipped": len(head_skipped), "missing": len(own) - len(fit),
            "unexpected": len([k for k in state if k not in own])}


def load_backbone_weights(model: nn.Module, weights: str | os.PathLike, *, model_name: str) -> dict[str, int]:
    """Load an ImageNet classifier's weights (a torchvision weights name of ``MODELS[model_name].backbone`` such as
    ``IMAGENET1K_V1``, or a local state dict of ``torchvision.models.<backbone>``) into the detector's trunk.

    torchvision's detectors hold the classifier's layers in the classifier's own order, only under other names
    (``features.3`` is ``backbone.body.3``; ``layer1`` is ``backbone.body.layer1``), so the n-th tensor of the file
    (its classifier head ``fc``/``classifier`` left out) goes into the n-th of the trunk; every shape and the last
    part of every name must agree, else a one-line :class:`UsageError` names the file and the first difference."""
    spec = _spec(model_name)
    state, _, label = read_state(resolve_weights(weights, model_name, backbone=True))
    skip = ("num_batches_tracked",)
    trunk = [(k, v) for k, v in model.state_dict().items() if k.startswith(spec.trunk) and not k.endswith(skip)]
    theirs = [(k, v) for k, v in state.items() if not k.startswith(_CLASSIFIER_HEADS) and not k.endswith(skip)]
    if len(theirs) != len(trunk):
        raise UsageError(f"{label} does not fit the {spec.backbone} trunk of {model_name}: {len(theirs)} tensors "
                         f"besides the classifier head, the trunk has {len(trunk)} (not a {spec.backbone} state dict?)")
    for (a, ta), (b, tb) in zip(theirs, trunk):
        if a.rsplit(".", 1)[-1] != b.rsplit(".", 1)[-1] or ta.shape != tb.shape:
            raise UsageError(f"{label} does not fit the {spec.backbone} trunk of {model_name}: {a} "
                             f"{tuple(ta.shape)} in the file, {b} {tuple(tb.shape)} in the model")
    model.load_state_dict({b: ta for (_, ta), (b, _) in zip(theirs, trunk)}, strict=False)
    return {"loaded": len(trunk)}


def freeze_backbone(model: nn.Module, model_name: str) -> int:
    """Stop training the trunk (``MODELS[model_name].trunk``, the pretrained classifier's layers): its parameters no
    longer require gradients, so the optimizer leaves them out. Returns the number of parameters frozen."""
    prefix = _spec(model_name).trunk
    n = 0
    for k, p in unwrap(model).named_parameters():
        if k.startswith(prefix):
            p.requires_grad_(False)
            n += 1
    return n


def init_weights(model: nn.Module, cfg, *, load: bool = True, classes: Sequence[str] | None = None) -> list[str]:
    """Set up a run's freshly built model as ``cfg`` (a :class:`~datatools.training.config.TrainConfig`) asks:
    ``weights`` (a whole detector) or else ``weights_backbone``, then ``freeze_backbone``. ``load=False`` (a resumed
    run: the checkpoint holds the weights) only freezes. Call it before building the optimizer. Returns notes for
    the run's summary."""
    notes: list[str] = []
    spec = _spec(cfg.model)
    if load and cfg.weights:
        c = load_weights(model, cfg.weights, model_name=cfg.model, classes=classes)
        head = f"; {c['skipped']} class-head tensors rebuilt for this dataset's classes" if c["skipped"] else ""
        notes.append(f"weights {cfg.weights}: {c['loaded']} tensors loaded{head}")
        if cfg.weights_backbone:
            notes.append(f"--weights-backbone {cfg.weights_backbone} is not used: --weights sets the backbone too")
    elif load and cfg.weights_backbone:
        c = load_backbone_weights(model, cfg.weights_backbone, model_name=cfg.model)
        notes.append(f"backbone weights {cfg.weights_backbone}: {c['loaded']} tensors loaded into the "
                     f"{spec.backbone} trunk")
    if getattr(cfg, "freeze_backbone", False):
        notes.append(f"--freeze-backbone: {freeze_backbone(model, cfg.model)} parameters of the {spec.backbone} "
                     "trunk are not trained")
    return notes


def _spec(model_name: str) -> ModelSpec:
    if model_name not in MODELS:
        raise UsageError(f"unknown model {model_name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[model_name]


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
