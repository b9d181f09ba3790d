#!/usr/bin/env python3
"""Loader throughput: datatools.datasets vs torchvision's VOCDetection, against the decode+resize floor.

usage: .venv/bin/python benchmarks/bench_loader.py [--images 2000] [--per-worker 300] [--two-workers 600] [--rounds 3]

Generates 2,000 JPEGs with ../shared/bench/gen_voc.py into /tmp (once), then measures images/s for:

* ours: ``VOCDetection`` + ``train_preset(512)`` (letterbox, flip, photometric on uint8 after resizing, float out),
  the same with ``mode="resize"`` (the augmentations of torchvision's row), and with uint8 out (``dtype=None``). The
  preset is stock v2 transforms (``RandomHorizontalFlip``, ``Resize``, ``ClampBoundingBoxes``, ``ToDtype``) plus
  datatools' ``Letterbox``, ``PhotometricDistort`` (one colour matrix) and ``SanitizeBoxes``;
* ours flip+resize: ``train_preset(512, mode="resize", photometric=False)``, float and uint8 out;
* torchvision: ``torchvision.datasets.VOCDetection`` + ``wrap_dataset_for_transforms_v2`` with the same augmentations
  in torchvision's reference order (photometric, flip, resize at full size), with our preset object itself, and
  stock v2 flip+resize;
* the floor: ``read_file`` + ``decode_image`` + resize to 512x512 (uint8), nothing else; and PIL decode for contrast.

"per worker" runs in this process with ``torch.set_num_threads(1)`` (what a DataLoader worker gets); "2 workers" is a
DataLoader with ``num_workers=2``, the same settings and collate for every row ("default transport" rows: torch.stack
plus PyTorch's default per-tensor transport instead of ``detection_collate``'s one-pickle transport, which these rows
justify keeping; "+ float in main": the consuming loop converts uint8 batches to float, as a training step would on
the GPU). The machine is shared: every job runs in
interleaved rounds (A, B, C, A, B, C, ...) and the best round is reported. No GPU figures (none on this machine).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN = ROOT.parent / "shared" / "bench" / "gen_voc.py"

warnings.filterwarnings("ignore", category=DeprecationWarning)


def ensure_data(base: Path, n: int) -> Path:
    voc = base / "VOCdevkit" / "VOC2012"
    jpgs = voc / "JPEGImages"
    if not (jpgs.is_dir() and len(os.listdir(jpgs)) >= n):
        print(f"generating {n} JPEGs into {voc} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(GEN), str(voc), str(n), str(n)], check=True)
    return base


class Floor:
    """decode + resize only: the least any loader producing 512x512 tensors must do."""

    def __init__(self, paths, size):
        self.paths, self.size = paths, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_image, read_file
        from torchvision.transforms.v2 import functional as F

        img = decode_image(read_file(self.paths[i]), mode=ImageReadMode.RGB, apply_exif_orientation=True)
        return F.resize(img, [self.size, self.size], antialias=True), {}


class PILFloor(Floor):
    def __getitem__(self, i):
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        with Image.open(self.paths[i]) as im:
            img = F.pil_to_tensor(im.convert("RGB"))
        return F.resize(img, [self.size, self.size], antialias=True), {}


def rate_in_process(ds, n: int) -> float:
    import torch

    torch.manual_seed(0)
    for i in range(5):  # warm-up
        ds[i]
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.perf_counter() - t0)


def stack_collate_default_transport(batch):
    """torch.stack (a strided permute for decode_image's HWC-ordered pixels) and PyTorch's default transport (one
    shared-memory file and fd hand-over per tensor): what ``detection_collate``'s transport is measured against."""
    import torch

    return torch.stack([b[0].as_subclass(torch.Tensor) for b in batch]), [b[1] for b in batch]


def rate_loader(ds, n: int, workers: int, *, collate=None, to_float: bool = False) -> float:
    """img/s through a DataLoader; every pipeline gets the same settings (batch 8, prefetch 4, the same collate).
    ``to_float``: the consuming loop converts uint8 batches to float 0-1, as a training step would (on the GPU)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from datatools.datasets import detection_collate

    loader = DataLoader(Subset(ds, range(min(n, len(ds)))), batch_size=8, num_workers=workers,
                        collate_fn=collate or detection_collate, persistent_workers=False, prefetch_factor=4,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    seen = 0
    for images, _ in it:
        if to_float and images.dtype == torch.uint8:
            images = images.float().div_(255)
        seen += len(images)
    return seen / (time.perf_counter() - t0)


def interleaved(jobs: dict, rounds: int) -> dict:
    """Best of ``rounds`` for every job, the jobs run in turn (A, B, C, A, B, C, ...): the machine is shared, so a
    burst of someone else's load hits one round of every job rather than every round of one job."""
    best: dict = {k: 0.0 for k in jobs}
    for r in range(rounds):
        for name, fn in jobs.items():
            best[name] = max(best[name], fn())
            print(f"  round {r + 1}: {name:70s} {best[name]:8.1f} img/s (best so far)", file=sys.stderr)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--per-worker", type=int, default=300, help="images per single-process measurement")
    ap.add_argument("--two-workers", type=int, default=600, help="images per 2-worker measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of them is reported")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--data", default="/tmp/datatools_bench_loader")
    args = ap.parse_args()

    import torch
    import torchvision
    from torchvision import datasets as tvd
    from torchvision.transforms import v2

    from datatools.datasets import VOCDetection
    from datatools.datasets.transforms import train_preset

    base = ensure_data(Path(args.data), args.images)
    voc_root = base / "VOCdevkit" / "VOC2012"
    size = args.size
    torch.set_num_threads(1)  # what a DataLoader worker gets

    t0 = time.perf_counter()
    ours_default = VOCDetection(voc_root, transforms=train_preset(size))
    build_s = time.perf_counter() - t0
    paths = list(ours_default.paths)
    for p in paths:  # warm the page cache so every pipeline reads from memory
        Path(p).read_bytes()
    same_aug_tv = v2.Compose([v2.ToImage(), v2.RandomPhotometricDistort(p=0.5), v2.RandomHorizontalFlip(),
                              v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes(),
                              v2.SanitizeBoundingBoxes(), v2.ToDtype(torch.float32, scale=True)])
    flip_resize_tv = v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), v2.RandomHorizontalFlip(),
                                 v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(),
                                 v2.ToDtype(torch.float32, scale=True)])

    def tv_dataset(transforms):
        ds = tvd.VOCDetection(str(base), year="2012", image_set="trainval", transforms=transforms)
        return tvd.wrap_dataset_for_transforms_v2(ds, target_keys=("boxes", "labels"))

    def ours(**kw):
        return VOCDetection(voc_root, transforms=train_preset(size, **kw))

    OURS_LB = "ours: train_preset (letterbox+flip+photometric)"
    OURS_PM = "ours: resize+flip+photometric (train_preset mode=resize)"
    OURS_PM8 = "ours: resize+flip+photometric, uint8 out (dtype=None)"
    OURS_FR = "ours: flip+resize (photometric=False)"
    OURS_FR8 = "ours: flip+resize, uint8 out (dtype=None)"
    TV_SAME = "torchvision VOCDetection+wrap, same augs (reference order)"
    TV_FR = "torchvision VOCDetection+wrap, flip+resize (stock v2)"
    FLOOR = "floor: decode_image + resize"
    pipelines = {
        OURS_LB: ours_default,
        OURS_PM: ours(mode="resize"),
        OURS_PM8: ours(mode="resize", dtype=None),
        OURS_FR: ours(mode="resize", photometric=False),
        OURS_FR8: ours(mode="resize", photometric=False, dtype=None),
        TV_SAME: tv_dataset(same_aug_tv),
        "torchvision VOCDetection+wrap, our train_preset object":
            tv_dataset(v2.Compose([v2.ToImage(), train_preset(size, mode="resize")])),
        TV_FR: tv_dataset(flip_resize_tv),
        FLOOR: Floor(paths, size),
        "PIL open + to tensor + resize": PILFloor(paths, size),
    }
    per_worker = interleaved({name: (lambda ds=ds: rate_in_process(ds, args.per_worker))
                              for name, ds in pipelines.items()}, args.rounds)

    n2 = args.two_workers
    two_jobs = {
        OURS_PM: lambda: rate_loader(pipelines[OURS_PM], n2, 2),
        OURS_PM8 + " + float in main": lambda: rate_loader(pipelines[OURS_PM8], n2, 2, to_float=True),
        OURS_PM8: lambda: rate_loader(pipelines[OURS_PM8], n2, 2),
        OURS_FR8: lambda: rate_loader(pipelines[OURS_FR8], n2, 2),
        OURS_FR8 + ", default transport":
            lambda: rate_loader(pipelines[OURS_FR8], n2, 2, collate=stack_collate_default_transport),
        TV_SAME: lambda: rate_loader(pipelines[TV_SAME], n2, 2),
        TV_SAME + ", default transport":
            lambda: rate_loader(pipelines[TV_SAME], n2, 2, collate=stack_collate_default_transport),
        TV_FR: lambda: rate_loader(pipelines[TV_FR], n2, 2),
        FLOOR: lambda: rate_loader(pipelines[FLOOR], n2, 2),
    }
    two = interleaved(two_jobs, args.rounds)

    floor, tv_same = per_worker[FLOOR], per_worker[TV_SAME]
    floor2, tv_same2 = two[FLOOR], two[TV_SAME]
    lines = [
        f"### Loader throughput ({len(paths)} JPEGs ~500x375 from gen_voc.py, {size} px, torch "
        f"{torch.__version__}, torchvision {torchvision.__version__}, CPU only, shared 2-core machine, "
        f"best of {args.rounds} interleaved rounds)",
        "",
        f"Dataset construction (reads {len(paths)} XML once): {build_s:.2f} s. Per worker: one process, "
        f"`torch.set_num_threads(1)` (as in a DataLoader worker), {args.per_worker} images. 2 workers: DataLoader, "
        f"batch 8, prefetch 4, `detection_collate` for every row unless marked, {n2} images.",
        "",
        "| pipeline | img/s per worker | vs floor | vs torchvision same augs |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in per_worker.items():
        lines.append(f"| {name} | {r:.0f} | {r / floor:.0%} | {r / tv_same:.2f}x |")
    lines += ["", "| pipeline, 2 workers | img/s | vs floor | vs torchvision same augs |", "| --- | ---: | ---: | ---: |"]
    for name, r in two.items():
        lines.append(f"| {name} | {r:.0f} | {r / floor2:.0%} | {r / tv_same2:.2f}x |")
    lines += [
        "",
        f"- the train preset (letterbox+flip+photometric, float out) vs torchvision with the same augmentations, per "
        f"worker: **{per_worker[OURS_LB] / tv_same:.2f}x** (target >= 2x)",
        f"- same augmentations (flip+photometric+resize {size}) vs torchvision, per worker: float out "
        f"**{per_worker[OURS_PM] / tv_same:.2f}x**, uint8 out {per_worker[OURS_PM8] / tv_same:.2f}x (target >= 2x)",
        f"- same, 2 workers: float out **{two[OURS_PM] / tv_same2:.2f}x**, uint8 out converted to float in the main "
        f"process **{two[OURS_PM8 + ' + float in main'] / tv_same2:.2f}x**, uint8 out "
        f"{two[OURS_PM8] / tv_same2:.2f}x (target >= 2x)",
        f"- flip+resize vs the decode+resize floor, per worker: uint8 out (like the floor) **{per_worker[OURS_FR8] / floor:.0%}**, "
        f"float out {per_worker[OURS_FR] / floor:.0%} (target >= 75%); 2 workers: uint8 {two[OURS_FR8] / floor2:.0%}",
        f"- the worker transport, flip+resize uint8 with 2 workers: detection_collate {two[OURS_FR8]:.0f} img/s, "
        f"torch.stack + default transport {two[OURS_FR8 + ', default transport']:.0f} img/s",
        f"- decode_image vs PIL+tensor (decode+resize): {floor / per_worker['PIL open + to tensor + resize']:.2f}x",
        "- GPU decode (`decode_jpeg(device='cuda')`): not measured, no GPU on this machine.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
