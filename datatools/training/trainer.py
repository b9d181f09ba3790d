"""The training loop behind ``datatools train``: any dataset format in, checkpoints + a CSV log + mAP out.

Use :func:`train` with a :class:`TrainConfig`. It runs the same on one CPU, one GPU, or many GPUs/nodes under
``torchrun`` (DDP: the process group is set up from torchrun's environment variables; nothing changes for the user).

What it does, in order of an epoch: a fresh shuffled shard per rank (``DistributedSampler`` seeded by ``seed`` and the
epoch, also with one process, so ``--resume`` replays the same order), uint8 batches moved to the device and converted
there, AMP in bf16 on GPUs that support it, optional gradient accumulation, gradient clipping, an optional EMA of the
weights, a per-iteration linear warm-up then cosine (or multistep) learning rate, then every ``eval_every`` epochs the
evaluator of :mod:`datatools.metrics` on the validation split (rank 0's weights and BN statistics broadcast first,
predictions gathered from every rank, the sampler's padding duplicates removed), one CSV row, and ``last.pt`` /
``best.pt`` written atomically by rank 0 only.

The global batch is ``batch_size x world size x accumulate``. A run's sample order depends only on the seed and the
epoch, never on the world size: rank ``r`` of ``W`` reads every ``W``-th index of the epoch's permutation, and with
``accumulate=A`` the micro-batch ``j`` of one process takes every ``A``-th image of its batch. So ``W`` processes x
batch ``b`` see exactly the images of 1 process x batch ``b`` x ``accumulate W``, split the same way, and the model's
own random draws (Faster R-CNN's anchor and proposal sampling) are seeded per micro-batch slot; with ``freeze_bn`` and
no augmentation the two runs give bit-identical checkpoints (tests/test_ddp.py). The loader's augmentation stream is
seeded per (seed, rank, epoch), so it does depend on the world size.

``resize_mode="keep-aspect"`` (``--resize-mode keep-aspect``) trains the way torchvision's detection references do:
each image is resized so its shorter side is ``image_size`` (longer side at most ``image_size x 1333/800``), with no
square padding; the model's own batching pads a batch only to its largest image, and each rank batches its
``DistributedSampler`` shard by aspect-ratio group (portrait vs landscape,
:class:`~datatools.datasets.DistributedGroupedBatchSampler`: the same number of batches on every rank). The batches
then depend on the world size, so the bit-exact equality above holds for the default ``letterbox`` mode only.

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
from datatools.training.models import DEFAULT_MODEL, MODELS, RESIZE_MODES, build_model, load_weights, unwrap

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
    image_size: int = 512  # letterbox: the square side; keep-aspect: the shorter side
    resize_mode: str = "letterbox"  # letterbox | keep-aspect (see the module docstring)
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
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    freeze_bn: bool = False  # BatchNorm uses its stored statistics and is not trained
    save_period: int = 0  # also keep epoch<N>.pt every N epochs (0 = off)
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


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from ``parts`` (seed, rank, epoch, ...): neighbouring inputs give unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


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
    mode = cfg.resize_mode
    tr = (train_preset(cfg.image_size, mode=mode, dtype=None) if cfg.augment
          else eval_preset(cfg.image_size, mode=mode, dtype=None))
    ev = eval_preset(cfg.image_size, mode=mode, dtype=None)
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

    # One DistributedSampler also for a single process: its order depends only on (seed, epoch), never on the world
    # size, so --resume replays exactly, also with another number of processes.
    # * letterbox (the default): every image is letterboxed to the same square, so batches are dense tensors and
    #   aspect-ratio grouping would save no padding; without it the batches do not depend on the world size, which
    #   is what makes 2 processes equal 1 process with --accumulate 2 bit for bit (tests/test_ddp.py).
    # * keep-aspect (torchvision-style): images keep their aspect ratio and the model pads each batch to its largest
    #   image, so training batches are grouped by aspect ratio (portrait vs landscape) under the DistributedSampler:
    #   each rank groups its own shard, and every rank gets the same number of batches (the smallest count; DDP needs
    #   it). Evaluation is never grouped: every val image once, padding duplicates removed when gathered.
    # A fresh loader per epoch seeds the workers' augmentation from (seed, rank, epoch): ranks get different streams.
    bs = cfg.batch_size * (max(1, cfg.accumulate) if train else 1)
    grouped = train and cfg.resize_mode == "keep-aspect"
    loader = make_loader(ds, batch_size=bs, shuffle=train, num_workers=cfg.workers, distributed=True,
                         num_replicas=dist.world, rank=dist.rank, seed=cfg.seed * 100_003 + epoch,
                         drop_last=False, persistent_workers=False, group_by_aspect=grouped, aspect_bins=(1.0,),
                         generator=torch.Generator().manual_seed(_seed(cfg.seed, dist.rank, epoch, 1)))
    (loader.batch_sampler if grouped else loader.sampler).set_epoch(epoch)  # type: ignore[union-attr]
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


def _broadcast_state(model: nn.Module, dist: _Dist) -> None:
    """Make every rank's copy of ``model`` rank 0's, buffers included.

    DDP keeps the parameters equal, but each rank's BatchNorm layers update their running statistics from that rank's
    own batches during the last forward (DDP broadcasts buffers at the start of a forward, not after it), and an EMA
    averages those buffers per rank. Without this, rank 1 would evaluate a model that is not the one rank 0 saves.
    """
    if dist.world <= 1:
        return
    import torch.distributed as tdist

    with torch.no_grad():
        for t in model.state_dict().values():
            tdist.broadcast(t, src=0)


def validate(model: nn.Module, val_ds, gt, cfg: TrainConfig, dist: _Dist, device: torch.device, *, amp_dtype=None,
             channels_last: bool = False) -> tuple[float | None, float | None, dict]:
    """Evaluate ``model`` on ``val_ds`` over every rank: rank 0's weights are broadcast, each rank predicts its
    ``DistributedSampler`` shard, rank 0 gathers the union keyed by dataset index (the sampler's padding duplicates
    collapse) and computes the metrics. Returns ``(map50, map, predictions)`` on rank 0; the metrics are broadcast
    so every rank returns them (predictions only on rank 0)."""
    _broadcast_state(model, dist)
    vloader = _loader(val_ds, cfg, dist, train=False, epoch=0)
    preds = _gather(predict_batches(model, vloader, device, amp_dtype=amp_dtype, channels_last=channels_last), dist)
    m50 = m = None
    if dist.main:
        m50, m = evaluate_predictions(preds, val_ds, gt)
    if dist.world > 1:
        import torch.distributed as tdist

        box = [m50, m]
        tdist.broadcast_object_list(box, src=0)
        m50, m = box
    return m50, m, preds


def evaluate_checkpoint(path: str | os.PathLike, *, data: str | None = None, device: str = "auto",
                        batch_size: int | None = None, workers: int = 0) -> tuple[float, float, dict]:
    """Evaluate a training checkpoint on its validation split, as the training loop does (same presets, same
    metrics), on one process or under ``torchrun`` (then every rank takes its shard and rank 0 gets the result).
    ``data`` overrides the dataset path stored in the checkpoint. Returns ``(map50, map, predictions)``; the
    predictions are ``{dataset index: {"boxes", "scores", "labels"}}`` as :func:`predict_batches` returns them."""
    from datatools.metrics.data import load_ground_truth

    ckpt = load_checkpoint(path)
    args = dict(ckpt["args"], workers=workers, device=device)
    if data is not None:
        args["data"] = data
    if batch_size is not None:
        args["batch_size"] = batch_size
    cfg = TrainConfig.from_dict(args)
    dist = _setup_distributed(resolve_device(cfg.device).type)
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
        if dist.initialized_here:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def evaluate_predictions(preds: dict, val_ds, gt) -> tuple[float, float]:
    """(VOC mAP@0.5 all-point, COCO AP@[.5:.95]) of ``preds`` (from :func:`predict_batches`) against ``gt``."""
    from datatools.metrics.data import Predictions
    from datatools.metrics.evaluate import evaluate_loaded
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
    # In this process: a training process has torch's threads (OpenMP, loader workers), which forking would not take
    # along safely.
    rep = evaluate_loaded(gt, pred, metric="all", backend="auto", workers=1)
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
    (the model, optimizer, EMA, epoch and best score are restored, the schedule continues from the epoch; the stored
    args win over ``cfg`` except for ``epochs``, which may be raised, ``workers`` and ``device``). Resuming with
    another world size keeps the global batch when it can by changing ``accumulate`` (2 processes x batch b ->
    1 process x batch b x accumulate 2, and back), and says so in the notes. ``progress(stage, advance, total)`` is
    called per iteration and ``on_epoch`` once per epoch (rank 0 only). Library code: prints nothing."""
    out = Path(cfg.out)
    ckpt = None
    pre_notes: list[str] = []
    if resume:
        last = out / "last.pt"
        if not last.is_file():
            raise UsageError(f"--resume: no {last}")
        ckpt = load_checkpoint(last)
        stored = TrainConfig.from_dict(ckpt["args"])
        cfg = TrainConfig.from_dict({**stored.to_dict(), "epochs": max(cfg.epochs, stored.epochs), "out": cfg.out,
                                     "workers": cfg.workers, "device": cfg.device})
        cfg, note = _keep_global_batch(cfg, int(ckpt.get("world_size", 1)), int(os.environ.get("WORLD_SIZE", "1")))
        if note:
            pre_notes.append(note)
    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r}: choose one of {', '.join(MODELS)}")
    if cfg.optimizer not in ("sgd", "adamw") or cfg.schedule not in ("cosine", "multistep"):
        raise UsageError("--optimizer must be sgd or adamw, --schedule cosine or multistep")
    if cfg.resize_mode not in RESIZE_MODES:
        raise UsageError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}, not {cfg.resize_mode!r}")
    if cfg.resize_mode == "keep-aspect" and MODELS[cfg.model].fixed_size:
        raise UsageError(f"{cfg.model} resizes every image to a fixed square itself: use --resize-mode letterbox")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.image_size < 32 or cfg.accumulate < 1:
        raise UsageError("--epochs, --batch-size and --accumulate must be >= 1 and --image-size >= 32")
    kind = resolve_device(cfg.device).type
    dist = _setup_distributed(kind)
    device = resolve_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # The run's randomness is seeded inside fork_rng: the caller's global RNG state is restored afterwards.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            result = _train(cfg, ckpt, dist, device, progress, on_epoch)
            result.notes[:0] = pre_notes
            if dist.world > 1:
                import torch.distributed as tdist

                tdist.barrier()  # every rank leaves after rank 0's last checkpoint is on disk
            return result
        finally:
            if dist.initialized_here:
                import torch.distributed as tdist

                tdist.destroy_process_group()


