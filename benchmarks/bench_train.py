"""Training throughput: ``datatools train`` against torchvision's ``references/detection`` recipe, same model, batch,
image size and iterations, measured side by side in one run (on a GPU; on a CPU the figures only check the script).

The reference loop is re-created here from the recipe torchvision publishes (not vendored): PIL decode, the "hflip"
preset (RandomHorizontalFlip, PILToTensor, ToDtype float32 in the workers), images resized by the model's own
GeneralizedRCNNTransform, SGD momentum 0.9 / wd 1e-4, ``--amp`` = fp16 autocast + GradScaler, NCHW, a list of
images per step, ``loss.item()`` every step (its NaN check). Ours: ``datatools.training.train`` itself, uint8
letterboxed batches converted on the GPU, bf16 autocast, channels_last.

Fair by construction: both sides read the same folder (sample_data's train images, repeated under new names so that
``warmup + iters`` steps are ONE epoch: neither loader restarts its workers inside the run, which is what persistent
workers buy), take ``warmup + iters`` steps and are timed over the same last ``iters`` steps, from the end of step
``warmup`` to the end of the last one. Both sync every step (the reference's ``.item()``, our loss logging).
Also measured over the timed steps: the time spent waiting for the loader (``next()``) as a share of the steps'
time, and the GPU utilization (nvidia-smi, every 0.2 s).

usage: .venv/bin/python benchmarks/bench_train.py [--device cuda] [--batch 16] [--size 512] [--iters 60]
       [--warmup 10] [--data sample_data] [--model fasterrcnn_mobilenet_v3_large_fpn] [--workers 8] [--json PATH]
Targets (issue 17): ours >= 1.3x the reference's images/s; data wait < 5% of a step.
"""
from __future__ import annotations

