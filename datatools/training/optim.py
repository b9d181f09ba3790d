"""What updates the weights: the optimizer, the learning-rate schedule and the EMA of the weights, all stock torch.

* :func:`build_optimizer`: SGD (Nesterov) or AdamW, with no weight decay on norm layers and biases, and the
  backbone's own learning rate when fine-tuning (``backbone_lr_mult``; :func:`param_groups`).
* :func:`build_scheduler`: a per-iteration linear warm-up (``LinearLR`` from 0.1% to 1) then cosine down to
  ``min_lr_ratio`` (``LambdaLR``, closed form) or x0.1 at 2/3 and 8/9 of the run (``MultiStepLR``), chained by
  ``SequentialLR``. :func:`schedule_plan` counts the steps; :meth:`SchedulePlan.scheduler` builds one that stands at
  a given step (what ``--resume`` starts from, also with another world size or run length).
* :func:`build_ema`: :class:`torch.optim.swa_utils.AveragedModel` over parameters and buffers, updated with
  :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn` at a decay that ramps up (:func:`ema_avg_fn`).
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LinearLR, LRScheduler, MultiStepLR, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from datatools.training.config import TrainConfig

WARMUP_START = 1e-3  # the warm-up's first factor of the peak learning rate
EMA_RAMP = 2000  # updates over which the EMA's decay ramps up: decay * (1 - exp(-updates / EMA_RAMP))


def param_groups(model: nn.Module, weight_decay: float, *, backbone: str | None = None,
                 backbone_lr_mult: float = 1.0) -> list[dict]:
    """Weight decay on weights only: norm layers' parameters and every bias (1-D tensors) get none. Parameters that
    do not require gradients (a frozen backbone or BatchNorm) are left out.

    With ``backbone`` (a state-dict prefix, :attr:`ModelSpec.trunk <datatools.training.models.ModelSpec>`) and a
    ``backbone_lr_mult`` other than 1, the trunk's parameters get groups of their own whose ``lr_mult`` scales the
    learning rate (:func:`build_scheduler` applies it), e.g. 0.1 to fine-tune a pretrained backbone gently."""
    split = backbone is not None and backbone_lr_mult != 1.0
    groups: dict[tuple[bool, bool], list] = {(b, d): [] for b in ((False, True) if split else (False,))
                                             for d in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        in_trunk = split and name.startswith(backbone)  # type: ignore[arg-type]
        groups[(in_trunk, p.ndim > 1)].append(p)
    out = []
    for (in_trunk, decay), params in groups.items():
        if in_trunk and not params:
            continue
        out.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                    "lr_mult": backbone_lr_mult if in_trunk else 1.0})
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    from datatools.training.models import MODELS, unwrap

    spec = MODELS.get(cfg.model)
    groups = param_groups(unwrap(model), cfg.weight_decay, backbone=spec.trunk if spec else None,
                          backbone_lr_mult=getattr(cfg, "backbone_lr_mult", 1.0))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


@dataclass(frozen=True)
class SchedulePlan:
    """A run's learning-rate schedule: optimizer steps per epoch (for this world size), in the run and of warm-up,
    and the rates (peak ``lr``, ``schedule``, ``min_ratio``)."""

    iters_per_epoch: int
    total: int
    warmup: int
    lr: float
    schedule: str = "cosine"
    min_ratio: float = 0.01

    def scheduler(self, opt: torch.optim.Optimizer, step: int = 0) -> LRScheduler:
        """:func:`build_scheduler` of this plan stepped ``step`` times: it stands where a run that took ``step``
        optimizer steps left it (what ``--resume`` starts from). A step costs about 2 us."""
        sched = build_scheduler(opt, lr=self.lr, total=self.total, warmup=self.warmup, schedule=self.schedule,
                                min_ratio=self.min_ratio)
        with warnings.catch_warnings():
            # Stepping with no optimizer step in between is the point here.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            for _ in range(step):
                sched.step()
        return sched


def schedule_plan(cfg: TrainConfig, n_train: int, world: int) -> SchedulePlan:
    """The schedule of a run of ``n_train`` images on ``world`` processes. It is a function of (epoch, step in the
    epoch), so a run resumed with another world size continues at the same fraction of the run."""
    ipe = math.ceil(math.ceil(n_train / world) / (cfg.batch_size * max(1, cfg.accumulate)))
    total = ipe * cfg.epochs
    return SchedulePlan(ipe, total, min(int(cfg.warmup_epochs * ipe), max(0, total - 1)), lr=cfg.lr,
                        schedule=cfg.schedule, min_ratio=cfg.min_lr_ratio)


def build_scheduler(opt: torch.optim.Optimizer, *, lr: float, total: int, warmup: int, schedule: str = "cosine",
                    min_ratio: float = 0.01) -> LRScheduler:
    """The learning rate at step ``s`` (stepped once per optimizer step): ``lr`` x (0.1% + (1 - 0.1%) s / warmup)
    during the warm-up, then cosine from ``lr`` down to ``lr x min_ratio`` at ``total`` (or ``lr``, x0.1 from step
    ``ceil(2/3 total)``, x0.01 from ``ceil(8/9 total)`` for ``multistep``). Sets every group's learning rate to
    step 0's value. A group with an ``lr_mult`` (:func:`param_groups`) follows the same curve scaled by it."""
    for g in opt.param_groups:  # the schedule's base, also for an optimizer whose state was loaded
        g["lr"] = g["initial_lr"] = lr * g.get("lr_mult", 1.0)
    after: LRScheduler
    if schedule == "multistep":
        # Milestones count from step 0 of the run; the second scheduler's steps count from the end of the warm-up.
        after = MultiStepLR(opt, milestones=[max(0, math.ceil(total * f) - warmup) for f in (2 / 3, 8 / 9)],
                            gamma=0.1)
    else:
        # The cosine as a factor of each group's base rate (CosineAnnealingLR's floor is one number for all groups,
        # which a backbone group at lr_mult x lr must not share)
        after = LambdaLR(opt, functools.partial(_cosine_factor, t_max=max(1, total - warmup), min_ratio=min_ratio))
    if warmup <= 0:
        return after
    ramp = LinearLR(opt, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
    return SequentialLR(opt, [ramp, after], milestones=[warmup])


def _cosine_factor(step: int, *, t_max: int, min_ratio: float) -> float:
    """The cosine's factor of a group's base rate at ``step`` after the warm-up (closed form: picklable, no state)."""
    return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * min(step, t_max) / t_max)) / 2


