"""The training loop behind ``datatools train``: any dataset format in, checkpoints + a CSV log + mAP out.

Use :func:`train` with a :class:`~datatools.training.config.TrainConfig`. It runs the same on one CPU, one GPU, or
many GPUs/nodes under ``torchrun`` (DDP, set up from torchrun's environment variables).

An epoch, in order: a fresh shuffled shard per rank (``DistributedSampler`` seeded by ``seed`` and the epoch, also with
one process, so ``--resume`` replays the same order); uint8 batches converted on the device; bf16 autocast on GPUs
that support it; gradient accumulation (:func:`~datatools.training.data.micro_batches`), clipping, the EMA and the
per-iteration schedule (:mod:`datatools.training.optim`); BatchNorm statistics re-estimated on train images unless BN
is frozen; every ``eval_every`` epochs the evaluation of :mod:`datatools.training.evaluation`; one CSV row; and
``last.pt`` / ``best.pt`` written atomically by rank 0 only. A NaN or inf loss stops the run with
:class:`TrainingDiverged` before anything is written, so the last good ``last.pt`` stays.

A run's sample order depends only on the seed and the epoch, never on the world size (rank ``r`` of ``W`` reads every
``W``-th index of the epoch's permutation, micro-batch ``j`` every ``A``-th image of its batch, the model's own random
draws seeded per micro-batch slot): W processes x batch b and 1 process x batch b x ``accumulate W`` give bit-identical
checkpoints with ``freeze_bn``, no augmentation and the default letterbox (tests/test_ddp.py; what does depend on the
world size: docs/training.md).
"""
from __future__ import annotations

import contextlib
import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel

from datatools.core.atomic import make_dirs
from datatools.core.errors import DatatoolsError, UsageError
from datatools.training.checkpoint import restore_training, resume_config, save_checkpoint, training_state
from datatools.training.config import TrainConfig, check_config, resolve_defaults
from datatools.training.data import build_datasets, epoch_loader, micro_batches, model_inputs, stream_seed
from datatools.training.distributed import (DistContext, barrier, nonfinite_losses, setup_distributed,
                                            sum_over_ranks, teardown)
from datatools.training.evaluation import recalibrate_bn, run_model, validate, validation_ground_truth
from datatools.training.models import freeze_batchnorm, init_weights, unwrap
from datatools.training.optim import SchedulePlan, build_ema, build_optimizer, schedule_plan

ProgressFn = Callable[[str, int, "int | None"], None]


class TrainingDiverged(DatatoolsError):
    """The loss became NaN or inf. The message says where; the last checkpoint on disk is the last good one."""


@dataclass
class EpochLog:
    """One epoch's row of ``results.csv`` (losses are means over the epoch's steps and over every rank)."""

    epoch: int
    lr: float
    loss: float
    parts: dict[str, float]
    images_per_s: float
    seconds: float
    memory_mb: float
    map50: float | None = None
    map: float | None = None
    val_images: int = 0

    def to_dict(self) -> dict:
        """The epoch as numbers (``--json``; :meth:`row` is its text in ``results.csv``)."""
        return {"epoch": self.epoch, "lr": self.lr, "loss": self.loss, **self.parts,
                "images_per_s": self.images_per_s, "seconds": self.seconds, "memory_mb": self.memory_mb,
                "map50": self.map50, "map": self.map, "val_images": self.val_images}

    def row(self) -> dict:
        r = {"epoch": self.epoch, "lr": f"{self.lr:.6g}", "loss": f"{self.loss:.5f}"}
        r.update({k: f"{v:.5f}" for k, v in self.parts.items()})
        r.update({"images_per_s": f"{self.images_per_s:.2f}", "seconds": f"{self.seconds:.2f}",
                  "memory_mb": f"{self.memory_mb:.0f}",
                  "map50": "" if self.map50 is None else f"{self.map50:.5f}",
                  "map": "" if self.map is None else f"{self.map:.5f}", "val_images": self.val_images})
        return r


