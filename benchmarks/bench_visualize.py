"""Speed of ``datatools visualize`` against the floor: a plain PIL decode + encode loop on all cores.

usage: .venv/bin/python benchmarks/bench_visualize.py [N_IMAGES] [--data DIR] [--rounds R]

Generates N (default 2,000) VOC images of ~500x375 with ../shared/bench/gen_voc.py (unless --data is given), then, in
one run, alternating R rounds (default 2, best round kept):

* floor: ``map_items`` over all cores of open -> load -> RGB -> JPEG q90 -> atomic file write, nothing drawn;
* visualize: ``datatools.viz.visualize`` (boxes + labels, JPEG q90, same workers), the dataset already read;
* sheets: ``visualize --grid 4x4`` (thumbnails via JPEG draft decoding), for information.

Target (issue 4): visualize >= 70% of the floor's images/s. Prints a markdown block for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datatools import formats  # noqa: E402
from datatools.core.atomic import atomic_write  # noqa: E402
from datatools.core.parallel import default_workers, map_items  # noqa: E402
from datatools.viz import visualize  # noqa: E402

GEN = ROOT.parent / "shared" / "bench" / "gen_voc.py"


def _floor_one(args: tuple[str, str]) -> int:
    from PIL import Image

    src, dst = args
    with Image.open(src) as im:
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    atomic_write(dst, buf.getvalue())
    return 1


def floor(paths: list[str], out: Path, workers: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    map_items(_floor_one, [(p, str(out / (Path(p).stem + ".jpg"))) for p in paths], workers=workers,
              min_per_worker=32)
    return time.perf_counter() - t


def timed_visualize(ds, out: Path, workers: int, **kw) -> float:
    t = time.perf_counter()
    res = visualize(ds, out, workers=workers, **kw)
    dt = time.perf_counter() - t
    if res.skipped or res.images_drawn != len(ds.images):
        raise SystemExit(f"visualize skipped images: {res.skipped[:3]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=2000)
    ap.add_argument("--data", default=None, help="an existing VOC root to use instead of generating one")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_viz_"))
    try:
        data = Path(args.data) if args.data else tmp / "voc"
        if not args.data:
            subprocess.run([sys.executable, str(GEN), str(data), str(args.n), str(args.n)], check=True,
                           stdout=subprocess.DEVNULL)
        workers = default_workers()
        t = time.perf_counter()
        ds = formats.get("voc").read(data, workers=workers)
        t_read = time.perf_counter() - t
        ds = ds.evolve(images=tuple(im for im in ds.images if im.image_path))
        n = len(ds.images)
        boxes = ds.num_objects
        paths = [im.image_path for im in ds.images]
        best = {"floor": float("inf"), "visualize": float("inf"), "sheets": float("inf")}
        for r in range(args.rounds):
            for name in best:
                out = tmp / f"{name}_{r}"
                if name == "floor":
                    dt = floor(paths, out, workers)
                elif name == "visualize":
                    dt = timed_visualize(ds, out, workers, show_difficult=True)
                else:
                    dt = timed_visualize(ds, out, workers, show_difficult=True, grid=(4, 4))
                best[name] = min(best[name], dt)
                shutil.rmtree(out, ignore_errors=True)
        rate = {k: n / v for k, v in best.items()}
        ratio = rate["visualize"] / rate["floor"]
        lines = [
            f"### visualize ({n:,} images ~500x375, {boxes:,} boxes, {workers} workers, best of {args.rounds})",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), Python "
            f"{platform.python_version()}. Command: `.venv/bin/python benchmarks/bench_visualize.py {args.n}`.",
            "",
            "| what | seconds | images/s | vs floor |",
            "|---|---:|---:|---:|",
            f"| floor: PIL decode + JPEG encode + write | {best['floor']:.2f} | {rate['floor']:,.0f} | 1.00 |",
            f"| `visualize` (boxes + labels, JPEG q90) | {best['visualize']:.2f} | {rate['visualize']:,.0f} | "
            f"{ratio:.2f} |",
            f"| `visualize --grid 4x4` (JPEG sheets) | {best['sheets']:.2f} | {rate['sheets']:,.0f} | "
            f"{rate['sheets'] / rate['floor']:.2f} |",
            "",
            f"Reading the annotations (not in the times above): {t_read:.2f} s. "
            f"Target visualize >= 0.70 x floor: **{'met' if ratio >= 0.70 else 'NOT met'}** ({ratio:.2f}).",
        ]
        print("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
