"""``make_loader``: a DataLoader for detection with sensible defaults."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from datatools.datasets.collate import detection_collate

__all__ = ["default_num_workers", "make_loader", "set_epoch", "to_device"]


def default_num_workers(batch_size: int) -> int:
    """``min(usable CPUs, batch_size, 8)``: more workers than images per batch only adds memory."""
    from datatools.core.parallel import default_workers

    return max(0, min(default_workers(), batch_size, 8))


def make_loader(dataset, *, batch_size: int = 8, shuffle: bool = True, collate_fn: Callable = detection_collate,
                num_workers: int | None = None, pin_memory: bool | None = None, persistent_workers: bool | None = None,
                drop_last: bool = False, group_by_aspect: bool = False, aspect_bins: Sequence[float] = (1.0,),
                distributed: bool = False, num_replicas: int | None = None, rank: int | None = None, seed: int = 0,
                prefetch_factor: int | None = None, multiprocessing_context: str | None = None,
                **loader_options: Any) -> DataLoader:
    """Build a DataLoader for a detection dataset.

    Defaults: ``num_workers=min(cpus, batch_size, 8)``, ``pin_memory`` when CUDA is available,
    ``persistent_workers`` when there are workers, :func:`~datatools.datasets.detection_collate`.

    * ``shuffle``: random order (from ``seed``; the global RNG is never touched). Use ``shuffle=False`` for
      evaluation.
    * ``group_by_aspect``: batches of similar aspect ratio (:class:`~datatools.datasets.GroupedBatchSampler`,
      bins ``aspect_bins`` on width/height); less padding with :func:`~datatools.datasets.padded_collate`.
    * ``distributed``: shard with ``DistributedSampler`` (``num_replicas``/``rank`` default to the process group).
      Call ``loader.batch_sampler.set_epoch(epoch)`` (grouped) or ``loader.sampler.set_epoch(epoch)`` every epoch;
      :func:`set_epoch` does the right one.
    * ``multiprocessing_context``: ``"spawn"`` or ``"forkserver"`` when the parent process holds CUDA state.

    The per-worker RNG is seeded by the DataLoader from ``seed`` (and the rank, under ``distributed``), so v2 random
    transforms differ across workers and ranks and are reproducible across runs. With ``num_workers=0`` they run in
    this process and draw from torch's global generator (torchvision's v2 transforms take none), which this function
    leaves alone: call ``torch.manual_seed`` first for repeatable augmentation there (the order of the batches is
    ``seed``'s either way, persistent workers or not). PyTorch already runs each worker with
    ``torch.set_num_threads(1)``.

    Fastest: uint8 images through the loader, converted on the GPU by :func:`to_device`: float32 is 4x the bytes, and
    converting costs a worker ~0.25 ms per 512 px image (benchmarks/bench_loader.py; docs/training.md#fast-loading).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    if num_workers is None:
        num_workers = default_num_workers(batch_size)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    # Two generators: the DataLoader draws its workers' base seed from its own on every new iterator (each epoch, or
    # once with persistent workers), which moved a shared sampler generator's order with it. A generator= passed in
    # drives the order.
    order = loader_options.pop("generator", None) or torch.Generator().manual_seed(int(seed))
    # Each rank its own augmentation stream: one seed on every rank (the DistributedSampler needs it) gave every
    # rank's workers the same draws, flips, crops and Mosaic partners alike
    rank_now = (rank if rank is not None else _group_rank()) if distributed else 0
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), rank_now]).generate_state(1)[0])
                                              if rank_now else int(seed))
    opts: dict[str, Any] = dict(num_workers=num_workers, collate_fn=collate_fn, pin_memory=pin_memory,
                                persistent_workers=persistent_workers and num_workers > 0, generator=generator)
    if num_workers > 0:
        if prefetch_factor is not None:
            opts["prefetch_factor"] = prefetch_factor
        if multiprocessing_context is not None:
            opts["multiprocessing_context"] = multiprocessing_context
    opts.update(loader_options)
    if "batch_sampler" in opts:  # the caller's own batches (a class-balanced sampler): DataLoader's options as they are
        if group_by_aspect or distributed:
            raise ValueError("batch_sampler= makes the batches: it cannot be combined with group_by_aspect or "
                             "distributed (shard inside it)")
        return DataLoader(dataset, **opts)
    if distributed and "sampler" in opts:
        raise ValueError("sampler= and distributed=True: distributed makes a DistributedSampler; pass a sampler "
                         "that shards itself without distributed=True")
    if group_by_aspect:
        from datatools.datasets.samplers import DistributedGroupedBatchSampler, GroupedBatchSampler, aspect_ratio_groups

        groups = aspect_ratio_groups(dataset, aspect_bins)
        if distributed:
            bs = DistributedGroupedBatchSampler(dataset, groups, batch_size, num_replicas=num_replicas, rank=rank,
                                                shuffle=shuffle, seed=seed, drop_last=drop_last)
        else:
            sampler = RandomSampler(dataset, generator=order) if shuffle else SequentialSampler(dataset)
            bs = GroupedBatchSampler(sampler, groups, batch_size, drop_last=drop_last)
        return DataLoader(dataset, batch_sampler=bs, **opts)
    if distributed:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **opts)
    if shuffle and "sampler" not in opts:
        opts["sampler"] = RandomSampler(dataset, generator=order)
    return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, **opts)


def _group_rank() -> int:
    """This process's rank in the default process group (0 without one), as DistributedSampler takes it."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler (and a :class:`~datatools.datasets.transforms.MosaicDataset`) the epoch number.

    Needed every epoch under ``distributed=True`` so shuffling differs between epochs.
    """
    for obj in (loader.batch_sampler, loader.sampler, loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def to_device(images, targets, device: torch.device | str, *, dtype: torch.dtype | None = torch.float32,
              non_blocking: bool = True):
    """Move a :func:`~datatools.datasets.detection_collate` batch to ``device``; uint8 images become ``dtype`` in
    0-1 there (``dtype=None`` keeps them as they are).

    Use it in the training step with loaders whose presets end uint8 (``dtype=None``): the conversion runs on the
    GPU, where it is free, instead of in the workers. ``images`` is a batch tensor or a list of tensors; ``targets``
    a list of dicts whose tensors are moved (other values are kept).
    """

    def image(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=non_blocking)
        if dtype is not None and not x.is_floating_point():
            x = x.to(dtype).div_(255)
        return x

    out_images = image(images) if isinstance(images, torch.Tensor) else [image(x) for x in images]
    out_targets = [{k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                    for k, v in t.items()} for t in targets]
    return out_images, out_targets
