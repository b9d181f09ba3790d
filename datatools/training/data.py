"""The trainer's datasets and loaders, built on :mod:`datatools.datasets`, and the seeds of its random streams.

Use :func:`build_datasets` for a run's train and validation datasets (uint8 out, converted on the device),
:func:`epoch_loader` for one epoch's loader of one rank and :func:`model_inputs` for what a detector takes of one of its
batches. :func:`stream_seed` mixes (seed, rank, epoch, ...) into a seed, so that a resumed run draws what the
uninterrupted one drew without storing any RNG state.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from datatools.core.errors import UsageError
from datatools.training.catalog import MODELS
from datatools.training.config import TrainConfig, resolve_defaults
from datatools.training.distributed import DistContext


def stream_seed(*parts: int) -> int:
    """A 63-bit seed mixed from ``parts`` (seed, rank, epoch, ...): neighbouring inputs give unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def build_datasets(cfg: TrainConfig):
    """``(data, train_ds, val_ds, val_split, note)`` through :mod:`datatools.datasets` (uint8 out, converted on the
    device). ``val_ds`` is ``None`` when the data has no ``cfg.val_split``; a missing train split is a usage error.
    ``note`` says which split trains and which validates, with their sizes (a run on trainval or train2017 says so)."""
    from datatools.datasets import DetectionDataset
    from datatools.formats.common import DEFAULT_SPLIT, split_named
    from datatools.datasets.transforms import eval_preset, train_preset
    from datatools.ops.convert import read_source

    cfg, _ = resolve_defaults(cfg)  # a config made in code may leave the model and size to the device
    # The one read rule of every command: the format detected as convert and check detect it, an empty or wrong
    # folder an error saying what was looked for; VOC: its split lists as every command reads them, filtered below.
    data = read_source(cfg.data, cfg.format)
    splits = set(data.splits)
    if splits == {DEFAULT_SPLIT}:  # a folder without splits (YOLO images/ + labels/): train on all of it
        splits = set()
    train_split, val_split = (split_named(name, splits) for name in (cfg.train_split, cfg.val_split))
    if cfg.train_split and train_split is None and splits:
        raise UsageError(f"{cfg.data}: no split {cfg.train_split!r} (found: {', '.join(sorted(splits))}); "
                         "pass --train-split")
    if cfg.val_split not in (None, "", "val") and val_split is None:  # asked by name: never a quiet run without one
        raise UsageError(f"{cfg.data}: no split {cfg.val_split!r} (found: {', '.join(sorted(splits)) or 'none'}); "
                         "pass --val-split, or --val-split '' to train without validation")
    if not splits and cfg.train_split not in (None, "train", DEFAULT_SPLIT):  # named, not the default: not ignored
        raise UsageError(f"{cfg.data}: no split {cfg.train_split!r}: the dataset has no splits, and trains on all "
                         "of its images without --train-split")
    if train_split == "trainval" != cfg.train_split and val_split:  # VOC's trainval holds the val images
        raise UsageError(f"{cfg.data}: no split {cfg.train_split!r}, and trainval holds the {val_split!r} images; "
                         "pass --train-split")
    # the images this run reads (not a test split's), their pixels checked before the first epoch
    data, left_out = _decodable(data, {train_split, val_split} - {None} if splits else set())
    ev = eval_preset(cfg.image_size, mode=cfg.resize_mode, dtype=None)
    tr = train_preset(cfg.image_size, mode=cfg.resize_mode, dtype=None) if cfg.augment else ev

    def dataset(split: str | None, transforms, keep_crowd: bool) -> DetectionDataset:  # labels 1..K: 0 background
        ds = DetectionDataset(data, splits=split, transforms=transforms, keep_crowd=keep_crowd)
        # --limit: splits= too, so image ids stay those of the split (voc2coco's); only the selection shrinks
        return DetectionDataset(data, splits=split, ids=list(ds.image_ids[:cfg.limit]), transforms=transforms,
                                keep_crowd=keep_crowd) if cfg.limit else ds

    # A COCO crowd region is no object to learn (torchvision's references and detectron2 train without them); the
    # evaluation ignores detections in it.
    train_ds = dataset(train_split, tr, keep_crowd=False)
    val_ds = dataset(val_split, ev, keep_crowd=True) if val_split else None

    def size(ds) -> str:
        return f"{len(ds)} image{'s' * (len(ds) != 1)}"

    note = (f"trains on {f'split {train_split!r}' if train_split else 'every image'} ({size(train_ds)}), "
            + (f"validates on split {val_split!r} ({size(val_ds)})" if val_ds is not None else "no validation")
            + left_out)
    return data, train_ds, val_ds, val_split, note


