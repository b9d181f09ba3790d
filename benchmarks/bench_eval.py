"""Evaluator speed: 5,000 images x 100 detections.

Targets: VOC AP under 1 s (issue 6); the default COCO backend at most 0.25x pycocotools' time with the same 12
numbers (issue 15). Measured side by side in one run:

* VOC AP (numpy, vectorized): compute only, and end to end (reading the predictions JSON + matching ids + AP);
* COCO: pycocotools run directly on the files (the floor) vs ``datatools evaluate``'s path (read and match the
  predictions, then COCOeval) with the default backend (faster-coco-eval when installed) and with the pycocotools
  backend, and faster-coco-eval run directly (from /tmp/peers when present).

usage: .venv/bin/python benchmarks/bench_eval.py [N_IMAGES] [DETS_PER_IMAGE] [ROUNDS]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datatools.metrics.coco import coco_evaluate, results_from_arrays  # noqa: E402
from datatools.metrics.inputs import load_ground_truth  # noqa: E402
from datatools.metrics.predictions import load_predictions  # noqa: E402
from datatools.metrics.voc import evaluate_voc  # noqa: E402

GEN = Path("/work/shared/bench/gen_voc.py")
PEERS = Path("/tmp/peers/bin/python")


def make_predictions(gt, per_image: int, rng: np.random.Generator) -> list[dict]:
    """Jittered ground truth (mostly right class) plus random boxes, ``per_image`` detections per image."""
    t = gt.table
    out_img, out_box, out_lab = [], [], []
    order = np.argsort(t.image, kind="stable")
    starts = np.searchsorted(t.image[order], np.arange(len(gt.images) + 1))
    for i, rec in enumerate(gt.images):
        idx = order[starts[i]:starts[i + 1]]
        w, h = rec.width or 500, rec.height or 375
        n_true = min(len(idx) * 3, per_image // 2)
        src = idx[rng.integers(0, len(idx), n_true)] if len(idx) else np.zeros(0, dtype=int)
        b = t.box[src] + rng.normal(0, 6, (len(src), 4))
        lab = np.where(rng.random(len(src)) < 0.9, t.label[src], rng.integers(0, len(gt.classes), len(src)))
        n_rand = per_image - len(src)
        xy = rng.uniform(0, [w * 0.8, h * 0.8], (n_rand, 2))
        rb = np.concatenate([xy, xy + rng.uniform(10, 150, (n_rand, 2))], 1)
        out_img.append(np.full(per_image, i))
        out_box.append(np.concatenate([b, rb]))
        out_lab.append(np.concatenate([lab, rng.integers(0, len(gt.classes), n_rand)]))
    img = np.concatenate(out_img)
    box = np.concatenate(out_box)
    box[:, 2:] = np.maximum(box[:, 2:], box[:, :2] + 1)
    lab = np.concatenate(out_lab)
    score = np.round(rng.random(len(img)), 4)
    xywh = np.concatenate([box[:, :2], box[:, 2:] - box[:, :2]], 1).round(2)
    return results_from_arrays(np.asarray(gt.image_ids)[img], np.asarray(gt.category_ids)[lab], xywh, score)


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def pycocotools_direct(gt_path: str, pred_path: str):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(gt_path)
        d = g.loadRes(pred_path)
        e = COCOeval(g, d, "bbox")
        e.evaluate(); e.accumulate(); e.summarize()
    return list(e.stats)


PEER_CODE = r"""
import contextlib, io, json, sys, time
from faster_coco_eval import COCO, COCOeval_faster
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    g = COCO(sys.argv[1]); d = g.loadRes(sys.argv[2])
    e = COCOeval_faster(g, d, "bbox", print_function=print); e.evaluate(); e.accumulate(); e.summarize()
