"""Evaluation during training and of a saved checkpoint: predictions over every rank, metrics on rank 0.

Use :func:`evaluate_checkpoint` to score a ``last.pt``/``best.pt`` on its validation split exactly as the training
loop does; the loop itself calls :func:`validate`. :func:`predict_batches` (also behind ``datatools predict``) runs a
model over an eval loader and maps the boxes back to each original image. The metrics are those of
:mod:`datatools.metrics`: VOC mAP@0.5 (all-point) and COCO AP@[.5:.95].

The numbers are those ``datatools predict`` + ``datatools evaluate`` give on the same images: the same inference
settings (:data:`EVAL_CONF`, :data:`EVAL_MAX_DET`, through :func:`run_model`), fp32 (no autocast), ground
truth restricted to the evaluated images (:func:`ground_truth_subset`, for ``--limit``), and, for a model whose
BatchNorm is trained, running statistics re-estimated on train images first (:func:`recalibrate_bn`).
"""
from __future__ import annotations

import copy
import dataclasses
import os

import numpy as np
import torch
from torch import nn

from datatools.core.boxes import xyxy_to_xywh_array
from datatools.core.errors import UsageError
from datatools.training.checkpoint import load_checkpoint
from datatools.training.config import TrainConfig
from datatools.training.data import build_datasets, epoch_loader, model_inputs, stream_seed
from datatools.training.distributed import (DistContext, broadcast_objects, broadcast_state, gather_union,
                                            setup_distributed, teardown)
from datatools.training.models import build_model, inference_overrides, scored_weights

# The inference settings of every evaluation: validation during training, evaluate_checkpoint and `predict`'s
# defaults. A low score threshold and 100 detections per image are the usual settings for mAP (COCO's maxDets).
EVAL_CONF = 0.001
EVAL_MAX_DET = 100
# Train images used to re-estimate BatchNorm statistics (in batches of --batch-size). The running statistics of a
# detector trained from scratch lag far behind its weights (SSDlite's BN momentum is 0.03); a few hundred images give
# estimates whose mAP matches a pass over the whole train split on sample_data (see docs/training.md).
BN_IMAGES = 256


def run_model(cfg: TrainConfig, n_classes: int, *, conf: float = EVAL_CONF,
              max_det: int = EVAL_MAX_DET) -> nn.Module:
    """The detector of a run, as training builds it and as its checkpoints are evaluated: ``cfg``'s model, image size
    and resize mode, with the score threshold and detections per image of inference (the evaluation's by default;
    they act at inference only, so training losses are unchanged)."""
    return build_model(cfg.model, n_classes, image_size=cfg.image_size, resize_mode=cfg.resize_mode,
                       **inference_overrides(cfg.model, conf=conf, max_det=max_det))


def checkpoint_model(ckpt: dict, cfg: TrainConfig, *, classes=None, conf: float = EVAL_CONF,
                     max_det: int = EVAL_MAX_DET) -> nn.Module:
    """The detector of checkpoint ``ckpt`` (of run config ``cfg``) for inference: built by :func:`run_model`, with the
    weights its validation scored (:func:`~datatools.training.models.scored_weights`: the EMA's under ``--ema``).
    ``classes``, the object classes of the data it will run on, must be the checkpoint's, in the same order (a
    one-line :class:`UsageError` otherwise: other ids would give wrong labels or a wrong mAP without an error)."""
    model_classes = tuple(ckpt.get("classes") or ())
    if classes is not None and tuple(classes) != model_classes:
        raise UsageError(f"the dataset's classes {list(classes)} differ from the model's {list(model_classes)}")
    model = run_model(cfg, len(model_classes), conf=conf, max_det=max_det)
    model.load_state_dict(scored_weights(ckpt))
    return model


def validation_ground_truth(cfg: TrainConfig, val_ds, val_split: str | None, dist: DistContext):
    """The ground truth a run's validation scores against, on rank 0 (None elsewhere and without a validation split):
    only the images evaluated (``--limit`` cuts the split, and the others' boxes must not count as missed)."""
    from datatools.metrics.inputs import load_ground_truth

    if val_ds is None or not dist.main:
        return None
    return ground_truth_subset(load_ground_truth(cfg.data, format=cfg.format, split=val_split), val_ds.image_ids)


class _BNForward(nn.Module):
    """``update_bn`` calls ``model(batch)``: here the detector's own input transform (normalization, batching), then
    its backbone, then its head when the head has BatchNorm (SSDlite's; RetinaNet v2 and FCOS use GroupNorm, Faster
    R-CNN's RPN and box head have none): every BatchNorm layer sees what it sees in training, without the proposal
    sampling and RoI heads that make a full training forward several times slower on a CPU. A detector with
    BatchNorm elsewhere gets a full training-mode forward (its losses unused)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.bn_head = _bn_in(getattr(detector, "head", None))
        self.full = _bn_in(detector) > _bn_in(getattr(detector, "backbone", None)) + self.bn_head

    def forward(self, batch: dict):
        det = self.detector
        if self.full:
            return det(batch["images"], batch["targets"])
        images, _ = det.transform(batch["images"])
        features = det.backbone(images.tensors)
        if self.bn_head:
            features = [features] if isinstance(features, torch.Tensor) else list(features.values())
            det.head(features)
        return None


def _bn_in(module: nn.Module | None) -> int:
    from torch.nn.modules.batchnorm import _BatchNorm

    return 0 if module is None else sum(isinstance(m, _BatchNorm) for m in module.modules())


def has_batchnorm(model: nn.Module) -> bool:
    """True when ``model`` has a BatchNorm layer with running statistics (``FrozenBatchNorm2d`` is not one)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in model.modules())