def _decodable(data, splits: set[str]):
    """``data`` without the images of ``splits`` (every image when empty) whose pixels cannot be used (a download
    cut short, a float TIFF, one past PIL's pixel limit), and a note naming them: an epoch stopped at the first one,
    hours in, with no checkpoint. The test ``check`` makes (:func:`~datatools.core.images.pixels_error`): the header,
    and a JPEG or PNG that ends whole taken as whole, any other file decoded once."""
    from datatools.core.images import pixels_error
    from datatools.core.parallel import map_items

    paths = [r.image_path for r in data.images if r.image_path and (not splits or splits.intersection(r.splits))]
    bad = {p: why for p, why in zip(paths, map_items(pixels_error, paths, threads=True)) if why}
    if not bad:
        return data, ""
    first = next(iter(bad))
    return (data.evolve(images=tuple(r for r in data.images if r.image_path not in bad)),
            f"; {len(bad)} image(s) left out, which cannot be decoded (e.g. {first}: {bad[first]}; datatools check "
            "lists them)")


def epoch_loader(ds, cfg: TrainConfig, dist: DistContext, *, train: bool, epoch: int):
    """Rank ``dist.rank``'s loader for ``epoch`` (``train=False``: every validation image once over all ranks).

    One DistributedSampler also for a single process: its order depends only on (seed, epoch), never on the world
    size, so --resume replays exactly, also with another number of processes.

    * letterbox (the default): every image is letterboxed to the same square, so batches are dense tensors and
      aspect-ratio grouping would save no padding; without it the batches do not depend on the world size, which is
      what makes 2 processes equal 1 process with --accumulate 2 bit for bit (tests/test_ddp.py).
    * keep-aspect (torchvision-style): images keep their aspect ratio and the model pads each batch to its largest
      image, so training batches are grouped by aspect ratio (portrait vs landscape) under the DistributedSampler:
      each rank groups its own shard, and every rank gets the same number of batches (the smallest count; DDP needs
      it). Evaluation is never grouped: every val image once, padding duplicates removed when gathered.

    A fresh loader per epoch seeds the workers' augmentation from (seed, epoch) and the rank (make_loader): ranks get
    different streams.
    """
    from datatools.datasets import make_loader, set_epoch

    bs = cfg.batch_size * (max(1, cfg.accumulate) if train else 1)
    grouped = train and cfg.resize_mode == "keep-aspect"
    # a model that trains BatchNorm (SSDlite) leaves out a last training batch that splits into micro-batches of one
    # image (9 images, -b 4; or 10 at -b 4 --accumulate 2): it cannot train on one (the order changes each epoch)
    per_rank = -(-len(ds) // dist.world)
    left = per_rank % bs
    one_left = per_rank > bs and left > 0 and left // max(1, cfg.accumulate) < 2
    loader = make_loader(ds, batch_size=bs, shuffle=train, num_workers=cfg.workers, distributed=True,
                         num_replicas=dist.world, rank=dist.rank, seed=cfg.seed * 100_003 + epoch,
                         drop_last=train and one_left and getattr(MODELS.get(cfg.model or ""), "batch_norm", False),
                         persistent_workers=False, group_by_aspect=grouped, aspect_bins=(1.0,))
    set_epoch(loader, epoch)
    return loader


def micro_batches(images, targets: list, n: int) -> list[tuple[Any, list]]:
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


def model_inputs(images, targets: list | None, device: torch.device, *, channels_last: bool = False
                 ) -> tuple[list[torch.Tensor], list[dict] | None]:
    """A loader batch as a torchvision detector takes it: images on ``device`` (uint8 converted to float 0-1 there),
    as a list of ``(3, H, W)`` tensors, and the targets' ``boxes`` and ``labels`` only (the other keys are for the
    evaluator, not the model) on ``device``. ``targets=None`` (inference: the loader's targets stay on the CPU to
    map boxes back) gives ``None``. ``channels_last`` lays a dense batch out NHWC before it is split into images.
    Used by the training step, BatchNorm re-estimation and prediction alike."""
    from datatools.datasets import to_device

    kept = [] if targets is None else [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    images, kept = to_device(images, kept, device)
    if channels_last and isinstance(images, torch.Tensor):
        images = images.contiguous(memory_format=torch.channels_last)
    return list(images), (None if targets is None else kept)