print(json.dumps({"direct": time.perf_counter() - t, "stats": [float(v) for v in e.stats[:12]]}))
"""


def max_diff(a, b) -> float:
    return max(abs(x - y) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n_images", nargs="?", type=int, default=5000, help="ground-truth images (default 5000)")
    parser.add_argument("per_image", nargs="?", type=int, default=100, help="detections per image (default 100)")
    parser.add_argument("rounds", nargs="?", type=int, default=2, help="timed rounds, best kept (default 2)")
    args = parser.parse_args()
    n_images, per_image, rounds = args.n_images, args.per_image, args.rounds
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        voc = Path(tmp) / "voc"
        subprocess.run([sys.executable, str(GEN), str(voc), str(n_images)], check=True)
        gt = load_ground_truth(voc, format="voc")
        results = make_predictions(gt, per_image, rng)
        pred_path = Path(tmp) / "pred.json"
        pred_path.write_text(json.dumps(results))
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(gt.coco))
        n_det = len(results)
        print(f"{len(gt.images):,} images, {len(gt.table):,} GT boxes, {n_det:,} detections, {len(gt.classes)} classes")

        pred = load_predictions(pred_path, gt)
        t_voc, voc = timed(lambda: evaluate_voc(gt.table, pred.table, gt.classes), repeat=3)
        t_voc_e2e, _ = timed(lambda: evaluate_voc(gt.table, load_predictions(pred_path, gt).table, gt.classes))
        print(f"VOC AP compute: {t_voc:.3f} s (mAP50 {voc.map:.4f}); with reading the JSON: {t_voc_e2e:.3f} s")

        def ours(backend: str):  # what `datatools evaluate` does: read and match the predictions, then COCOeval
            p = load_predictions(pred_path, gt)
            t = p.table
            res = results_from_arrays(np.asarray(gt.image_ids, dtype=object)[t.image],
                                      np.asarray(gt.category_ids, dtype=object)[t.label], p.xywh, t.score)
            return coco_evaluate(gt.coco, res, backend=backend, copy_results=False)

        # Interleaved rounds (the machine may be shared): each side keeps its best.
        t_ref = t_auto = t_pyc = float("inf")
        for _ in range(rounds):
            t, ref_stats = timed(lambda: pycocotools_direct(str(gt_path), str(pred_path)))
            t_ref = min(t_ref, t)
            t, auto_res = timed(lambda: ours("auto"))
            t_auto = min(t_auto, t)
            t, pyc_res = timed(lambda: ours("pycocotools"))
            t_pyc = min(t_pyc, t)
        ref = [float(v) for v in ref_stats][:12]
        print(f"pycocotools direct: {t_ref:.1f} s (best of {rounds})")
        same_auto = list(auto_res.stats) == ref
        print(f"datatools default backend ({auto_res.backend}, incl. reading JSON): {t_auto:.1f} s; "
              f"12 numbers identical: {same_auto} (max |diff| {max_diff(auto_res.stats, ref):.2e})")
        same_pyc = list(pyc_res.stats) == ref
        print(f"datatools pycocotools backend (incl. reading JSON): {t_pyc:.1f} s; 12 numbers identical: {same_pyc}")
        peer = None
        if PEERS.exists():
            out = subprocess.run([str(PEERS), "-c", PEER_CODE, str(gt_path), str(pred_path)],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                peer = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"faster-coco-eval direct: {peer['direct']:.1f} s; 12 numbers identical: "
                      f"{peer['stats'] == ref} (max |diff| {max_diff(peer['stats'], ref):.2e})")
            else:
                print("faster-coco-eval run failed:", out.stderr[-500:])

    cpu = os.cpu_count()
    print()
    print(f"### Evaluator ({n_images:,} images x {per_image} detections = {n_det:,}; {cpu} shared CPU cores)")
    print()
    print("| what | time | ratio | same 12 numbers |")
    print("|---|---:|---:|---|")
    print(f"| VOC AP50 (numpy, compute) | {t_voc:.3f} s | {t_voc / 1.0:.2f}x of the 1 s budget | |")
    print(f"| VOC AP50 incl. reading the results JSON | {t_voc_e2e:.3f} s | | |")
    print(f"| pycocotools direct (floor) | {t_ref:.1f} s | 1.00x | reference |")
    print(f"| datatools COCO, default backend ({auto_res.backend}) | {t_auto:.1f} s | "
          f"{t_auto / t_ref:.2f}x of pycocotools | {same_auto} |")
    print(f"| datatools COCO, pycocotools backend | {t_pyc:.1f} s | {t_pyc / t_ref:.2f}x of pycocotools | {same_pyc} |")
    if peer:
        print(f"| faster-coco-eval direct (peer) | {peer['direct']:.1f} s | {peer['direct'] / t_ref:.2f}x of "
              f"pycocotools | {peer['stats'] == ref} |")


if __name__ == "__main__":
    main()