def recalibrate_bn(model: nn.Module, train_ds, cfg: TrainConfig, device: torch.device) -> int:
    """Re-estimate the BatchNorm running statistics of ``model`` with ``torch.optim.swa_utils.update_bn``: one
    no-grad training-mode pass over at most :data:`BN_IMAGES` train images (a fixed random subset drawn from
    ``cfg.seed``, with the evaluation's resize and no augmentation, in fp32, in batches of ``cfg.batch_size`` but at
    least 2). Call it before evaluating or saving a model trained from scratch: the running statistics follow the
    weights only slowly, and a detector evaluated with stale ones scores near zero however well it learned. Skip it
    when BatchNorm is frozen (``--freeze-bn``, pretrained ``FrozenBatchNorm2d``). Returns the number of images used
    (0: the model has no BatchNorm to re-estimate)."""
    from torch.optim.swa_utils import update_bn

    from datatools.datasets import make_loader
    from datatools.datasets.transforms import eval_preset

    if not has_batchnorm(model) or len(train_ds) == 0:
        return 0
    ds = copy.copy(train_ds)  # the same images and targets, with the evaluation's resize instead of augmentation
    ds.transforms = eval_preset(cfg.image_size, mode=cfg.resize_mode, dtype=None)
    # Batches of at least 2 and never a last batch of one image: SSDlite's extra blocks reach 1x1 maps, where
    # training-mode BatchNorm needs more than one value per channel.
    bs = max(2, cfg.batch_size)
    n = min(BN_IMAGES, len(ds))
    n -= int(n % bs == 1)
    if n < 2:
        return 0
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(stream_seed(cfg.seed, 7)))[:n]
    subset = torch.utils.data.Subset(ds, sorted(order.tolist()))
    loader = make_loader(subset, batch_size=bs, shuffle=False, num_workers=cfg.workers,
                         persistent_workers=False)

    def batches():
        for imgs, targets in loader:
            imgs, targets = model_inputs(imgs, targets, device)
            yield {"images": imgs, "targets": targets}

    was_training = model.training
    # A full training forward samples proposals: keep the run's random streams as they were.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        update_bn(batches(), _BNForward(model))
    model.train(was_training)
    return n


def ground_truth_subset(gt, names):
    """``gt`` restricted to the images named in ``names`` (dataset image ids, as ``val_ds.image_ids`` holds them),
    for an evaluation of part of a split (``--limit``): the other images' boxes would otherwise count as missed."""
    from datatools.metrics.voc import BoxTable

    keep = sorted({gt.by_name[n] for n in names if n in gt.by_name})
    if len(keep) == len(gt.images):
        return gt
    new = {old: k for k, old in enumerate(keep)}
    t = gt.table
    rows = np.isin(t.image, keep)
    table = BoxTable.build([new[int(i)] for i in t.image[rows]], t.label[rows], t.box[rows], t.score[rows],
                           t.ignore[rows])
    ids = {gt.image_ids[i] for i in keep}
    coco = dict(gt.coco, images=[im for im in gt.coco.get("images", []) if im["id"] in ids],
                annotations=[a for a in gt.coco.get("annotations", []) if a["image_id"] in ids])
    return dataclasses.replace(
        gt, images=tuple(gt.images[i] for i in keep), table=table, coco=coco,
        image_ids=[gt.image_ids[i] for i in keep], by_name={k: new[v] for k, v in gt.by_name.items() if v in new},
        by_id={k: (None if v is None else new[v]) for k, v in gt.by_id.items() if v is None or v in new})


