"""One process or many under ``torchrun``: the process group, the device, and the few collectives the trainer uses.

Use :func:`setup_distributed` once per run (it reads torchrun's ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; with none
set the run is one process and every collective here is a no-op), then :func:`resolve_device` with its
``local_rank``, and :func:`teardown` at the end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn

from datatools.core.errors import UsageError


@dataclass
class DistContext:
    """Where this process stands in the run: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> tuple[DistContext, torch.device]:
    """The run's process group and this rank's device (``--device``: auto, cuda or cpu). torchrun sets
    WORLD_SIZE/RANK/LOCAL_RANK: the group is started from them (nccl on GPU, gloo on CPU) and each rank takes the GPU
    of its local rank, made current so that NCCL and new tensors use it. Training and evaluate_checkpoint both start
    here."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    d = DistContext() if world <= 1 else DistContext(rank=int(os.environ.get("RANK", "0")), world=world,
                                                     local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device, d.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # before the group starts, as NCCL asks
    if world > 1:
        if not tdist.is_initialized():
            tdist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            d.initialized_here = True
    return d, dev


def teardown(dist: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` started it (a caller's own group is left alone)."""
    if dist.initialized_here:
        tdist.destroy_process_group()


def barrier(dist: DistContext) -> None:
    if dist.world > 1:
        tdist.barrier()


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is a usage error."""
    if device not in ("auto", "cuda", "cpu"):
        raise UsageError(f"--device must be auto, cuda or cpu, not {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but CUDA is not available")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def gather_union(part: dict, dist: DistContext) -> dict:
    """Union of every rank's ``{dataset index: value}``, first rank first: the sampler's padding duplicates
    collapse to one entry."""
    if dist.world <= 1:
        return part
    parts: list = [None] * dist.world
    tdist.all_gather_object(parts, part)
    merged: dict = {}
    for p in parts:
        for k, v in (p or {}).items():
            merged.setdefault(k, v)
    return merged


def broadcast_state(model: nn.Module, dist: DistContext) -> None:
    """Make every rank's copy of ``model`` rank 0's, buffers included.

    DDP keeps the parameters equal, but each rank's BatchNorm layers update their running statistics from that rank's
    own batches during the last forward (DDP broadcasts buffers at the start of a forward, not after it), and an EMA
    averages those buffers per rank. Without this, rank 1 would evaluate a model that is not the one rank 0 saves.
    """
    if dist.world <= 1:
        return
    with torch.no_grad():
        for t in model.state_dict().values():
            tdist.broadcast(t, src=0)


def broadcast_objects(values: list, dist: DistContext) -> list:
    """Rank 0's ``values`` (small picklable objects) on every rank."""
    if dist.world <= 1:
        return values
    box = list(values)
    tdist.broadcast_object_list(box, src=0)
    return box


def sum_over_ranks(values: dict[str, float], count: int, dist: DistContext,
                   device: torch.device) -> tuple[dict[str, float], int]:
    """``values`` and ``count`` summed over every rank (float64), so the log shows the run's mean, not rank 0's
    shard. The keys must come in the same order on every rank (the model's loss dict does)."""
    if dist.world <= 1:
        return values, count
    keys = list(values)
    t = torch.tensor([values[k] for k in keys] + [float(count)], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return {k: float(v) for k, v in zip(keys, t[:-1])}, int(t[-1])


def nonfinite_losses(values: dict[str, float], dist: DistContext,
                     device: torch.device) -> dict[str, torch.Tensor] | None:
    """``None`` when every rank's ``values`` (one step's loss and its parts) are finite; else the values of the
    first rank whose are not, the same on every rank.

    Call it once per optimizer step on every rank, after the step's backward (DDP's gradient all-reduce has then
    run on every rank) and before ``optimizer.step()`` (the weights stay good). Every rank then gets the same
    answer and stops together: a NaN decided per rank would leave the other ranks waiting in the next all-reduce.
    Per step rather than per micro-batch because ranks may run different numbers of micro-batches (a short last
    batch under aspect-ratio grouping) but always the same number of steps. The keys must come in the same order on
    every rank (the model's loss dict does). One all-reduce of ``world x len(values)`` numbers.
    """
    keys = list(values)
    if dist.world <= 1:
        row = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        return None if bool(torch.isfinite(row).all()) else {k: v for k, v in zip(keys, row)}
    # Each rank fills its own row of zeros; the sum is every rank's row as it was (x + 0 == x, nan + 0 == nan).
    table = torch.zeros(dist.world, len(keys), dtype=torch.float64, device=device)
    table[dist.rank] = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    tdist.all_reduce(table)
    table = table.cpu()
    bad = (~torch.isfinite(table)).any(dim=1).nonzero().flatten().tolist()
    return {k: v for k, v in zip(keys, table[bad[0]])} if bad else None