def _keep_global_batch(cfg: TrainConfig, old_world: int, new_world: int) -> tuple[TrainConfig, str | None]:
    """On ``--resume`` with another world size, pick ``accumulate`` so that batch x world x accumulate stays the
    same; when it cannot (e.g. 2 -> 3 processes) keep ``accumulate`` and report the new global batch."""
    if old_world == new_world:
        return cfg, None
    old_global = cfg.batch_size * old_world * cfg.accumulate
    if (old_world * cfg.accumulate) % new_world == 0:
        acc = old_world * cfg.accumulate // new_world
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "accumulate": acc})
        return cfg, (f"resumed on {new_world} process(es) instead of {old_world}: accumulate {acc} keeps the global "
                     f"batch at {old_global}")
    return cfg, (f"resumed on {new_world} process(es) instead of {old_world}: the global batch changes from "
                 f"{old_global} to {cfg.batch_size * new_world * cfg.accumulate}")


def _micro_batches(images, targets: list, n: int) -> list[tuple[Any, list]]:
    """Split one loader batch into ``n`` micro-batches the way ``DistributedSampler`` splits over ``n`` ranks:
    micro-batch ``j`` takes every ``n``-th image starting at ``j``. Empty ones are left out."""
    if n <= 1:
        return [(images, targets)]
    out = []
    for j in range(n):
        t = targets[j::n]
        if t:
            out.append((images[j::n], t))
    return out