@dataclass
class TrainResult:
    out: str
    epochs_run: int
    history: list[EpochLog] = field(default_factory=list)
    best_map50: float | None = None
    last: str = ""
    best: str = ""
    device: str = ""
    world_size: int = 1
    classes: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What one process trains with, built once by :func:`_prepare`."""

    cfg: TrainConfig
    dist: DistContext
    device: torch.device
    model: nn.Module  # the plain model (what checkpoints store)
    train_model: nn.Module  # the model under DDP and/or torch.compile
    opt: torch.optim.Optimizer
    sched: LRScheduler
    plan: SchedulePlan
    ema: AveragedModel | None
    amp_dtype: torch.dtype | None
    channels_last: bool
    out: Path


def train(cfg: TrainConfig, *, resume: bool = False, progress: ProgressFn | None = None,
          on_epoch: Callable[[EpochLog], None] | None = None,
          on_note: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; see the module docstring. ``resume`` continues from ``out/last.pt``
    (the model, optimizer, LR scheduler, EMA, epoch and best score are restored; the stored args win over ``cfg``
    except for ``epochs``, which may be raised, ``workers`` and ``device``). Resuming with another world size keeps
    the global batch when it can by changing ``accumulate`` (2 processes x batch b -> 1 process x batch b x
    accumulate 2, and back), and says so in the notes. ``progress(stage, advance, total)`` is called per iteration
    and ``on_epoch`` once per epoch (rank 0 only); ``on_note`` with the note on the data (which splits, images left
    out) before the first epoch, which is among the result's notes too. Library code: prints nothing."""
    ckpt = None
    pre_notes: list[str] = []
    if resume:
        cfg, ckpt, pre_notes = resume_config(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    else:  # another run's checkpoints were replaced and its log appended to, without a word
        held = [n for n in ("last.pt", "best.pt", "results.csv") if (Path(cfg.out) / n).exists()]
        if held:
            raise UsageError(f"{cfg.out} holds a run already ({', '.join(held)}): --resume to continue it, or "
                             "another --out")
    cfg, note = resolve_defaults(cfg)
    if note:
        pre_notes.append(note)
    check_config(cfg)
    dist, device = setup_distributed(cfg.device)
    # The run's randomness is seeded inside fork_rng, and its switches (deterministic algorithms, cudnn) set for the
    # run: the caller's global RNG state and switches are restored afterwards.
    switches = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            result = _train(cfg, ckpt, dist, device, progress, on_epoch, on_note)
            result.notes[:0] = pre_notes
            barrier(dist)  # every rank leaves after rank 0's last checkpoint is on disk
            return result
        finally:
            torch.use_deterministic_algorithms(switches[0], warn_only=switches[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = switches[2:]
            teardown(dist)


def _prepare(cfg: TrainConfig, ckpt: dict | None, dist: DistContext, device: torch.device, classes: Sequence[str],
             n_train: int, notes: list[str]) -> tuple[_Run, int, float | None]:
    """The model, optimizer, scheduler and EMA of a run (restored from ``ckpt`` when resuming); returns the run,
    the first epoch and the best score so far."""
    # Built with the evaluation's score threshold and detection count: they act at inference only.
    model = run_model(cfg, len(classes))
    # --weights / --weights-backbone, --freeze-backbone; a file's class head only when its class names are these
    notes += init_weights(model, cfg, load=ckpt is None, classes=classes)
    if cfg.freeze_bn:
        notes.append(f"--freeze-bn: {freeze_batchnorm(model)} BatchNorm layers frozen")
    model.to(device)
    use_cl = cfg.channels_last and device.type == "cuda"
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if (cfg.amp and device.type == "cuda" and torch.cuda.is_bf16_supported()) else None
    if cfg.amp and device.type == "cuda" and amp_dtype is None:
        notes.append("this GPU has no bf16: AMP is off (fp32)")
    opt = build_optimizer(model, cfg)
    # With keep-aspect grouping an epoch may run a step or two more or fewer than the plan's count (one short batch
    # per group); the scheduler is put back at each epoch's start, so the schedule never drifts.
    plan = schedule_plan(cfg, n_train, dist.world)
    ema = build_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    start_epoch, best = 0, None
    if ckpt is not None:
        start_epoch, best = restore_training(ckpt, model=model, opt=opt, ema=ema)
    sched = plan.scheduler(opt, start_epoch * plan.iters_per_epoch)
    train_model: nn.Module = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    run = _Run(cfg=cfg, dist=dist, device=device, model=model, train_model=train_model, opt=opt, sched=sched,
               plan=plan, ema=ema, amp_dtype=amp_dtype, channels_last=use_cl, out=Path(cfg.out))
    return run, start_epoch, best


@contextlib.contextmanager
def _one_image_batches(cfg: TrainConfig):
    """A model that normalizes over the batch (SSDlite's BatchNorm) cannot train on one image: one line, not
    torch's traceback (the loader drops a last batch of one; ``-b 1`` is left)."""
    try:
        yield
    except ValueError as e:
        if "Expected more than 1 value per channel" not in str(e):
            raise
        why = ("pass -b 2 or more" if cfg.batch_size < 2 else
               f"the training images leave a batch of one at -b {cfg.batch_size}"
               + (f" --accumulate {cfg.accumulate}" if cfg.accumulate > 1 else "") + " (too few images per process)")
        raise UsageError(f"{cfg.model} normalizes over the batch (BatchNorm) and cannot train on one image at a "
                         f"time: {why}") from e


def _train(cfg: TrainConfig, ckpt: dict | None, dist: DistContext, device: torch.device, progress,
           on_epoch, on_note=None) -> TrainResult:
    torch.manual_seed(cfg.seed + dist.rank)  # the initial weights: rank 0's are broadcast by DDP
    notes: list[str] = []
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data, train_ds, val_ds, val_split, data_note = build_datasets(cfg)
    notes.append(data_note)
    if on_note and dist.main:
        on_note(data_note)
    classes = tuple(train_ds.classes)
    try:
        category_ids = tuple(train_ds.category_ids)  # COCO's own ids, for predict on a plain folder
    except ValueError:  # splits that give one class two ids: predict on a folder writes 1..K
        category_ids = ()
    if len(train_ds) == 0:
        raise UsageError(f"{cfg.data}: no training images")
    gt = validation_ground_truth(cfg, val_ds, val_split, dist)
    if val_ds is None:
        what = f"no {cfg.val_split!r} split" if cfg.val_split else "no validation split (--val-split '')"
        notes.append(f"{what}: no evaluation, best.pt follows the training loss")
    run, start_epoch, best = _prepare(cfg, ckpt, dist, device, classes, len(train_ds), notes)
    out = run.out
    if dist.main:
        make_dirs(out)  # an unwritable --out is one line, not a traceback
    writer = None
    if cfg.tensorboard and dist.main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            notes.append("--tensorboard: the tensorboard package is not installed; CSV only")
    result = TrainResult(out=str(out), epochs_run=0, device=str(device), world_size=dist.world, classes=classes,
                         notes=notes, last=str(out / "last.pt"), best=str(out / "best.pt"), best_map50=best)
    history: list[EpochLog] = []
    for epoch in range(start_epoch, cfg.epochs):
        sums, n_iter, n_img, seconds = _train_epoch(run, train_ds, epoch, progress)
        m50 = m = None
        n_val = 0
        eval_model = run.ema.module if run.ema is not None else unwrap(run.model)
        if not cfg.freeze_bn and dist.main:
            # Every model that is evaluated or saved; the other ranks get rank 0's statistics from the broadcast
            # before validation and from DDP's buffer broadcast at the next step.
            for m_ in dict.fromkeys([unwrap(run.model), eval_model]):
                recalibrate_bn(m_, train_ds, cfg, device)
        if val_ds is not None and ((epoch + 1) % max(1, cfg.eval_every) == 0 or epoch + 1 == cfg.epochs):
            m50, m, preds = validate(eval_model, val_ds, gt, cfg, dist, device, channels_last=run.channels_last)
            n_val = len(preds)
        log = EpochLog(epoch=epoch + 1, lr=run.opt.param_groups[0]["lr"],
                       loss=sums.get("loss", 0.0) / max(1, n_iter),
                       parts={k: v / max(1, n_iter) for k, v in sums.items() if k != "loss"},
                       images_per_s=n_img * dist.world / max(seconds, 1e-9), seconds=seconds,
                       memory_mb=_memory_mb(device), map50=m50, map=m, val_images=n_val)
        history.append(log)
        result.epochs_run += 1
        score = m50 if m50 is not None else -log.loss
        improved = best is None or score > best
        if improved:
            best = score
        if dist.main:
            state = training_state(cfg=cfg, model=run.model, opt=run.opt, sched=run.sched, plan=run.plan,
                                   ema=run.ema, epoch=epoch, best=best, classes=classes, world=dist.world,
                                   category_ids=category_ids)
            save_checkpoint(out / "last.pt", state)
            if cfg.save_period > 0 and (epoch + 1) % cfg.save_period == 0:
                save_checkpoint(out / f"epoch{epoch + 1}.pt", state)
            if improved:
                best_state = dict(state)
                if run.ema is not None:
                    best_state["model"] = run.ema.module.state_dict()  # what was evaluated
                save_checkpoint(out / "best.pt", best_state)
            _append_csv(out / "results.csv", log.row())
            if writer is not None:
                for k, v in log.row().items():
                    if k != "epoch" and v != "":
                        writer.add_scalar(k, float(v), log.epoch)
            if on_epoch:
                on_epoch(log)
    if writer is not None:
        writer.close()
    result.history = history
    result.best_map50 = best if (best is not None and val_ds is not None) else None
    return result


def _train_epoch(run: _Run, train_ds, epoch: int, progress) -> tuple[dict[str, float], int, int, float]:
    """One epoch of optimizer steps; returns the loss sums and the step count (both summed over every rank), this
    rank's image count and the seconds taken."""
    cfg, dist, device, model, train_model = run.cfg, run.dist, run.device, run.model, run.train_model
    # The loader's random stream (augmentation with -j 0) from (seed, rank, epoch), the model's from each
    # micro-batch's slot below: a resumed run draws what the uninterrupted one drew. No RNG state to checkpoint.
    torch.manual_seed(stream_seed(cfg.seed, dist.rank, epoch))
    train_model.train()
    if cfg.freeze_bn:
        freeze_batchnorm(model)
    loader = epoch_loader(train_ds, cfg, dist, train=True, epoch=epoch)
    if run.sched.last_epoch != epoch * run.plan.iters_per_epoch:  # a keep-aspect epoch ran more or fewer steps
        run.sched = run.plan.scheduler(run.opt, epoch * run.plan.iters_per_epoch)
    acc = max(1, cfg.accumulate)
    stage = f"epoch {epoch + 1}/{cfg.epochs}"
    if progress and dist.main:
        progress(stage, 0, len(loader))
    sums: dict[str, float] = {}
    n_iter = n_img = 0
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for it, (images, targets) in enumerate(loader):
        images, targets = model_inputs(images, targets, device, channels_last=run.channels_last)
        run.opt.zero_grad(set_to_none=True)
        micro = micro_batches(images, targets, acc)
        step_sums: dict[str, float] = {}
        for j, (mimages, mtargets) in enumerate(micro):
            # The model's own randomness (Faster R-CNN's anchor and proposal sampling) from the micro-batch's slot
            # in the global batch (rank + world x j): the same draws however the global batch is split.
            torch.manual_seed(stream_seed(cfg.seed, epoch, it, dist.rank + dist.world * j))
            # Only the last micro-batch all-reduces: the others accumulate locally (DDP's no_sync).
            sync = j == len(micro) - 1 or dist.world <= 1 or not hasattr(train_model, "no_sync")
            ctx = torch.autocast(device.type, dtype=run.amp_dtype) if run.amp_dtype else contextlib.nullcontext()
            with (contextlib.nullcontext() if sync else train_model.no_sync()), ctx, _one_image_batches(cfg):
                losses = train_model(mimages, mtargets)
            loss = sum(losses.values())
            # The mean over micro-batches, as DDP averages over ranks (a power of 2 divides exactly).
            (loss / len(micro) if len(micro) > 1 else loss).backward()
            for k, v in losses.items():
                step_sums[k] = step_sums.get(k, 0.0) + float(v.detach()) / len(micro)
            step_sums["loss"] = step_sums.get("loss", 0.0) + float(loss.detach()) / len(micro)
        # A NaN/inf loss on any rank stops every rank at this step together (no rank left waiting in an all-reduce),
        # before the optimizer step: the weights and last.pt stay good. A NaN micro-batch makes its step's sum NaN.
        bad = nonfinite_losses(step_sums, dist, device)
        if bad is not None:
            bad_loss = bad.pop("loss")
            _diverged(bad, bad_loss, epoch, it, run.out)
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        run.opt.step()
        run.sched.step()
        if run.ema is not None:
            run.ema.update_parameters(model)
        for k, v in step_sums.items():
            sums[k] = sums.get(k, 0.0) + v
        n_iter += 1
        n_img += len(targets)
        if progress and dist.main:
            progress(stage, 1, None)
    seconds = time.perf_counter() - t0
    sums, n_iter = sum_over_ranks(sums, n_iter, dist, device)  # log the mean over ranks, not rank 0's shard
    return sums, n_iter, n_img, seconds


def _diverged(losses: dict[str, Any], loss, epoch: int, it: int, out: Path) -> None:
    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
    last = out / "last.pt"
    where = f"The last good checkpoint is {last}" if last.exists() else "No checkpoint was written yet"
    raise TrainingDiverged(f"loss is {float(loss.detach())} at epoch {epoch + 1}, iteration {it + 1} ({parts}); "
                           f"stopped. {where}. Try a lower --lr, a longer --warmup-epochs or --clip-grad.")


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover
        return 0.0


def _append_csv(path: Path, row: dict) -> None:
    """One row per epoch; a resumed run appends to the same file (header written once)."""
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header and header != list(row):
            row = {k: row.get(k, "") for k in header}
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