def ema_avg_fn(decay: float, *, averaged: Callable[[], int]) -> Callable[[list, list, torch.Tensor], None]:
    """An ``AveragedModel`` ``multi_avg_fn``: :func:`get_ema_multi_avg_fn` at ``decay * (1 - exp(-k / EMA_RAMP))``
    for the ``k``-th update, so the early, poor weights of a run from scratch fade fast (a constant 0.9998 would keep
    the random initialization's weight above 1/e for 5,000 steps). Integer buffers (BatchNorm's
    ``num_batches_tracked``) are counters: they are copied, not averaged. ``averaged`` returns the updates so far (the
    ``n_averaged`` that ``AveragedModel`` passes, read on the CPU: reading its copy on the GPU would wait for the GPU
    every step)."""

    @torch.no_grad()
    def update(ema: list, current: list, num_averaged: torch.Tensor) -> None:
        if not (ema[0].is_floating_point() or ema[0].is_complex()):
            for e, c in zip(ema, current):
                e.copy_(c)
            return
        # AveragedModel's first update copies the weights; the k-th calls this with num_averaged = k - 1.
        d = decay * (1 - math.exp(-(averaged() + 1) / EMA_RAMP))
        get_ema_multi_avg_fn(d)(ema, current, num_averaged)

    return update


def build_ema(model: nn.Module, decay: float) -> AveragedModel:
    """The EMA of ``model``'s weights and buffers (``use_buffers=True``: BatchNorm's running statistics are averaged
    with the weights, so the EMA model is evaluated with statistics that match its weights). Call
    ``ema.update_parameters(model)`` after each optimizer step; evaluate and save ``ema.module``."""
    ema = AveragedModel(model, use_buffers=True)  # n_averaged stays on the CPU (no device given)
    ema.multi_avg_fn = ema_avg_fn(decay, averaged=lambda: int(ema.n_averaged))
    ema.module.eval()
    for p in ema.module.parameters():
        p.requires_grad_(False)
    return ema
