"""The options of a training run (:class:`TrainConfig`) and their checks.

Use :class:`TrainConfig` to describe a run for :func:`datatools.training.train`. It is stored in every checkpoint
(``args``), so that ``--resume``, ``predict`` and :func:`~datatools.training.evaluation.evaluate_checkpoint` know how
the model was trained. :func:`check_config` turns a bad option into a :class:`UsageError` before anything is built;
:func:`keep_global_batch` adapts ``accumulate`` when a run resumes on another number of processes.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields

from datatools.core.errors import UsageError
from datatools.training.catalog import DEFAULT_MODEL, MODELS, RESIZE_MODES

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "multistep")
DEFAULT_IMAGE_SIZE = 512
# Without a GPU, when neither --model nor --image-size is given: the CPU recipe (measured in docs/training.md).
CPU_MODEL = "ssdlite320_mobilenet_v3_large"
CPU_IMAGE_SIZE = 320


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a run. Stored in the checkpoints (``args``) so that ``--resume`` and ``predict`` know it."""

    data: str
    out: str = "runs/train"
    format: str = "auto"  # voc | yolo | coco, or auto: detected from data (datatools.formats.resolve)
    train_split: str | None = "train"
    val_split: str | None = "val"
    model: str | None = None  # None: DEFAULT_MODEL on a GPU, CPU_MODEL without one (resolve_defaults)
    weights: str | None = None  # a whole detector to fine-tune: torchvision weights name or local .pth (models.py)
    weights_backbone: str | None = None  # an ImageNet backbone: torchvision weights name or local .pth
    freeze_backbone: bool = False  # the backbone's trunk is not trained
    backbone_lr_mult: float = 1.0  # the trunk's learning rate as a fraction of lr
    image_size: int | None = None  # letterbox: the square side; keep-aspect: the shorter side. None: as model
    resize_mode: str = "letterbox"  # letterbox | keep-aspect (see datatools.training.loop)
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
    freeze_bn: bool | None = None  # BatchNorm uses its stored statistics and is not trained; None: when fine-tuning
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

    def __post_init__(self) -> None:
        for f in fields(self):  # a Path or a numpy number in the checkpoint's args: unloadable with weights_only=True
            value = getattr(self, f.name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, f.name, os.fspath(value))
            elif type(value).__module__ == "numpy" and hasattr(value, "item"):
                object.__setattr__(self, f.name, value.item())
        if self.freeze_bn is None:  # fine-tuning keeps the pretrained statistics, as torchvision's FrozenBatchNorm2d
            object.__setattr__(self, "freeze_bn", bool(self.weights or self.weights_backbone))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config stored in a checkpoint; keys this version does not know are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_defaults(cfg: TrainConfig, device_type: str | None = None) -> tuple[TrainConfig, str | None]:
    """``cfg`` with ``model`` and ``image_size`` filled in, and a one-line note when the CPU recipe was chosen.

    On a GPU (or when either is given) the defaults are ``DEFAULT_MODEL`` at ``DEFAULT_IMAGE_SIZE``. Without a GPU
    and with neither given, they are the CPU recipe (``CPU_MODEL`` at ``CPU_IMAGE_SIZE``): the GPU default trains
    too slowly on a CPU to be worth starting. ``device_type`` is where the run goes (``None``: ``cfg.device``
    resolved here)."""
    if cfg.model is not None and cfg.image_size is not None:
        return cfg, None
    if device_type is None:
        from datatools.training.distributed import resolve_device

        device_type = resolve_device(cfg.device).type
    note = None
    if device_type == "cpu" and cfg.model is None and cfg.image_size is None:
        # SSDlite takes letterboxed squares only, and no torchvision weights (models.resolve_weights): keep-aspect
        # or torchvision weights to fine-tune keep the GPU default model, at the CPU size
        tv_weights = bool(cfg.weights_backbone) or bool(cfg.weights and not os.path.isfile(cfg.weights))
        ssd_unfit = cfg.resize_mode != "letterbox" or tv_weights
        model = DEFAULT_MODEL if ssd_unfit and MODELS[CPU_MODEL].fixed_size else CPU_MODEL
        size = CPU_IMAGE_SIZE
        note = f"no GPU: the CPU recipe, {model} at {size} px (--model/--image-size to choose)"
    else:
        model, size = cfg.model or DEFAULT_MODEL, cfg.image_size or DEFAULT_IMAGE_SIZE
    return TrainConfig.from_dict({**cfg.to_dict(), "model": model, "image_size": size}), note


def check_config(cfg: TrainConfig) -> None:
    """Raise :class:`UsageError` for an option the run cannot honour (the CLI's choices check most of them too; this
    is for the Python API and for configs read back from a checkpoint)."""
    if cfg.model is None or cfg.image_size is None:
        cfg, _ = resolve_defaults(cfg)
    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r}: choose one of {', '.join(MODELS)}")
    if cfg.optimizer not in OPTIMIZERS or cfg.schedule not in SCHEDULES:
        raise UsageError("--optimizer must be sgd or adamw, --schedule cosine or multistep")
    if cfg.resize_mode not in RESIZE_MODES:
        raise UsageError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}, not {cfg.resize_mode!r}")
    if cfg.resize_mode == "keep-aspect" and MODELS[cfg.model].fixed_size:
        raise UsageError(f"{cfg.model} resizes every image to a fixed square itself: use --resize-mode letterbox")
    if not cfg.backbone_lr_mult >= 0:
        raise UsageError(f"--backbone-lr-mult must be >= 0, not {cfg.backbone_lr_mult}")
    rates = {"--lr": cfg.lr, "--weight-decay": cfg.weight_decay, "--warmup-epochs": cfg.warmup_epochs,
             "--min-lr-ratio": cfg.min_lr_ratio, "--clip-grad": cfg.clip_grad, "--ema": cfg.ema_decay}
    bad = next((k for k, v in rates.items() if not (0 <= v < math.inf) or (k == "--lr" and not v > 0)), None)
    if bad:  # nan passes every comparison the optimizer and schedule make: a run of nan losses
        raise UsageError(f"{bad} must be a finite number >= 0 (--lr > 0), not {rates[bad]}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.image_size < 32 or cfg.accumulate < 1:
        raise UsageError("--epochs, --batch-size and --accumulate must be >= 1 and --image-size >= 32")
    from datatools.core.paths import check_output_dir

    check_output_dir(cfg.out, [cfg.data])  # checkpoints never land inside the dataset


def keep_global_batch(cfg: TrainConfig, old_world: int, new_world: int) -> tuple[TrainConfig, str | None]:
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