def _train(cfg: TrainConfig, ckpt: dict | None, dist: _Dist, device: torch.device, progress, on_epoch) -> TrainResult:
    from datatools.metrics.data import load_ground_truth

    torch.manual_seed(cfg.seed + dist.rank)  # the initial weights: rank 0's are broadcast by DDP
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

    model = build_model(cfg.model, len(classes), image_size=cfg.image_size, resize_mode=cfg.resize_mode)
    if cfg.weights and ckpt is None:
        counts = load_weights(model, cfg.weights)
        notes.append(f"weights {cfg.weights}: {counts['loaded']} tensors loaded, {counts['skipped']} skipped (shape), "
                     f"{counts['missing']} left as initialized")
    if cfg.freeze_bn:
        notes.append(f"--freeze-bn: {freeze_batchnorm(model)} BatchNorm layers frozen")
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
    acc = max(1, cfg.accumulate)
    # Optimizer steps per epoch for this world size. The schedule is a function of (epoch, step in the epoch), so a
    # run resumed with another world size continues at the same fraction of the run. With keep-aspect grouping an
    # epoch may run a step or two more or fewer than this nominal count (one short batch per group); the step is
    # reset at each epoch's start, so the schedule never drifts.
    iters_per_epoch = math.ceil(math.ceil(len(train_ds) / dist.world) / (cfg.batch_size * acc))
    total = iters_per_epoch * cfg.epochs
    warmup = min(int(cfg.warmup_epochs * iters_per_epoch), max(0, total - 1))

    def set_lr(step: int) -> None:
        f = lr_factor(step, total=total, warmup=warmup, schedule=cfg.schedule, min_ratio=cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * f

    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    start_epoch, best, history = 0, None, []
    if ckpt is not None:
        unwrap(model).load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        start_epoch = int(ckpt["epoch"]) + 1
        best = ckpt.get("best_map50")
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
        # The loader's random stream (augmentation with -j 0) from (seed, rank, epoch), the model's from each
        # micro-batch's slot below: a resumed run draws what the uninterrupted one drew. No RNG state to checkpoint.
        torch.manual_seed(_seed(cfg.seed, dist.rank, epoch))
        train_model.train()
        if cfg.freeze_bn:
            freeze_batchnorm(model)
        loader = _loader(train_ds, cfg, dist, train=True, epoch=epoch)
        step = epoch * iters_per_epoch
        set_lr(step)
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
            opt.zero_grad(set_to_none=True)
            micro = _micro_batches(images, targets, acc)
            step_sums: dict[str, float] = {}
            for j, (mimages, mtargets) in enumerate(micro):
                # The model's own randomness (Faster R-CNN's anchor and proposal sampling) from the micro-batch's slot
                # in the global batch (rank + world x j): the same draws however the global batch is split.
                torch.manual_seed(_seed(cfg.seed, epoch, it, dist.rank + dist.world * j))
                # Only the last micro-batch all-reduces: the others accumulate locally (DDP's no_sync).
                sync = j == len(micro) - 1 or dist.world <= 1 or not hasattr(train_model, "no_sync")
                ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
                with (contextlib.nullcontext() if sync else train_model.no_sync()), ctx:
                    losses = train_model(list(mimages) if isinstance(mimages, torch.Tensor) else mimages, mtargets)
                loss = sum(losses.values())
                if not torch.isfinite(loss):
                    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    raise TrainingDiverged(
                        f"loss is {float(loss.detach())} at epoch {epoch + 1}, iteration {it + 1} ({parts}); stopped. "
                        f"{'The last good checkpoint is ' + str(out / 'last.pt') if (out / 'last.pt').exists() else 'No checkpoint was written yet'}. "
                        "Try a lower --lr, a longer --warmup-epochs or --clip-grad.")
                # The mean over micro-batches, as DDP averages over ranks (a power of 2 divides exactly).
                (loss / len(micro) if len(micro) > 1 else loss).backward()
                for k, v in losses.items():
                    step_sums[k] = step_sums.get(k, 0.0) + float(v.detach()) / len(micro)
                step_sums["loss"] = step_sums.get("loss", 0.0) + float(loss.detach()) / len(micro)
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            step += 1
            set_lr(step)
            if ema is not None:
                ema.update(model)
            for k, v in step_sums.items():
                sums[k] = sums.get(k, 0.0) + v
            n_iter += 1
            n_img += len(targets)
            if progress and dist.main:
                progress(stage, 1, None)
        seconds = time.perf_counter() - t0
        if dist.world > 1:  # log the mean over ranks, not rank 0's shard
            import torch.distributed as tdist

            keys = list(sums)  # the same order on every rank (the model's loss dict), and as with one process
            t = torch.tensor([sums[k] for k in keys] + [float(n_iter)], dtype=torch.float64, device=device)
            tdist.all_reduce(t)
            sums = {k: float(v) for k, v in zip(keys, t[:-1])}
            n_iter = int(t[-1])
        m50 = m = None
        n_val = 0
        eval_model = ema.module if ema is not None else unwrap(model)
        if val_ds is not None and ((epoch + 1) % max(1, cfg.eval_every) == 0 or epoch + 1 == cfg.epochs):
            m50, m, preds = validate(eval_model, val_ds, gt, cfg, dist, device, amp_dtype=amp_dtype,
                                     channels_last=use_cl)
            n_val = len(preds)
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
                     "scheduler": {"step": step, "iters_per_epoch": iters_per_epoch, "total": total},
                     "scaler": None,  # bf16 autocast needs no GradScaler
                     "ema": ema.state_dict() if ema is not None else None, "epoch": epoch, "best_map50": best,
                     "args": cfg.to_dict(), "classes": list(classes), "model_name": cfg.model,
                     "world_size": dist.world, "global_batch": cfg.batch_size * dist.world * acc}
            save_checkpoint(out / "last.pt", state)
            if cfg.save_period > 0 and (epoch + 1) % cfg.save_period == 0:
                save_checkpoint(out / f"epoch{epoch + 1}.pt", state)
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
