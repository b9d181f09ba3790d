"""Batch samplers that group images of similar aspect ratio, so padded batches waste little space.

Use :class:`GroupedBatchSampler` with a single process and :class:`DistributedGroupedBatchSampler` under DDP
(``torchrun``); :func:`datatools.datasets.make_loader` picks one for you with ``group_by_aspect=True``.
Group ids come from the annotations (:func:`aspect_ratio_groups`), so no image is decoded to build them.
"""
from __future__ import annotations

import bisect
from collections import Counter
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler, Sampler

__all__ = ["DistributedGroupedBatchSampler", "GroupedBatchSampler", "aspect_ratio_groups"]


def aspect_ratio_groups(dataset_or_ratios, bins: Sequence[float] = (1.0,)) -> list[int]:
    """Group id per image from width/height: the number of ``bins`` boundaries below the ratio.

    The default ``(1.0,)`` gives two groups, portrait (0) and landscape or square (1). ``dataset_or_ratios`` is a
    :class:`~datatools.datasets.DetectionDataset` (ratios from annotations, no decoding), a ``Subset`` or
    ``ConcatDataset`` of such datasets (``random_split`` makes Subsets), or a sequence of ratios.
    """
    ratios = _ratios(dataset_or_ratios)
    edges = sorted(float(b) for b in bins)
    return [bisect.bisect_right(edges, float(r)) for r in np.asarray(ratios, dtype=np.float64)]


def _ratios(data) -> np.ndarray:
    from torch.utils.data import ConcatDataset, Dataset, Subset

    if hasattr(data, "aspect_ratios"):
        return np.asarray(data.aspect_ratios(), dtype=np.float64)
    if isinstance(data, Subset):
        return _ratios(data.dataset)[np.asarray(data.indices, dtype=np.int64)]
    if isinstance(data, ConcatDataset):
        return np.concatenate([_ratios(d) for d in data.datasets])
    if isinstance(data, Dataset):  # iterating it would decode every image
        raise TypeError(f"cannot tell the aspect ratios of a {type(data).__name__} without decoding it: pass a "
                        "DetectionDataset, a Subset or ConcatDataset of them, or the ratios")
    return np.asarray(data, dtype=np.float64)


def _grouped_batches(indices: Sequence[int], group_ids: Sequence[int], batch_size: int,
                     drop_last: bool) -> list[list[int]]:
    """Batches in sampler order: a batch is emitted as soon as its group has ``batch_size`` indices; leftovers
    (one incomplete batch per group at most) come at the end unless ``drop_last``."""
    buffers: dict[int, list[int]] = {}
    out: list[list[int]] = []
    for idx in indices:
        g = group_ids[idx]
        buf = buffers.setdefault(g, [])
        buf.append(int(idx))
        if len(buf) == batch_size:
            out.append(buf)
            buffers[g] = []
    if not drop_last:
        out.extend(buf for _, buf in sorted(buffers.items()) if buf)
    return out


class GroupedBatchSampler(Sampler[list[int]]):
    """Yield batches whose images all share a group id (e.g. an aspect-ratio bin).

    ``sampler`` sets the order (``RandomSampler`` for training); each batch holds indices from one group only.
    The last batch of each group may be smaller unless ``drop_last``. Pass it to a DataLoader as ``batch_sampler``.
    Call :meth:`set_epoch` each epoch when the inner sampler has one (``DistributedSampler``).
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], group_ids: Sequence[int], batch_size: int, *,
                 drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.sampler = sampler
        self.group_ids = [int(g) for g in group_ids]
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        return _grouped_batches(list(iter(self.sampler)), self.group_ids, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        # Group sizes are the same for every permutation of the same indices, so this count is exact. The sampler
        # runs on saved random states (its generator's and torch's): len() must not change the next epoch's order.
        gen = getattr(self.sampler, "generator", None)
        state = gen.get_state() if isinstance(gen, torch.Generator) else None
        with torch.random.fork_rng(devices=[]):
            counts = Counter(self.group_ids[idx] for idx in iter(self.sampler))
        if state is not None:
            gen.set_state(state)
        if self.drop_last:
            return sum(c // self.batch_size for c in counts.values())
        return sum(-(-c // self.batch_size) for c in counts.values())


class DistributedGroupedBatchSampler(GroupedBatchSampler):
    """:class:`GroupedBatchSampler` over a ``DistributedSampler`` that gives every rank the SAME number of batches.

    Grouping makes the batch count depend on which indices a rank got; under DDP a rank with one batch more would
    wait forever in its all-reduce. Every rank therefore computes all ranks' shards (cheap: index lists only) and
    stops at the smallest count, so a few batches of an epoch may be skipped (they differ every epoch). Call
    :meth:`set_epoch` every epoch, as with ``DistributedSampler``.
    """

    def __init__(self, dataset, group_ids: Sequence[int], batch_size: int, *, num_replicas: int | None = None,
                 rank: int | None = None, shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        super().__init__(sampler, group_ids, batch_size, drop_last=drop_last)
        self.dataset = dataset

    def _per_rank_counts(self) -> list[int]:
        s = self.sampler
        counts = []
        for r in range(s.num_replicas):
            other = DistributedSampler(self.dataset, num_replicas=s.num_replicas, rank=r, shuffle=s.shuffle,
                                       seed=s.seed)
            other.set_epoch(s.epoch)
            counts.append(len(_grouped_batches(list(iter(other)), self.group_ids, self.batch_size, self.drop_last)))
        return counts

    def __iter__(self) -> Iterator[list[int]]:
        n = min(self._per_rank_counts())
        yield from self._batches()[:n]

    def __len__(self) -> int:
        return min(self._per_rank_counts())
