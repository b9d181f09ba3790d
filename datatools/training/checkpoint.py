"""Checkpoints: what a run writes at the end of each epoch, how it is read back, and what ``--resume`` restores.

A checkpoint is a plain dict (tensors, numbers, strings, lists) written by rank 0 with ``torch.save`` into memory
and then an atomic replace (fsynced), so a crash never leaves half a file, and read with ``torch.load(weights_only=True)``, so
loading one never runs pickled code. It holds the model (``model``), the optimizer, the LR scheduler's state and
position (``scheduler``: for other tools; ``--resume`` rebuilds the schedule placed at the epoch's step, which gives
the same rates), the EMA (``ema``, an ``AveragedModel`` state dict), the epoch, the best score, the run's
:class:`TrainConfig` (``args``), the class names, the world size and the global batch.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel

from datatools.core.errors import FormatError, UsageError
from datatools.core.atomic import atomic_write
from datatools.training.config import TrainConfig, keep_global_batch
from datatools.training.models import load_file, unwrap
from datatools.training.optim import SchedulePlan


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to memory, then an atomic replace: a crash never leaves a half-written checkpoint. The temp
    file is fsynced before the rename and the folder after it, so a power cut or a killed node cannot leave a
    ``last.pt`` whose name is on disk but whose bytes are not (the old one stays until the new one is whole)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue(), fsync=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A datatools checkpoint, loaded with ``weights_only=True`` (plain containers, tensors and numbers only)."""
    ckpt = load_file(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "args" not in ckpt:
        raise FormatError(os.fspath(path), "", "not a datatools checkpoint (expected 'model' and 'args')")
    return ckpt


def resume_config(cfg: TrainConfig, world: int) -> tuple[TrainConfig, dict, list[str]]:
    """The config and checkpoint to continue ``cfg.out/last.pt`` with, on ``world`` processes. The stored args win
    over ``cfg`` except ``epochs`` (which may be raised), ``out``, ``workers`` and ``device``; with another world
    size ``accumulate`` is changed to keep the global batch when it can (:func:`keep_global_batch`). Returns
    ``(config, checkpoint, notes)``."""
    last = Path(cfg.out) / "last.pt"
    if not last.is_file():
        raise UsageError(f"--resume: no {last}")
    ckpt = load_checkpoint(last)
    stored = TrainConfig.from_dict(ckpt["args"])
    merged = TrainConfig.from_dict({**stored.to_dict(), "epochs": max(cfg.epochs, stored.epochs), "out": cfg.out,
                                    "workers": cfg.workers, "device": cfg.device})
    merged, note = keep_global_batch(merged, int(ckpt.get("world_size", 1)), world)
    return merged, ckpt, [note] if note else []


def training_state(*, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer, sched: LRScheduler,
                   plan: SchedulePlan, ema: AveragedModel | None, epoch: int, best: float | None,
                   classes: tuple[str, ...], world: int, category_ids: Sequence[int] = ()) -> dict:
    """The checkpoint of a run at the end of ``epoch`` (0-based). ``category_ids``: the training data's COCO id of
    each class (COCO's own, with gaps), which ``predict`` writes for a plain folder of images."""
    return {"model": unwrap(model).state_dict(), "optimizer": opt.state_dict(),
            "scheduler": {"step": sched.last_epoch, "iters_per_epoch": plan.iters_per_epoch, "total": plan.total,
                          "warmup": plan.warmup, "state": sched.state_dict()},
            "scaler": None,  # bf16 autocast needs no GradScaler
            "ema": ema.state_dict() if ema is not None else None, "epoch": epoch, "best_map50": best,
            "args": cfg.to_dict(), "classes": list(classes), "category_ids": list(category_ids),
            "model_name": cfg.model, "world_size": world,
            "global_batch": cfg.batch_size * world * max(1, cfg.accumulate)}


def restore_training(ckpt: dict, *, model: nn.Module, opt: torch.optim.Optimizer,
                     ema: AveragedModel | None) -> tuple[int, float | None]:
    """Load the model, optimizer and EMA of ``ckpt``; returns ``(first epoch to run, best score so far)``."""
    unwrap(model).load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if ema is not None and ckpt.get("ema"):
        ema.load_state_dict(ckpt["ema"])
    return int(ckpt["epoch"]) + 1, ckpt.get("best_map50")
