"""The training loop behind ``datatools train``: any dataset format in, checkpoints + a CSV log + mAP out.

Use :func:`train` with a :class:`TrainConfig`. It runs the same on one CPU, one GPU, or many GPUs/nodes under
``torchrun`` (DDP: the process group is set up from torchrun's environment variables; nothing changes for the user).

What it does, in order of an epoch: a fresh shuffled shard per rank (``DistributedSampler`` seeded by ``seed`` and the
epoch, also with one process, so ``--resume`` replays the same order), uint8 batches moved to the device and converted
there, AMP in bf16 on GPUs that support it, gradient clipping, an optional EMA of the weights, a per-iteration
linear warm-up then cosine (or multistep) learning rate, then every ``eval_every`` epochs the evaluator of
:mod:`datatools.metrics` on the validation split (predictions gathered from every rank, the sampler's padding
duplicates removed), one CSV row, and ``last.pt`` / ``best.pt`` written atomically.

A NaN or inf loss stops the run with :class:`TrainingDiverged`; checkpoints are written only at the end of an epoch,
so the last good ``last.pt`` is left as it was.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from datatools.core.boxes import xyxy_to_xywh_array
from datatools.core.errors import DatatoolsError, UsageError
from datatools.core.io import atomic_write
from datatools.training.models import DEFAULT_MODEL, MODELS, build_model, load_weights, unwrap

ProgressFn = Callable[[str, int, "int | None"], None]


class TrainingDiverged(DatatoolsError):
    """The loss became NaN or inf. The message says where; the last checkpoint on disk is the last good one."""


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a run. Stored in the checkpoints (``args``) so that ``--resume`` and ``predict`` know it."""

    data: str
    out: str = "runs/train"
    format: str = "voc"
    train_split: str | None = "train"
    val_split: str | None = "val"
    model: str = DEFAULT_MODEL
    weights: str | None = None
    image_size: int = 512
    epochs: int = 20
    batch_size: int = 8
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | multistep
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    clip_grad: float = 10.0
    ema_decay: float = 0.0  # 0 = off
    eval_every: int = 1
    workers: int = 2
    device: str = "auto"  # auto | cuda | cpu
    amp: bool = True  # bf16 autocast where the GPU supports it
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    augment: bool = True
    tensorboard: bool = False
    limit: int | None = None  # train on the first N images only (smoke tests)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class EpochLog:
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