import argparse
import json
import os
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
    """Samples GPU utilization (%) every 0.2 s with nvidia-smi while active; :meth:`mean` over a time window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append((time.perf_counter(), float(out.strip().splitlines()[0])))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            time.sleep(0.2)

    def __enter__(self):
        if torch.cuda.is_available():
            self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def mean(self, t0: float, t1: float) -> float | None:
        inside = [u for t, u in self.samples if t0 <= t <= t1]
        return float(np.mean(inside)) if inside else None


class Steps:
    """Step-end times and loader waits of one side; the timed window is steps ``warmup+1 .. warmup+iters``."""

    def __init__(self, warmup: int, iters: int) -> None:
        self.warmup, self.iters = warmup, iters
        self.ends: list[float] = []
        self.waits: list[float] = []

    def timed_loader(self, loader):
        """Iterate ``loader``, timing each ``next()``."""
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - t)
            yield batch

    def result(self, batch: int, gpu: GpuSampler) -> dict:
        if len(self.ends) < self.warmup + self.iters:
            raise RuntimeError(f"only {len(self.ends)} steps ran, {self.warmup + self.iters} needed")
        t0, t1 = self.ends[self.warmup - 1], self.ends[self.warmup + self.iters - 1]
        wait = sum(self.waits[self.warmup:self.warmup + self.iters])
        return {"images_per_s": self.iters * batch / (t1 - t0), "step_ms": 1000 * (t1 - t0) / self.iters,
                "data_wait_frac": wait / (t1 - t0), "gpu_util": gpu.mean(t0, t1)}


def repeated_root(data: str, n: int, work: Path) -> Path:
    """A VOC root of ``n`` train images: ``data``'s train images cycled, linked under new names (one epoch of
    ``n`` images for both sides, so no loader restarts its workers during the run)."""
    from datatools import formats

    ds = formats.get("voc").read(data)
    recs = sorted((r for r in ds.images if "train" in r.splits and r.image_path), key=lambda r: r.image_id) or \
        sorted((r for r in ds.images if r.image_path), key=lambda r: r.image_id)
    ann, jpg, sets = work / "Annotations", work / "JPEGImages", work / "ImageSets" / "Main"
    for d in (ann, jpg, sets):
        d.mkdir(parents=True, exist_ok=True)
    src = Path(data)
    ids = []
    for i in range(n):
        r = recs[i % len(recs)]
        stem = Path(r.image_path).stem
        new = f"r{i:05d}_{stem}"
        ext = Path(r.image_path).suffix
        xml = (src / "Annotations" / f"{stem}.xml").read_text()
        xml = xml.replace(f"<filename>{stem}{ext}</filename>", f"<filename>{new}{ext}</filename>")
        (ann / f"{new}.xml").write_text(xml)
        (jpg / f"{new}{ext}").symlink_to(Path(r.image_path).resolve())
        ids.append(new)
    (sets / "train.txt").write_text("\n".join(ids) + "\n")
    return work


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


def reference_run(args, device, root: Path) -> dict:
    from datatools import formats
    from datatools.training.models import build_model

    ds_model = formats.get("voc").read(str(root))
    classes = list(ds_model.classes)
    ds = RefDataset([r for r in ds_model.images if "train" in r.splits], classes)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         collate_fn=collate_tuples, drop_last=True,
                                         persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    model = build_model(args.model, len(classes), image_size=args.size).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    steps = Steps(args.warmup, args.iters)
    with GpuSampler() as gpu:
        for images, targets in steps.timed_loader(loader):
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = sum(model(images, targets).values())
            loss.item()  # the recipe checks every step's loss for NaN: one sync per step, as ours
            opt.zero_grad()
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            steps.ends.append(time.perf_counter())
            if len(steps.ends) >= args.warmup + args.iters:
                break
        if device.type == "cuda":
            torch.cuda.synchronize()
    return steps.result(args.batch, gpu)


def collate_tuples(batch):
    return tuple(zip(*batch))


def ours_run(args, device, root: Path) -> dict:
    """``datatools.training.train`` for one epoch of ``warmup + iters`` steps; its loader is wrapped to time
    ``next()`` and its per-step progress callback records the step ends (the loop syncs each step to log the
    loss)."""
    import datatools.training.loop as loop
    from datatools.training import TrainConfig, train

    steps = Steps(args.warmup, args.iters)
    real_loader = loop.epoch_loader

    class TimedLoader:
        def __init__(self, loader) -> None:
            self.loader = loader

        def __len__(self) -> int:
            return len(self.loader)

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def __iter__(self):
            return steps.timed_loader(self.loader)

    def timed_epoch_loader(*a, **k):
        loader = real_loader(*a, **k)
        return TimedLoader(loader) if k.get("train") else loader

    def progress(stage: str, advance: int, total) -> None:
        if advance:
            steps.ends.append(time.perf_counter())

    loop.epoch_loader = timed_epoch_loader
    try:
        with tempfile.TemporaryDirectory() as tmp, GpuSampler() as gpu:
            cfg = TrainConfig(data=str(root), out=tmp, model=args.model, image_size=args.size,
                              batch_size=args.batch, epochs=1, val_split=None, workers=args.workers,
                              device=device.type, lr=0.02, save_period=0)
            train(cfg, progress=progress)
            return steps.result(args.batch, gpu)
    finally:
        loop.epoch_loader = real_loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", default=str(ROOT / "sample_data"))
    ap.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_fpn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=60, help="timed steps, after --warmup steps")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--json", dest="json_out", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.warmup < 1 or args.iters < 1:
        ap.error("--warmup and --iters must be >= 1")
    device = torch.device(args.device)
    if device.type == "cpu":
        print("no CUDA: the figures only check that the script works")
    with tempfile.TemporaryDirectory() as tmp:
        root = repeated_root(args.data, (args.warmup + args.iters) * args.batch, Path(tmp))
        ref = reference_run(args, device, root)
        ours = ours_run(args, device, root)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    ratio = ours["images_per_s"] / ref["images_per_s"]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    def util(v):
        return "n/a" if v is None else f"{v:.0f}%"

    print()
    print(f"### Training throughput ({args.model}, batch {args.batch}, {args.size} px, {args.warmup} + {args.iters} "
          f"steps, {args.workers} workers, {name})")
    print()
    print("| trainer | images/s | ms/step | data wait | GPU util | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| torchvision references/detection recipe (fp16 AMP, NCHW) | {ref['images_per_s']:.1f} | "
          f"{ref['step_ms']:.1f} | {pct(ref['data_wait_frac'])} | {util(ref['gpu_util'])} | 1.00x |")
    print(f"| datatools train (bf16, channels_last, uint8 loader) | {ours['images_per_s']:.1f} | "
          f"{ours['step_ms']:.1f} | {pct(ours['data_wait_frac'])} | {util(ours['gpu_util'])} | {ratio:.2f}x |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"device": name, "model": args.model, "batch": args.batch, "size": args.size, "warmup": args.warmup,
             "iters": args.iters, "workers": args.workers, "reference": ref, "ours": ours, "ratio": ratio},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
