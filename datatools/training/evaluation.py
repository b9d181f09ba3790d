"""Evaluation during training and of a saved checkpoint: predictions over every rank, metrics on rank 0.

Use :func:`evaluate_checkpoint` to score a ``last.pt``/``best.pt`` on its validation split exactly as the training
loop does; the loop itself calls :func:`validate`. :func:`predict_batches` (also behind ``datatools predict``) runs a
model over an eval loader and maps the boxes back to each original image. The metrics are those of
:mod:`datatools.metrics`: VOC mAP@0.5 (all-point) and COCO AP@[.5:.95].
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
from torch import nn

from datatools.core.boxes import xyxy_to_xywh_array
from datatools.core.errors import UsageError
from datatools.training.checkpoint import load_checkpoint
from datatools.training.config import TrainConfig
from datatools.training.data import build_datasets, epoch_loader
from datatools.training.distributed import (DistContext, broadcast_objects, broadcast_state, gather_union,
                                            resolve_device, setup_distributed, teardown)
from datatools.training.models import build_model


@torch.no_grad()
def predict_batches(model: nn.Module, loader, device: torch.device, *, amp_dtype=None,
                    channels_last: bool = False) -> dict[int, dict[str, np.ndarray]]:
    """Run ``model`` over an eval loader; boxes are mapped back to each original image.
    Returns ``{dataset index: {"boxes", "scores", "labels"}}`` (labels without the background offset)."""
    from datatools.datasets import to_device
    from datatools.datasets.transforms import boxes_to_original

    model.eval()
    out: dict[int, dict[str, np.ndarray]] = {}
    for images, targets in loader:
        images, _ = to_device(images, [], device)
        if channels_last and isinstance(images, torch.Tensor):
            images = images.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with ctx:
            preds = model(list(images) if isinstance(images, torch.Tensor) else images)
        for p, t in zip(preds, targets):
            idx = int(t["image_id"])
            boxes = boxes_to_original(p["boxes"].float().cpu(), t)
            out[idx] = {"boxes": boxes.numpy().astype(np.float64), "scores": p["scores"].float().cpu().numpy(),
                        "labels": p["labels"].cpu().numpy() - 1}
    return out


def validate(model: nn.Module, val_ds, gt, cfg: TrainConfig, dist: DistContext, device: torch.device, *,
             amp_dtype=None, channels_last: bool = False) -> tuple[float | None, float | None, dict]:
    """Evaluate ``model`` on ``val_ds`` over every rank: rank 0's weights are broadcast, each rank predicts its
    ``DistributedSampler`` shard, rank 0 gathers the union keyed by dataset index (the sampler's padding duplicates
    collapse) and computes the metrics. Returns ``(map50, map, predictions)`` on rank 0; the metrics are broadcast
    so every rank returns them (predictions only on rank 0)."""
    broadcast_state(model, dist)
    vloader = epoch_loader(val_ds, cfg, dist, train=False, epoch=0)
    preds = gather_union(predict_batches(model, vloader, device, amp_dtype=amp_dtype, channels_last=channels_last),
                         dist)
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
    from datatools.metrics.inputs import load_ground_truth

    ckpt = load_checkpoint(path)
    args = dict(ckpt["args"], workers=workers, device=device)
    if data is not None:
        args["data"] = data
    if batch_size is not None:
        args["batch_size"] = batch_size
    cfg = TrainConfig.from_dict(args)
    dist = setup_distributed(resolve_device(cfg.device).type)
    dev = resolve_device(cfg.device, dist.local_rank)
    try:
        _, train_ds, val_ds, val_split = build_datasets(cfg)
        if val_ds is None:
            raise UsageError(f"{cfg.data}: no {cfg.val_split!r} split to evaluate on")
        gt = load_ground_truth(cfg.data, format=cfg.format, split=val_split) if dist.main else None
        model = build_model(cfg.model, len(train_ds.classes), image_size=cfg.image_size, resize_mode=cfg.resize_mode)
        model.load_state_dict(ckpt["model"])
        model.to(dev)
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