# --------------------------------------------------------------------------------------------------- setup

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_kind: str) -> _Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; start the process group from them (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    d = _Dist(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        d.initialized_here = True
    return d


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is a usage error."""
    if device not in ("auto", "cuda", "cpu"):
        raise UsageError(f"--device must be auto, cuda or cpu, not {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but CUDA is not available")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: norm layers' parameters and every bias (1-D tensors) get none."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Linear warm-up from 0.1% to 1 over ``warmup`` steps, then cosine down to ``min_ratio`` (or x0.1 at 2/3 and
    8/9 of the run for ``multistep``)."""
    if warmup > 0 and step < warmup:
        return 1e-3 + (1 - 1e-3) * step / warmup
    if schedule == "multistep":
        return 0.1 ** sum(step >= total * f for f in (2 / 3, 8 / 9))
    t = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class ModelEMA:
    """Exponential moving average of the weights (and BN buffers), with a warm-up of the decay so early, poor
    weights fade fast: ``decay * (1 - exp(-updates / 2000))``. Evaluate with :attr:`module` when enabled."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 2000))
        src = unwrap(model).state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to memory, then an atomic replace: a crash never leaves a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A datatools checkpoint, loaded with ``weights_only=True`` (plain containers, tensors and numbers only)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"{path}: not a loadable checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "args" not in ckpt:
        raise UsageError(f"{path}: not a datatools checkpoint (expected 'model' and 'args')")
    return ckpt


# --------------------------------------------------------------------------------------------------- data

def build_datasets(cfg: TrainConfig):
    """Train and validation datasets through :mod:`datatools.datasets` (uint8 out, converted on the device)."""
    from datatools.datasets import DetectionDataset
    from datatools.datasets.transforms import eval_preset, train_preset

    from datatools import formats

    mod = formats.get(cfg.format)
    read_opts: dict[str, Any] = {}
    if mod.NAME == "voc":
        read_opts["sets"] = None  # every list, then filter by split below
    data = mod.read(cfg.data, **read_opts)
    splits = set(data.splits)
    train_split = cfg.train_split if cfg.train_split in splits else None
    val_split = cfg.val_split if cfg.val_split in splits else None
    if cfg.train_split and train_split is None and splits:
        raise UsageError(f"{cfg.data}: no split {cfg.train_split!r} (found: {', '.join(sorted(splits))}); "
                         "pass --train-split")
    tr = train_preset(cfg.image_size, dtype=None) if cfg.augment else eval_preset(cfg.image_size, dtype=None)
    ev = eval_preset(cfg.image_size, dtype=None)
    train_ds = DetectionDataset(data, splits=train_split, label_offset=1, transforms=tr)
    if cfg.limit:
        train_ds = DetectionDataset(data, ids=list(train_ds.image_ids[:cfg.limit]), label_offset=1, transforms=tr)
    val_ds = None
    if val_split:
        val_ds = DetectionDataset(data, splits=val_split, label_offset=1, transforms=ev)
        if cfg.limit:
            val_ds = DetectionDataset(data, ids=list(val_ds.image_ids[:cfg.limit]), label_offset=1, transforms=ev)
    return data, train_ds, val_ds, val_split


def _loader(ds, cfg: TrainConfig, dist: _Dist, *, train: bool, epoch: int):
    from datatools.datasets import make_loader

    # One DistributedSampler also for a single process: its order depends only on (seed, epoch), so --resume
    # replays exactly; a fresh loader per epoch seeds the workers' augmentation from (seed, epoch) too.
    loader = make_loader(ds, batch_size=cfg.batch_size, shuffle=train, num_workers=cfg.workers, distributed=True,
                         num_replicas=dist.world, rank=dist.rank, seed=cfg.seed * 100_003 + epoch,
                         drop_last=False, persistent_workers=False)
    loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
    return loader


# --------------------------------------------------------------------------------------------------- eval

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


def _gather(preds: dict, dist: _Dist) -> dict:
    """Union of every rank's predictions, keyed by dataset index: the sampler's padding duplicates collapse."""
    if dist.world <= 1:
        return preds
    import torch.distributed as tdist

    parts: list = [None] * dist.world
    tdist.all_gather_object(parts, preds)
    merged: dict = {}
    for part in parts:
        for k, v in (part or {}).items():
            merged.setdefault(k, v)
    return merged


def evaluate_predictions(preds: dict, val_ds, gt) -> tuple[float, float]:
    """(VOC mAP@0.5 all-point, COCO AP@[.5:.95]) of ``preds`` (from :func:`predict_batches`) against ``gt``."""
    from datatools.metrics.data import Predictions
    from datatools.metrics.evaluate import evaluate_loaded
    from datatools.metrics.voc import BoxTable

    img, lab, box, score = [], [], [], []
    for idx, p in preds.items():
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


# --------------------------------------------------------------------------------------------------- train

def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover
        return 0.0


def train(cfg: TrainConfig, *, resume: bool = False, progress: ProgressFn | None = None,
          on_epoch: Callable[[EpochLog], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; see the module docstring. ``resume`` continues from ``out/last.pt``
    (the model, optimizer, schedule, EMA, epoch and RNG state are restored; the stored args win over ``cfg`` except
    for ``epochs``, which may be raised). ``progress(stage, advance, total)`` is called per iteration and
    ``on_epoch`` once per epoch (rank 0 only). Library code: prints nothing."""
    out = Path(cfg.out)
    ckpt = None
    if resume:
        last = out / "last.pt"
        if not last.is_file():
            raise UsageError(f"--resume: no {last}")
        ckpt = load_checkpoint(last)
        stored = TrainConfig.from_dict(ckpt["args"])
        cfg = TrainConfig.from_dict({**stored.to_dict(), "epochs": max(cfg.epochs, stored.epochs), "out": cfg.out,
                                     "workers": cfg.workers, "device": cfg.device})
    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r}: choose one of {', '.join(MODELS)}")
    if cfg.optimizer not in ("sgd", "adamw") or cfg.schedule not in ("cosine", "multistep"):
        raise UsageError("--optimizer must be sgd or adamw, --schedule cosine or multistep")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.image_size < 32:
        raise UsageError("--epochs and --batch-size must be >= 1 and --image-size >= 32")
    kind = resolve_device(cfg.device).type
    dist = _setup_distributed(kind)
    device = resolve_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # The run's randomness is seeded inside fork_rng: the caller's global RNG state is restored afterwards.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            return _train(cfg, ckpt, dist, device, progress, on_epoch)
        finally:
            if dist.initialized_here:
                import torch.distributed as tdist

                tdist.destroy_process_group()


def _train(cfg: TrainConfig, ckpt: dict | None, dist: _Dist, device: torch.device, progress, on_epoch) -> TrainResult:
    from datatools.metrics.data import load_ground_truth

    torch.manual_seed(cfg.seed + dist.rank)
    notes: list[str] = []
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data, train_ds, val_ds, val_split = build_datasets(cfg)
    classes = tuple(train_ds.classes)
    if len(train_ds) == 0:
        raise UsageError(f"{cfg.data}: no training images")
    gt = None
    if val_ds is not None and dist.main:
        gt = load_ground_truth(cfg.data, format=cfg.format, split=val_split)
    elif val_ds is None:
        notes.append(f"no {cfg.val_split!r} split: no evaluation, best.pt follows the training loss")

    model = build_model(cfg.model, len(classes), image_size=cfg.image_size)
    if cfg.weights and ckpt is None:
        counts = load_weights(model, cfg.weights)
        notes.append(f"weights {cfg.weights}: {counts['loaded']} tensors loaded, {counts['skipped']} skipped (shape), "
                     f"{counts['missing']} left as initialized")
    model.to(device)
    use_cl = cfg.channels_last and device.type == "cuda"
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if (cfg.amp and device.type == "cuda" and torch.cuda.is_bf16_supported()) else None
    if cfg.amp and device.type == "cuda" and amp_dtype is None:
        notes.append("this GPU has no bf16: AMP is off (fp32)")
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    iters_per_epoch = math.ceil(math.ceil(len(train_ds) / dist.world) / cfg.batch_size)
    total = iters_per_epoch * cfg.epochs
    warmup = min(int(cfg.warmup_epochs * iters_per_epoch), max(0, total - 1))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=total, warmup=warmup, schedule=cfg.schedule, min_ratio=cfg.min_lr_ratio))
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    start_epoch, best, history = 0, None, []
    if ckpt is not None:
        unwrap(model).load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        start_epoch = int(ckpt["epoch"]) + 1
        best = ckpt.get("best_map50")
        if ckpt.get("rng_cpu") is not None:
            torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    train_model: nn.Module = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    out = Path(cfg.out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    writer = None
    if cfg.tensorboard and dist.main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            notes.append("--tensorboard: the tensorboard package is not installed; CSV only")
    from datatools.datasets import to_device

    result = TrainResult(out=str(out), epochs_run=0, device=str(device), world_size=dist.world, classes=classes,
                         notes=notes, last=str(out / "last.pt"), best=str(out / "best.pt"), best_map50=best)
    csv_path = out / "results.csv"
    for epoch in range(start_epoch, cfg.epochs):
        train_model.train()
        loader = _loader(train_ds, cfg, dist, train=True, epoch=epoch)
        stage = f"epoch {epoch + 1}/{cfg.epochs}"
        if progress and dist.main:
            progress(stage, 0, len(loader))
        sums: dict[str, float] = {}
        n_iter = n_img = 0
        t0 = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for it, (images, targets) in enumerate(loader):
            images, targets = to_device(images, targets, device)
            if use_cl and isinstance(images, torch.Tensor):
                images = images.contiguous(memory_format=torch.channels_last)
            targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with ctx:
                losses = train_model(list(images) if isinstance(images, torch.Tensor) else images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                parts = ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
                raise TrainingDiverged(
                    f"loss is {float(loss)} at epoch {epoch + 1}, iteration {it + 1} ({parts}); stopped. "
                    f"{'The last good checkpoint is ' + str(out / 'last.pt') if (out / 'last.pt').exists() else 'No checkpoint was written yet'}. "
                    "Try a lower --lr, a longer --warmup-epochs or --clip-grad.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            n_iter += 1
            n_img += len(targets)
            if progress and dist.main:
                progress(stage, 1, None)
        seconds = time.perf_counter() - t0
        if dist.world > 1:  # log the mean over ranks, not rank 0's shard
            import torch.distributed as tdist

            keys = sorted(sums)
            t = torch.tensor([sums[k] for k in keys] + [float(n_iter)], dtype=torch.float64, device=device)
            tdist.all_reduce(t)
            sums = {k: float(v) for k, v in zip(keys, t[:-1])}
            n_iter = int(t[-1])
        m50 = m = None
        n_val = 0
        eval_model = ema.module if ema is not None else unwrap(model)
        if val_ds is not None and ((epoch + 1) % max(1, cfg.eval_every) == 0 or epoch + 1 == cfg.epochs):
            vloader = _loader(val_ds, cfg, dist, train=False, epoch=0)
            preds = predict_batches(eval_model, vloader, device, amp_dtype=amp_dtype, channels_last=use_cl)
            preds = _gather(preds, dist)
            n_val = len(preds)
            if dist.main:
                m50, m = evaluate_predictions(preds, val_ds, gt)
        if dist.world > 1:
            import torch.distributed as tdist

            box = [m50, m]
            tdist.broadcast_object_list(box, src=0)
            m50, m = box
        log = EpochLog(epoch=epoch + 1, lr=opt.param_groups[0]["lr"], loss=sums.get("loss", 0.0) / max(1, n_iter),
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
            state = {"model": unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "scaler": None,  # bf16 autocast needs no GradScaler
                     "ema": ema.state_dict() if ema is not None else None, "epoch": epoch, "best_map50": best,
                     "args": cfg.to_dict(), "classes": list(classes), "model_name": cfg.model,
                     "rng_cpu": torch.get_rng_state(),
                     "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            save_checkpoint(out / "last.pt", state)
            if improved:
                best_state = dict(state)
                if ema is not None:
                    best_state["model"] = ema.module.state_dict()  # what was evaluated
                save_checkpoint(out / "best.pt", best_state)
            _append_csv(csv_path, log.row())
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