@torch.no_grad()
def predict_batches(model: nn.Module, loader, device: torch.device, *, channels_last: bool = False,
                    progress=None) -> dict[int, dict[str, np.ndarray]]:
    """Run ``model`` over an eval loader in fp32; boxes are mapped back to each original image; ``progress(n)`` is
    called after each batch of ``n`` images.
    Returns ``{dataset index: {"boxes", "scores", "labels"}}`` (labels without the background offset), or
    ``{"error": why}`` for an image its dataset could not decode (a target with ``decode_error``)."""
    from datatools.datasets.transforms import boxes_to_original

    model.eval()
    out: dict[int, dict[str, np.ndarray]] = {}
    index_of = getattr(loader.dataset, "index_of", None)  # target["image_id"] is the source's id: back to the index
    for images, targets in loader:
        inputs, _ = model_inputs(images, None, device, channels_last=channels_last)
        preds = model(inputs)
        for p, t in zip(preds, targets):
            idx = int(t["image_id"]) if index_of is None else index_of(int(t["image_id"]))
            if "decode_error" in t:
                out[idx] = {"error": t["decode_error"]}
                continue
            boxes = boxes_to_original(p["boxes"].float().cpu(), t).numpy().astype(np.float64)
            labels = p["labels"].cpu().numpy() - 1
            # Label 0 is the background the models are built with (num_classes = K + 1); a sigmoid head (RetinaNet,
            # FCOS) has none and still scores it: those are no class. A box wholly in the letterbox padding is
            # clipped to nothing when mapped back.
            keep = (labels >= 0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            out[idx] = {"boxes": boxes[keep], "scores": p["scores"].float().cpu().numpy()[keep],
                        "labels": labels[keep]}
        if progress:
            progress(len(preds))
    return out


def validate(model: nn.Module, val_ds, gt, cfg: TrainConfig, dist: DistContext, device: torch.device, *,
             channels_last: bool = False) -> tuple[float | None, float | None, dict]:
    """Evaluate ``model`` on ``val_ds`` over every rank: rank 0's weights are broadcast, each rank predicts its
    ``DistributedSampler`` shard, rank 0 gathers the union keyed by dataset index (the sampler's padding duplicates
    collapse) and computes the metrics. Returns ``(map50, map, predictions)`` on rank 0; the metrics are broadcast
    so every rank returns them (predictions only on rank 0).

    In fp32 whatever the training precision (bf16 puts boxes on a 2 px grid at 512 px), like ``predict``; ``model``
    should be built by :func:`run_model` and ``gt`` hold only ``val_ds``'s images."""
    broadcast_state(model, dist)
    vloader = epoch_loader(val_ds, cfg, dist, train=False, epoch=0)
    preds = gather_union(predict_batches(model, vloader, device, channels_last=channels_last), dist)
    m50 = m = None
    if dist.main:
        m50, m = evaluate_predictions(preds, val_ds, gt)
    m50, m = broadcast_objects([m50, m], dist)
    return m50, m, preds


def evaluate_checkpoint(path: str | os.PathLike, *, data: str | None = None, device: str = "auto",
                        batch_size: int | None = None, workers: int = 0) -> tuple[float, float, dict]:
    """Evaluate a training checkpoint on its validation split, as the training loop does (same presets, same
    metrics), on one process or under ``torchrun`` (then every rank takes its shard and rank 0 gets the result).
    ``data`` overrides the dataset path stored in the checkpoint. Returns ``(map50, map, predictions)``; the
    predictions are ``{dataset index: {"boxes", "scores", "labels"}}`` as :func:`predict_batches` returns them."""
    ckpt = load_checkpoint(path)
    args = dict(ckpt["args"], workers=workers, device=device)
    if data is not None:
        args["data"] = data
    if batch_size is not None:
        args["batch_size"] = batch_size
    cfg = TrainConfig.from_dict(args)
    dist, dev = setup_distributed(cfg.device)
    try:
        _, train_ds, val_ds, val_split, _ = build_datasets(cfg)
        if val_ds is None:
            raise UsageError(f"{cfg.data}: no {cfg.val_split!r} split to evaluate on")
        gt = validation_ground_truth(cfg, val_ds, val_split, dist)
        model = checkpoint_model(ckpt, cfg, classes=train_ds.classes).to(dev)
        m50, m, preds = validate(model, val_ds, gt, cfg, dist, dev)
        return float(m50 or 0.0), float(m or 0.0), preds
    finally:
        teardown(dist)


def evaluate_predictions(preds: dict, val_ds, gt) -> tuple[float, float]:
    """(VOC mAP@0.5 all-point, COCO AP@[.5:.95]) of ``preds`` (from :func:`predict_batches`) against ``gt``."""
    from datatools.metrics.evaluate import evaluate_loaded
    from datatools.metrics.predictions import Predictions
    from datatools.metrics.voc import BoxTable

    img, lab, box, score = [], [], [], []
    # In dataset order, whatever order the ranks' parts arrived in: the AP sort breaks score ties by position, so
    # another order could give another VOC AP for the same predictions.
    for idx, p in sorted(preds.items()):
        gi = gt.by_name.get(val_ds.image_ids[idx])
        if gi is None or not len(p["scores"]):
            continue
        n = len(p["scores"])
        img.append(np.full(n, gi))
        lab.append(p["labels"])
        box.append(p["boxes"])
        score.append(p["scores"])
    if img:
        b = np.concatenate(box)
        table = BoxTable.build(np.concatenate(img), np.concatenate(lab), b, np.concatenate(score))
    else:
        b = np.zeros((0, 4))
        table = BoxTable.empty()
    pred = Predictions(table=table, xywh=xyxy_to_xywh_array(b), read=len(table))
    rep = evaluate_loaded(gt, pred, metric="all", backend="auto")
    m50 = rep.voc.map if rep.voc is not None else float("nan")
    return (0.0 if m50 != m50 else m50), max(0.0, rep.coco.stat("AP")) if rep.coco is not None else 0.0
