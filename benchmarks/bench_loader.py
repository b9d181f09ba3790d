#!/usr/bin/env python3
"""Loader throughput: datatools.datasets vs torchvision's VOCDetection, against the decode+resize floor.

usage: .venv/bin/python benchmarks/bench_loader.py [--images 2000] [--per-worker 300] [--two-workers 600] [--data DIR]

Generates 2,000 JPEGs with ../shared/bench/gen_voc.py into /tmp (once), then measures images/s for:

* ours: ``VOCDetection`` + ``train_preset(512)`` (letterbox, flip, photometric on uint8 after resizing, float out);
* ours flip+resize: ``train_preset(512, mode="resize", photometric=False)``;
* torchvision: ``torchvision.datasets.VOCDetection`` + ``wrap_dataset_for_transforms_v2`` with the same augmentations
  in torchvision's reference order (photometric, flip, resize at full size), and with our preset object itself;
* the floor: ``read_file`` + ``decode_image`` + resize to 512x512, nothing else; and PIL decode + tensor for contrast.

"per worker" runs in this process with ``torch.set_num_threads(1)`` (what a DataLoader worker gets); "2 workers" is a
DataLoader with ``num_workers=2``. Ratios are measured side by side in one run. No GPU figures (none on this machine).
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


def rate_loader(ds, n: int, workers: int) -> float:
    import torch
    from torch.utils.data import DataLoader, Subset

    from datatools.datasets import detection_collate

    loader = DataLoader(Subset(ds, range(min(n, len(ds)))), batch_size=8, num_workers=workers,
                        collate_fn=detection_collate, persistent_workers=False, prefetch_factor=4,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    seen = 0
    for images, _ in it:
        seen += len(images)
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--per-worker", type=int, default=300, help="images per single-process measurement")
    ap.add_argument("--two-workers", type=int, default=600, help="images per 2-worker measurement")
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
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    ours_default = VOCDetection(voc_root, transforms=train_preset(size))
    build_s = time.perf_counter() - t0
    paths = list(ours_default.paths)
    for p in paths:  # warm the page cache so every pipeline reads from memory
        Path(p).read_bytes()
    same_aug_tv = v2.Compose([v2.ToImage(), v2.RandomPhotometricDistort(p=0.5), v2.RandomHorizontalFlip(),
                              v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes(),
                              v2.SanitizeBoundingBoxes(), v2.ToDtype(torch.float32, scale=True)])

    def tv_dataset(transforms):
        ds = tvd.VOCDetection(str(base), year="2012", image_set="trainval", transforms=transforms)
        return tvd.wrap_dataset_for_transforms_v2(ds, target_keys=("boxes", "labels"))

    # the same augmentation set; ours resizes first, torchvision's reference order distorts at full size
    pipelines = {
        "ours: train_preset (letterbox+flip+photometric)": VOCDetection(voc_root, transforms=train_preset(size)),
        "ours: train_preset mode=resize (resize+flip+photometric)":
            VOCDetection(voc_root, transforms=train_preset(size, mode="resize")),
        "ours: flip+resize (photometric=False)":
            VOCDetection(voc_root, transforms=train_preset(size, mode="resize", photometric=False)),
        "ours: flip+resize, uint8 out": VOCDetection(voc_root, transforms=train_preset(size, mode="resize",
                                                                                    photometric=False, dtype=None)),
        "torchvision VOCDetection+wrap, same augs (reference order)": tv_dataset(same_aug_tv),
        "torchvision VOCDetection+wrap, our train_preset object":
            tv_dataset(v2.Compose([v2.ToImage(), train_preset(size, mode="resize")])),
        "torchvision VOCDetection+wrap, flip+resize":
            tv_dataset(v2.Compose([v2.ToImage(), train_preset(size, mode="resize", photometric=False)])),
        "floor: decode_image + resize": Floor(paths, size),
        "PIL open + to tensor + resize": PILFloor(paths, size),
    }
    per_worker = {}
    for name, ds in pipelines.items():
        per_worker[name] = rate_in_process(ds, args.per_worker)
        print(f"  {name:62s} {per_worker[name]:8.1f} img/s (1 process)", file=sys.stderr)
    two = {}
    for name in ("ours: train_preset mode=resize (resize+flip+photometric)", "ours: flip+resize (photometric=False)",
                 "torchvision VOCDetection+wrap, same augs (reference order)", "floor: decode_image + resize"):
        two[name] = rate_loader(pipelines[name], args.two_workers, 2)
        print(f"  {name:62s} {two[name]:8.1f} img/s (2 workers)", file=sys.stderr)

    floor = per_worker["floor: decode_image + resize"]
    tv_same = per_worker["torchvision VOCDetection+wrap, same augs (reference order)"]
    lines = [
        f"### Loader throughput ({len(paths)} JPEGs ~500x375 from gen_voc.py, {size} px, torch "
        f"{torch.__version__}, torchvision {torchvision.__version__}, CPU only, shared 2-core machine)",
        "",
        f"Dataset construction (reads {len(paths)} XML once): {build_s:.2f} s.",
        "",
        "| pipeline | img/s per worker | vs floor | vs torchvision same augs | img/s, 2 workers |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in per_worker.items():
        t = f"{two[name]:.0f}" if name in two else ""
        lines.append(f"| {name} | {r:.0f} | {r / floor:.2f}x | {r / tv_same:.2f}x | {t} |")
    ours = per_worker["ours: train_preset mode=resize (resize+flip+photometric)"]
    fr = per_worker["ours: flip+resize (photometric=False)"]
    lines += [
        "",
        f"- ours vs torchvision, same augmentations (flip+photometric+resize 512): **{ours / tv_same:.2f}x** "
        f"(target >= 2x); 2 workers: {two['ours: train_preset mode=resize (resize+flip+photometric)'] / two['torchvision VOCDetection+wrap, same augs (reference order)']:.2f}x",
        f"- ours flip+resize vs the decode+resize floor: **{fr / floor:.0%}** (target >= 75%)",
        f"- decode_image vs PIL+tensor (decode+resize): {floor / per_worker['PIL open + to tensor + resize']:.2f}x",
        "- GPU decode (`decode_jpeg(device='cuda')`): not measured, no GPU on this machine.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
