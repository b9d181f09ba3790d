"""Training throughput: ``datatools train`` against torchvision's ``references/detection`` recipe, same model, batch
and image size, measured side by side in one run (on a GPU; ``--device cpu`` only checks that the script works).

The reference loop is re-created here from the recipe torchvision publishes (not vendored): PIL decode, the "hflip"
preset (RandomHorizontalFlip, PILToTensor, ToDtype float32 in the workers), images resized by the model's own
GeneralizedRCNNTransform, SGD momentum 0.9 / wd 1e-4, ``--amp`` = fp16 autocast + GradScaler, NCHW, a list of
images per step. Ours: uint8 letterboxed batches converted on the GPU, bf16 autocast, channels_last, fused param
groups (see datatools.training.loop).

usage: .venv/bin/python benchmarks/bench_train.py [--device cuda] [--batch 16] [--size 512] [--iters 60]
       [--data sample_data] [--model fasterrcnn_mobilenet_v3_large_fpn] [--workers 8]
Target (issue 6): ours >= 1.3x the reference's images/s, data loader never the bottleneck.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class GpuSampler:
    """Samples GPU utilization (%) every 0.2 s with nvidia-smi while active."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            time.sleep(0.2)

    def __enter__(self):
        if torch.cuda.is_available():
            self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


class RefDataset(torch.utils.data.Dataset):
    """The reference recipe's data path: PIL decode, then v2 hflip + PILToTensor + ToDtype(float32) in workers."""

    def __init__(self, records, classes) -> None:
        from torchvision.transforms import v2

        self.items = [(r.image_path, np.asarray([a.box for a in r.annotations], dtype=np.float32).reshape(-1, 4),
                       np.asarray([classes.index(a.label) + 1 for a in r.annotations], dtype=np.int64))
                      for r in records if r.image_path]
        self.t = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        from torchvision import tv_tensors

        path, boxes, labels = self.items[i]
        img = Image.open(path).convert("RGB")
        target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY",
                                                    canvas_size=(img.height, img.width)),
                  "labels": torch.from_numpy(labels)}
        return self.t(img, target)


def reference_images_per_s(args, device) -> tuple[float, float | None]:
    from datatools import formats
    from datatools.training.models import build_model

    ds_model = formats.get("voc").read(args.data)
    classes = list(ds_model.classes)
    recs = [r for r in ds_model.images if "train" in r.splits] or list(ds_model.images)
    ds = RefDataset(recs, classes)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         collate_fn=lambda b: tuple(zip(*b)), drop_last=True,
                                         persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    model = build_model(args.model, len(classes), image_size=args.size).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    n_img, t0, it = 0, None, 0
    with GpuSampler() as gpu:
        while it < args.iters:
            for images, targets in loader:
                images = [im.to(device, non_blocking=True) for im in images]
                targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    loss = sum(model(images, targets).values())
                opt.zero_grad()
                if scaler:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                it += 1
                if it == args.warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0, n_img = time.perf_counter(), 0
                elif it > args.warmup:
                    n_img += len(images)
                if it >= args.iters:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n_img / (time.perf_counter() - t0), gpu.mean


def ours_images_per_s(args, device) -> tuple[float, float | None]:
    from datatools.training import TrainConfig, train

    # enough epochs over the train split to pass args.iters iterations; the first epoch is warm-up
    with tempfile.TemporaryDirectory() as tmp, GpuSampler() as gpu:
        cfg = TrainConfig(data=args.data, out=tmp, model=args.model, image_size=args.size, batch_size=args.batch,
                          epochs=max(2, args.epochs), val_split=None, workers=args.workers, device=device.type,
                          lr=0.02, limit=args.limit)
        r = train(cfg)
    later = [h.images_per_s for h in r.history[1:]] or [r.history[0].images_per_s]
    return float(np.median(later)), gpu.mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", default=str(ROOT / "sample_data"))
    ap.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_fpn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        print("no CUDA: running a tiny CPU check of the script only (figures are not meaningful)")
        args.batch, args.size, args.iters, args.warmup, args.epochs, args.workers = 2, 128, 4, 1, 2, 0
        args.limit = 8
    ref, ref_gpu = reference_images_per_s(args, device)
    ours, ours_gpu = ours_images_per_s(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"

    def pct(v):
        return "n/a" if v is None else f"{v:.0f}%"

    print()
    print(f"### Training throughput ({args.model}, batch {args.batch}, {args.size} px, {name})")
    print()
    print("| trainer | images/s | GPU util | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| torchvision references/detection recipe (fp16 AMP, NCHW) | {ref:.1f} | {pct(ref_gpu)} | 1.00x |")
    print(f"| datatools train (bf16, channels_last, uint8 loader) | {ours:.1f} | {pct(ours_gpu)} | {ours / ref:.2f}x |")


if __name__ == "__main__":
    main()
