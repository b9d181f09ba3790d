"""The evaluator: VOC AP on hand-computed cases and a published reference, COCO metrics against pycocotools itself."""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.metrics.coco import coco_evaluate
from datatools.metrics.inputs import load_ground_truth, sanitize_coco
from datatools.metrics.predictions import load_predictions
from datatools.metrics.evaluate import evaluate
from datatools.metrics.voc import APMethod, BoxTable, average_precision, best_overlaps, evaluate_voc

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def table(rows, *, scored: bool):
    """rows: (image, label, x1, y1, x2, y2, score_or_ignore)."""
    if not rows:
        return BoxTable.empty()
    a = np.asarray(rows, dtype=float)
    if scored:
        return BoxTable.build(a[:, 0], a[:, 1], a[:, 2:6], a[:, 6])
    return BoxTable.build(a[:, 0], a[:, 1], a[:, 2:6], None, a[:, 6].astype(bool))


# ------------------------------------------------------------------------------------------ AP on paper

# (name, gt rows (img, cls, box, difficult), det rows (img, cls, box, score), iou, plus_one, AP allpoint, AP 11point)
HAND_CASES = [
    ("perfect", [(0, 0, 0, 0, 10, 10, 0)], [(0, 0, 0, 0, 10, 10, .9)], .5, False, 1.0, 1.0),
    # duplicate: TP then FP -> precision [1, .5] at recall 1: the envelope is 1 everywhere
    ("duplicate", [(0, 0, 0, 0, 10, 10, 0)], [(0, 0, 0, 0, 10, 10, .9), (0, 0, 0, 0, 10, 10, .8)], .5, False, 1.0, 1.0),
    # FP ranked first: precision .5 at recall 1 -> AP .5 both ways
    ("fp-first", [(0, 0, 0, 0, 10, 10, 0)], [(0, 0, 50, 50, 60, 60, .9), (0, 0, 0, 0, 10, 10, .8)], .5, False, .5, .5),
    # half the boxes found at precision 1: all-point .5; 11-point: t = 0, .1, ..., .5 -> 6/11
    ("half-recall", [(0, 0, 0, 0, 10, 10, 0), (1, 0, 0, 0, 10, 10, 0)], [(0, 0, 0, 0, 10, 10, .9)], .5, False, .5, 6 / 11),
    # the difficult box is neither counted nor penalized: the detection on it is ignored
    ("difficult", [(0, 0, 0, 0, 10, 10, 0), (0, 0, 20, 20, 30, 30, 1)],
     [(0, 0, 20, 20, 30, 30, .95), (0, 0, 0, 0, 10, 10, .9)], .5, False, 1.0, 1.0),
    # IoU exactly 0.5 matches (devkit: ovmax >= minoverlap) ...
    ("iou-equal", [(0, 0, 0, 0, 10, 10, 0)], [(0, 0, 0, 0, 10, 5, .9)], .5, False, 1.0, 1.0),
    # ... and not at 0.51
    ("iou-below", [(0, 0, 0, 0, 10, 10, 0)], [(0, 0, 0, 0, 10, 5, .9)], .51, False, 0.0, 0.0),
    # the second detection's best box is taken; VOC does not fall back to the other box (COCO would): FP
    ("no-fallback", [(0, 0, 0, 0, 10, 10, 0), (0, 0, 3, 0, 13, 10, 0)],
     [(0, 0, 0, 0, 10, 10, .9), (0, 0, 1, 0, 11, 10, .8)], .5, False, .5, 6 / 11),
    # +1 widths: [0,0,9,9] vs [0,0,9,4] is 36/81 = .44 without, 50/100 = .5 with
    ("plus-one-off", [(0, 0, 0, 0, 9, 9, 0)], [(0, 0, 0, 0, 9, 4, .9)], .5, False, 0.0, 0.0),
    ("plus-one-on", [(0, 0, 0, 0, 9, 9, 0)], [(0, 0, 0, 0, 9, 4, .9)], .5, True, 1.0, 1.0),
    # a detection of the right class on another image is an FP
    ("wrong-image", [(0, 0, 0, 0, 10, 10, 0)], [(1, 0, 0, 0, 10, 10, .9), (0, 0, 0, 0, 10, 10, .5)], .5, False, .5, .5),
    # a detection of another class never matches
    ("wrong-class", [(0, 0, 0, 0, 10, 10, 0)], [(0, 1, 0, 0, 10, 10, .9)], .5, False, 0.0, 0.0),
    ("no-detections", [(0, 0, 0, 0, 10, 10, 0)], [], .5, False, 0.0, 0.0),
]


@pytest.mark.parametrize("name,gt,det,iou,plus,ap_all,ap_11", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_voc_ap_hand_cases(name, gt, det, iou, plus, ap_all, ap_11):
    r = evaluate_voc(table(gt, scored=False), table(det, scored=True), ["a", "b"], iou_threshold=iou,
                     legacy_plus_one=plus)
    c = r.classes[0]
    assert c.ap_allpoint == pytest.approx(ap_all, abs=1e-12)
    assert c.ap_11point == pytest.approx(ap_11, abs=1e-12)
    assert math.isnan(r.classes[1].ap)  # class b has no ground truth: undefined, left out of the mean
    assert r.map == pytest.approx(ap_all)


def test_difficult_counts():
    r = evaluate_voc(table([(0, 0, 0, 0, 10, 10, 0), (0, 0, 20, 20, 30, 30, 1)], scored=False),
                     table([(0, 0, 20, 20, 30, 30, .95), (0, 0, 0, 0, 10, 10, .9)], scored=True), ["a"])
    c = r.classes[0]
    assert (c.positives, c.ignored_gt, c.detections, c.tp, c.fp, c.ignored_detections) == (1, 1, 2, 1, 0, 1)


@pytest.mark.parametrize("recall,precision,method,expected", [
    ([0.2, 0.4, 0.4, 1.0], [1.0, 1.0, 0.5, 0.5], "allpoint", 0.4 * 1 + 0.6 * 0.5),
    # recall exactly 3/10 does not reach t = 0.3 as py-faster-rcnn, detectron2, mmdetection and Padilla et al. compute
    # t (0.30000000000000004): 3 of 11 thresholds, where k / 10 gave 4
    ([0.3], [1.0], "11point", 3 / 11),
    ([0.6], [1.0], "11point", 6 / 11),
    ([0.31], [1.0], "11point", 4 / 11),
    ([0.5, 1.0], [0.5, 1.0], "allpoint", 1.0),  # the envelope lifts the early low precision
    ([], [], "allpoint", 0.0),
    ([], [], "11point", 0.0),
])
def test_average_precision(recall, precision, method, expected):
    assert average_precision(np.array(recall), np.array(precision), method) == pytest.approx(expected, abs=1e-12)


# The worked example of Padilla et al., "A Survey on Performance Metrics for Object-Detection Algorithms" (IWSSIP
# 2020) and github.com/rafaelpadilla/Object-Detection-Metrics (README, results/results.txt): 7 images, 15 persons,
# 24 detections, boxes [x, y, w, h], IoU threshold 0.3, their IoU uses the +1 pixel widths.
# Published: every-point AP 24.57 %, 11-point AP 26.84 %.
PADILLA_GT = {1: [(25, 16, 38, 56), (129, 123, 41, 62)], 2: [(123, 11, 43, 55), (38, 132, 59, 45)],
              3: [(16, 14, 35, 48), (123, 30, 49, 44), (99, 139, 47, 47)], 4: [(53, 42, 40, 52), (154, 43, 31, 34)],
              5: [(59, 31, 44, 51), (48, 128, 34, 52)], 6: [(36, 89, 52, 76), (62, 58, 44, 67)],
              7: [(28, 31, 55, 63), (58, 67, 50, 58)]}
PADILLA_DET = {1: [(.88, 5, 67, 31, 48), (.70, 119, 111, 40, 67), (.80, 124, 9, 49, 67)],
               2: [(.71, 64, 111, 64, 58), (.54, 26, 140, 60, 47), (.74, 19, 18, 43, 35)],
               3: [(.18, 109, 15, 77, 39), (.67, 86, 63, 46, 45), (.38, 160, 62, 36, 53), (.91, 105, 131, 47, 47),
                   (.44, 18, 148, 40, 44)],
               4: [(.35, 83, 28, 28, 26), (.78, 28, 68, 42, 67), (.45, 87, 89, 25, 39), (.14, 10, 155, 60, 26)],
               5: [(.62, 50, 38, 28, 46), (.44, 95, 11, 53, 28), (.95, 29, 131, 72, 29), (.23, 29, 163, 72, 29)],
               6: [(.45, 43, 48, 74, 38), (.84, 17, 155, 29, 35), (.43, 95, 110, 25, 42)],
               7: [(.48, 16, 20, 101, 88), (.95, 33, 116, 37, 49)]}


@pytest.mark.parametrize("method,published", [("allpoint", 0.2457), ("11point", 0.2684)])
def test_published_reference(method, published):
    gt = [(i, 0, x, y, x + w, y + h, 0) for i, bs in PADILLA_GT.items() for x, y, w, h in bs]
    det = [(i, 0, x, y, x + w, y + h, s) for i, bs in PADILLA_DET.items() for s, x, y, w, h in bs]
    r = evaluate_voc(table(gt, scored=False), table(det, scored=True), ["person"], iou_threshold=0.3,
                     method=method, legacy_plus_one=True)
    c = r.classes[0]
    assert round(c.ap, 4) == published
    assert (c.positives, c.tp, c.fp) == (15, 7, 17)  # their table: 7 TP, 17 FP
    assert c.precision[-1] == pytest.approx(7 / 24) and c.recall[-1] == pytest.approx(7 / 15)


def _devkit_loop(gt: BoxTable, det: BoxTable, k: int, iou: float, plus: float) -> list[float]:
    """A direct transcription of the devkit's per-detection loop, as the vectorized code's reference."""
    aps = []
    for c in range(k):
        d_idx = [i for i in np.argsort(-det.score, kind="stable") if det.label[i] == c]
        taken: set[int] = set()
        tp, fp = [], []
        npos = int(((gt.label == c) & ~gt.ignore).sum())
        for i in d_idx:
            best, jbest = -1.0, -1
            for j in range(len(gt)):
                if gt.label[j] != c or gt.image[j] != det.image[i]:
                    continue
                a, b = det.box[i], gt.box[j]
                iw = min(a[2], b[2]) - max(a[0], b[0]) + plus
                ih = min(a[3], b[3]) - max(a[1], b[1]) + plus
                inter = max(iw, 0) * max(ih, 0)
                u = (a[2] - a[0] + plus) * (a[3] - a[1] + plus) + (b[2] - b[0] + plus) * (b[3] - b[1] + plus) - inter
                o = inter / u
                if o > best:
                    best, jbest = o, j
            if jbest >= 0 and best >= iou:
                if gt.ignore[jbest]:
                    continue
                if jbest not in taken:
                    taken.add(jbest)
                    tp.append(1); fp.append(0)
                else:
                    tp.append(0); fp.append(1)
            else:
                tp.append(0); fp.append(1)
        if not npos:
            aps.append(float("nan"))
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        aps.append(average_precision(ctp / npos, ctp / np.maximum(ctp + cfp, 1), "allpoint"))
    return aps


@pytest.mark.parametrize("seed,plus", [(0, 0.0), (1, 1.0), (2, 0.0)])
def test_vectorized_matches_devkit_loop(seed, plus):
    rng = np.random.default_rng(seed)
    n_img, k = 12, 3
    ng, nd = 60, 300
    g_xy = rng.uniform(0, 80, (ng, 2))
    gt = BoxTable.build(rng.integers(0, n_img, ng), rng.integers(0, k, ng),
                        np.concatenate([g_xy, g_xy + rng.uniform(5, 30, (ng, 2))], 1), None, rng.random(ng) < 0.15)
    src = rng.integers(0, ng, nd)
    jitter = rng.normal(0, 4, (nd, 4))
    box = gt.box[src] + jitter
    box[:, 2:] = np.maximum(box[:, 2:], box[:, :2] + 1)
    det = BoxTable.build(gt.image[src], np.where(rng.random(nd) < 0.85, gt.label[src], rng.integers(0, k, nd)), box,
                         np.round(rng.random(nd), 2))  # rounded scores: many ties
    r = evaluate_voc(gt, det, ["a", "b", "c"], iou_threshold=0.5, legacy_plus_one=bool(plus))
    ref = _devkit_loop(gt, det, k, 0.5, plus)
    assert [c.ap_allpoint for c in r.classes] == pytest.approx(ref, nan_ok=True, abs=1e-12)
    # chunked pair evaluation gives the same matches as one chunk
    a = best_overlaps(gt, det, num_classes=k, legacy_plus_one=bool(plus))
    b = best_overlaps(gt, det, num_classes=k, legacy_plus_one=bool(plus), chunk_pairs=7)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])


def test_bad_labels_raise():
    with pytest.raises(ValueError):
        evaluate_voc(table([(0, 3, 0, 0, 1, 1, 0)], scored=False), BoxTable.empty(), ["a"])


# ------------------------------------------------------------------------------------------ COCO

@pytest.fixture(scope="module")
def coco_case(tmp_path_factory):
    """sample_data val as COCO (what voc2coco writes) plus synthetic predictions: jittered GT, wrong classes, noise."""
    from datatools.ops.convert import convert

    out = tmp_path_factory.mktemp("coco")
    convert("voc", str(SAMPLE), "coco", str(out / "coco"), sets=["val"], images_mode="none")
    gt_json = out / "coco" / "annotations" / "instances_val.json"
    gt = json.loads(gt_json.read_text())
    rng = np.random.default_rng(7)
    res = []
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    for a in gt["annotations"]:
        if rng.random() < 0.85:
            x, y, w, h = a["bbox"]
            cat = a["category_id"] if rng.random() < 0.9 else int(rng.integers(1, 5))
            res.append({"image_id": a["image_id"], "category_id": cat,
                        "bbox": [x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), w * rng.uniform(.85, 1.15),
                                 h * rng.uniform(.85, 1.15)], "score": float(rng.random())})
    for im in gt["images"]:
        for _ in range(2):
            res.append({"image_id": im["id"], "category_id": int(rng.integers(1, 5)),
                        "bbox": [float(rng.uniform(0, 200)), float(rng.uniform(0, 200)), 40.0, 40.0],
                        "score": float(rng.random() * 0.5)})
    pred = out / "pred.json"
    pred.write_text(json.dumps(res))
    return {"dir": out, "gt_json": gt_json, "gt": gt, "pred": pred, "res": res, "names": names}


def pycocotools_stats(gt_path_or_dict, results) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(str(gt_path_or_dict)) if not isinstance(gt_path_or_dict, dict) else COCO()
        if isinstance(gt_path_or_dict, dict):
            g.dataset = gt_path_or_dict
            g.createIndex()
        d = g.loadRes(json.loads(json.dumps(results)))
        e = COCOeval(g, d, "bbox")
        e.evaluate(); e.accumulate(); e.summarize()
    return [float(v) for v in e.stats]


@pytest.mark.parametrize("gt_kind", ["voc", "coco"])
def test_coco_stats_identical_to_pycocotools(coco_case, gt_kind):
    expected = pycocotools_stats(coco_case["gt_json"], coco_case["res"])
    if gt_kind == "voc":
        rep = evaluate(SAMPLE, coco_case["pred"], gt_format="voc", split="val", backend="pycocotools")
    else:
        rep = evaluate(coco_case["gt_json"], coco_case["pred"], gt_format="coco", backend="pycocotools")
    assert list(rep.coco.stats) == expected  # exactly, not approximately
    assert rep.coco.stat("AP50") > 0.3
    assert rep.predictions_used == len(coco_case["res"])
    assert not [f for f in rep.findings if f.code.startswith("pred-")]


def test_predictions_matched_by_file_name(coco_case, tmp_path):
    # ids scrambled, file names right: the file name wins
    res = [dict(r, image_id=999_000 + r["image_id"], file_name=coco_case["names"][r["image_id"]])
           for r in coco_case["res"]]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(res))
    rep = evaluate(SAMPLE, p, gt_format="voc", split="val", backend="pycocotools")
    assert list(rep.coco.stats) == pycocotools_stats(coco_case["gt_json"], coco_case["res"])


def test_empty_predictions(coco_case, tmp_path):
    p = tmp_path / "empty.json"
    p.write_text("[]")
    rep = evaluate(coco_case["gt_json"], p, gt_format="coco", backend="pycocotools")
    assert rep.coco.stat("AP") == 0.0 and rep.coco.stat("AR100") == 0.0
    assert all(c.ap == 0.0 for c in rep.voc.classes)
    assert rep.predictions_used == 0


def test_unknown_images_and_categories_are_reported(coco_case, tmp_path):
    res = list(coco_case["res"]) + [{"image_id": 424242, "category_id": 1, "bbox": [0, 0, 5, 5], "score": .5}] * 2 \
        + [{"image_id": 1, "category_id": 77, "bbox": [0, 0, 5, 5], "score": .5}] * 3
    p = tmp_path / "p.json"
    p.write_text(json.dumps(res))
    rep = evaluate(coco_case["gt_json"], p, gt_format="coco", backend="pycocotools")
    codes = {f.code: f for f in rep.findings}
    assert codes["pred-unknown-image"].objects == 2
    assert codes["pred-unknown-category"].objects == 3 and "77" in codes["pred-unknown-category"].message
    # the rest is evaluated exactly as pycocotools would (it ignores unknown categories itself)
    assert list(rep.coco.stats) == pycocotools_stats(coco_case["gt_json"], coco_case["res"] + res[-3:])


def test_gt_traps_string_ids_missing_area_and_iscrowd(coco_case, tmp_path):
    gt = json.loads(json.dumps(coco_case["gt"]))
    for im in gt["images"]:
        im["id"] = f"img-{im['id']}"
    for a in gt["annotations"]:
        a["image_id"] = f"img-{a['image_id']}"
        a.pop("area")
        a.pop("iscrowd")
        a["id"] = 0  # pycocotools treats a gt id of 0 as "unmatched" and keys annotations by id
    g = tmp_path / "gt.json"
    g.write_text(json.dumps(gt))
    res = [dict(r, image_id=f"img-{r['image_id']}") for r in coco_case["res"]]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(res))
    rep = evaluate(g, p, gt_format="coco", backend="pycocotools")
    codes = {f.code for f in rep.findings}
    assert {"string-ids", "missing-area", "missing-iscrowd"} <= codes
    # same answer as the clean file, except that difficult boxes are no longer crowd
    clean = json.loads(json.dumps(coco_case["gt"]))
    for a in clean["annotations"]:
        a["iscrowd"] = 0
        a["area"] = a["bbox"][2] * a["bbox"][3]
    assert list(rep.coco.stats) == pycocotools_stats(clean, coco_case["res"])


def test_coco_and_voc_metrics_judge_the_boxes_the_reader_kept(coco_case, tmp_path):
    """A ground-truth box the COCO reader drops (a null side) is left out of pycocotools' dict too, and one it keeps
    (a zero width, as in the file) is in both, so COCO and VOC metrics see the same boxes; a malformed bbox beside
    a segmentation is dropped as well (the polygon's box is read only where there is no bbox); none of it is a
    traceback (a missing area beside a null side was a TypeError)."""
    from datatools.metrics.inputs import load_ground_truth

    gt = json.loads(json.dumps(coco_case["gt"]))
    n = len(gt["annotations"])
    first = gt["annotations"][0]
    gt["annotations"] += [dict(first, bbox=[1, 2, None, 4]), dict(first, bbox=[1, 2, 0, 4]),
                          dict(first, bbox=[1, 2, None, 4], segmentation=[[1, 2, 9, 2, 9, 8]])]
    for a in gt["annotations"][n:]:
        a.pop("area")
    g = tmp_path / "gt.json"
    g.write_text(json.dumps(gt))
    loaded = load_ground_truth(g)
    assert len(loaded.table.box) == len(loaded.coco["annotations"]) == n + 1  # and the zero width
    assert [f.field for f in loaded.findings if f.code == "missing-field"] == [
        f"annotations[{n}]/bbox", f"annotations[{n + 2}]/bbox"]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(coco_case["res"]))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(g), "--pred", str(p), "--json"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output


def test_sanitize_keeps_clean_ids(coco_case):
    out, id_map, cat_map, findings = sanitize_coco(coco_case["gt"])
    assert [im["id"] for im in out["images"]] == [im["id"] for im in coco_case["gt"]["images"]]
    assert not findings


def test_yolo_txt_predictions(coco_case, tmp_path):
    gt = load_ground_truth(SAMPLE, format="voc", split="val")
    folder = tmp_path / "labels"
    folder.mkdir()
    rows: dict[str, list[str]] = {}
    for r in coco_case["res"]:
        rec = gt.images[r["image_id"] - 1]
        x, y, w, h = r["bbox"]
        rows.setdefault(rec.image_id, []).append(
            f"{r['category_id'] - 1} {(x + w / 2) / rec.width:.9f} {(y + h / 2) / rec.height:.9f} "
            f"{w / rec.width:.9f} {h / rec.height:.9f} {r['score']:.9f}")
    for stem, lines in rows.items():
        (folder / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    yolo = evaluate_voc(gt.table, load_predictions(folder, gt).table, gt.classes)
    ref = evaluate_voc(gt.table, load_predictions(coco_case["pred"], gt).table, gt.classes)
    assert yolo.map == pytest.approx(ref.map, abs=1e-6)


def test_coco_evaluate_needs_installed_backend(monkeypatch):
    from datatools.core.errors import UsageError
    from datatools.metrics import coco as mc

    monkeypatch.setattr(mc, "available_backends", lambda: ["pycocotools"])
    assert mc.resolve_backend("auto") == "pycocotools"
    with pytest.raises(UsageError, match="not installed"):
        coco_evaluate({"images": [], "annotations": [], "categories": []}, [], backend="faster-coco-eval")
    monkeypatch.setattr(mc, "available_backends", lambda: [])
    with pytest.raises(UsageError, match="need"):
        mc.resolve_backend("auto")


def test_auto_backend_prefers_faster_coco_eval():
    pytest.importorskip("faster_coco_eval")
    from datatools.metrics.coco import resolve_backend

    assert resolve_backend("auto") == "faster-coco-eval"


def _backend(name: str) -> str:
    if name == "faster-coco-eval":
        pytest.importorskip("faster_coco_eval")
    return name


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_coco_evaluate_is_pycocotools_numbers_and_leaves_inputs_alone(coco_case, backend):
    """The 12 numbers of pycocotools' own COCO/loadRes/COCOeval run: exactly with pycocotools, and from
    faster-coco-eval to 1e-12 (the same algorithm in C++; a wrong match, area range or maxDets moves a number by
    1e-3 or more on this case). Per-class AP is the mean of COCOeval's precision array; the caller's dicts are not
    touched (loadRes adds fields to results, COCOeval writes 'ignore' into ground truth); no results give AP 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(json.dumps(coco_case["gt"]))
    gt["annotations"][0]["iscrowd"] = 1  # a crowd box and a category without ground truth: the rarer paths
    gt["categories"].append({"id": 99, "name": "ghost"})
    res = coco_case["res"] + [{"image_id": gt["images"][0]["id"], "category_id": 99, "bbox": [1.0, 1.0, 20.0, 20.0],
                               "score": 0.5}]
    gt_before, res_before = json.dumps(gt), json.dumps(res)
    ours = coco_evaluate(gt, res, backend=_backend(backend))
    assert ours.backend == backend
    assert (json.dumps(gt), json.dumps(res)) == (gt_before, res_before)
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = json.loads(gt_before)
        g.createIndex()
        e = COCOeval(g, g.loadRes(json.loads(res_before)), "bbox")
        e.evaluate(); e.accumulate(); e.summarize()
    ref = [float(v) for v in e.stats]
    if backend == "pycocotools":
        assert list(ours.stats) == ref  # exactly
    else:
        assert list(ours.stats) == pytest.approx(ref, abs=1e-12, rel=0)
    assert 0.3 < ours.stat("AP50") < 1.0
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for k, cid in enumerate(e.params.catIds):
        p = e.eval["precision"][:, :, k, 0, -1]
        want = float(p[p > -1].mean()) if (p > -1).any() else None
        assert ours.per_class_ap[names[cid]] == (want if want is None else pytest.approx(want, abs=1e-12))
    assert ours.per_class_ap["ghost"] is None
    empty = coco_evaluate(gt, [], backend=backend)  # pycocotools' loadRes([]) raises IndexError
    assert empty.stat("AP") == 0.0 and empty.stat("AR100") == 0.0
    assert json.dumps(gt) == gt_before


def test_evaluate_default_backend_gives_the_reference_numbers(coco_case):
    pytest.importorskip("faster_coco_eval")
    rep = evaluate(coco_case["gt_json"], coco_case["pred"], gt_format="coco")
    assert rep.coco.backend == "faster-coco-eval"
    assert list(rep.coco.stats) == pytest.approx(pycocotools_stats(coco_case["gt_json"], coco_case["res"]),
                                                 abs=1e-12, rel=0)


def test_url_ground_truth_and_predictions_match_as_local(coco_case):
    """A COCO source behind a URL (fsspec memory://) gives the same ground truth and the same matched predictions
    as the local file, by image id and by category id."""
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    mem.pipe("/urlcase/annotations/instances_val.json", coco_case["gt_json"].read_bytes())
    mem.pipe("/urlcase/pred.json", coco_case["pred"].read_bytes())
    try:
        local = load_ground_truth(coco_case["gt_json"], format="coco")
        remote = load_ground_truth("memory://urlcase", format="coco", split="val")
        assert remote.image_ids == local.image_ids and remote.category_ids == local.category_ids
        assert remote.cat_index == local.cat_index and remote.coco == local.coco
        a = load_predictions(coco_case["pred"], local)
        b = load_predictions("memory://urlcase/pred.json", remote)
        assert len(b.table) == len(a.table) == len(coco_case["res"]) and not b.findings
        for col in ("image", "label", "box", "score"):
            np.testing.assert_array_equal(getattr(b.table, col), getattr(a.table, col))
    finally:
        mem.rm("/urlcase", recursive=True)


# ------------------------------------------------------------------------------------------ CLI

def test_cli_evaluate_json_and_plots(coco_case, tmp_path):
    plots = tmp_path / "plots"
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--split", "val", "--pred", str(coco_case["pred"]),
                                 "--plots", str(plots), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["coco"]["stats"]["AP"] == pytest.approx(pycocotools_stats(coco_case["gt_json"], coco_case["res"])[0],
                                                     abs=1e-6)
    assert 0 < d["voc"]["map"] <= 1 and len(d["per_class"]) == 4
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert "confusion_matrix.png" in pngs and "pr_all.png" in pngs and "pr_circle.png" in pngs
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    cm = np.asarray(d["confusion_matrix"])
    assert cm.shape == (5, 5) and cm[:4, :4].trace() > cm[:4, :4].sum() / 2


def test_cli_evaluate_plots_never_inside_an_input(coco_case, tmp_path):
    """--plots inside the ground truth (or beside a COCO JSON, where its images lie) is refused before anything is
    read or written, as every other writer's output is."""
    for gt, plots in ((SAMPLE, SAMPLE / "plots"), (coco_case["gt_json"], coco_case["gt_json"].parent / "plots")):
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(coco_case["pred"]),
                                     "--plots", str(plots)])
        assert r.exit_code == 2 and "is inside the input" in r.output and "Traceback" not in r.output, r.output
        assert not plots.exists()


@pytest.mark.parametrize("args,needle", [
    (["--metric", "voc", "--voc-method", "11point"], "VOC mAP@0.5 (11point)"),
    (["--metric", "coco"], "COCO AP@[.5:.95]"),
    (["--iou", "0.7"], "VOC mAP@0.7"),
])
def test_cli_evaluate_table(coco_case, args, needle):
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(coco_case["gt_json"]), "-f", "coco", "--pred",
                                 str(coco_case["pred"])] + args)
    assert r.exit_code == 0, r.output
    assert needle in r.output and "circle" in r.output


def test_a_prediction_with_a_list_for_an_id_is_an_unknown_image(tmp_path):
    # in a COCO-dict predictions file, an id that is a list was a TypeError (unhashable) traceback
    doc = {"images": [{"id": [1], "file_name": "x.jpg"}, {"id": 1, "file_name": "shapes_0000.jpg"}],
           "categories": [{"id": 1, "name": "circle"}],
           "annotations": [{"image_id": [1], "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},
                           {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(tmp_path / "p.json"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["predictions_read"], d["predictions_used"]) == (2, 1)
    assert [f["code"] for f in d["findings"]] == ["pred-unknown-image"]


def test_a_yolo_prediction_file_that_is_not_text_is_a_finding(tmp_path):
    (tmp_path / "yp").mkdir()
    (tmp_path / "yp" / "shapes_0000.txt").write_bytes(b"0 .5 .5 .1 .1 .9\n\xff\xfe\n")
    (tmp_path / "yp" / "shapes_0001.txt").write_text("0 .5 .5 .1 .1 .9\n")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(tmp_path / "yp"), "--json"])
    assert "Traceback" not in r.output, r.output
    d = json.loads(r.output)
    assert d["predictions_read"] == 1 and [(f["code"], f["path"]) for f in d["findings"]] == [
        ("unreadable-file", str(tmp_path / "yp" / "shapes_0000.txt"))]


def test_cli_evaluate_bad_input(tmp_path):
    p = tmp_path / "p.json"
    p.write_text("{not json")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(p)])
    assert r.exit_code == 1 and "not valid JSON" in r.output and "Traceback" not in r.output


def test_evaluate_reads_ground_truth_under_max_xml_mb_as_every_command_does(tmp_path):
    from datatools.metrics.inputs import load_ground_truth

    gt = load_ground_truth(SAMPLE, max_xml_bytes=1000)  # sample_data's XMLs are 488 to about 1,700 bytes
    too_large = [f for f in gt.findings if f.code == "file-too-large"]
    assert 0 < len(too_large) < 200 and len(gt.images) == 200 - len(too_large)
    (tmp_path / "preds.json").write_text("[]")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(tmp_path / "preds.json"),
                                 "--max-xml-mb", "0.0001"])
    assert r.exit_code == 1 and "file-too-large" in r.output and "Traceback" not in r.output, r.output


def test_a_dataset_folder_given_as_predictions_is_refused(tmp_path):
    # sample_data is a VOC root: its ImageSets/Main/*.txt split lists used to be read as YOLO prediction rows; so
    # were they with a README.txt at the root's top
    shutil.copytree(SAMPLE, tmp_path / "voc")
    (tmp_path / "voc" / "README.txt").write_text("a dataset\n")
    for pred in (SAMPLE, SAMPLE / "Annotations", tmp_path / "voc"):
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(pred)])
        assert r.exit_code == 2 and "a voc dataset, not predictions" in r.output, r.output
        assert "Traceback" not in r.output and "mAP" not in r.output


def test_malformed_prediction_entries_are_counted(coco_case, tmp_path):
    good = coco_case["res"][:50]
    bad = [{"image_id": 1, "category_id": 1, "bbox": None, "score": .5},
           {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
           {"image_id": 1, "category_id": 1, "bbox": [0, 0, float("nan"), 5], "score": .5},
           "not a dict"]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(good + bad))
    gt = load_ground_truth(coco_case["gt_json"], format="coco")
    pred = load_predictions(p, gt)
    codes = {f.code: f.objects for f in pred.findings}
    assert codes == {"pred-bad-box": 3, "pred-missing-score": 1}
    assert len(pred.table) == 50 and pred.read == 54


def test_category_name_wins_and_a_missing_score_can_default(coco_case, tmp_path):
    """A ``category_name`` of a known class wins over ``category_id``; without a score an entry is dropped and
    counted, unless the caller gives ``missing_score`` (``visualize`` draws such entries at 1)."""
    gt = load_ground_truth(coco_case["gt_json"], format="coco")
    first = coco_case["gt"]["images"][0]["id"]
    entries = [{"image_id": first, "category_id": 77, "category_name": gt.classes[1], "bbox": [1, 2, 3, 4],
                "score": .5},
               {"image_id": first, "category_id": 77, "category_name": "no-such-class", "bbox": [1, 2, 3, 4],
                "score": .5},
               {"image_id": first, "category_id": gt.category_ids[0], "bbox": [1, 2, 3, 4]}]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(entries))
    pred = load_predictions(p, gt)
    assert pred.table.label.tolist() == [1] and pred.unknown_categories == {"77": 1} and pred.malformed == 1
    pred = load_predictions(p, gt, missing_score=1.0)
    assert pred.table.label.tolist() == [1, 0] and pred.table.score.tolist() == [.5, 1.0] and pred.malformed == 0
    np.testing.assert_array_equal(pred.xywh, [[1, 2, 3, 4]] * 2)


@pytest.mark.parametrize("row,refused", [
    ("0 0.5 0.5 0.2 0.2 0.9", False),
    ("0 1.005 0.5 0.2 0.2 0.9", False),  # rounding at the border, not pixels
    ("0 25 30 40 50 0.9", True),
    ("0 0.5 -0.5 0.2 0.2", True),
    ("0 0.5 0.5 inf 0.2 0.9", False),  # no finite number, not pixels: a bad-number finding (it stopped evaluate)
    ("0 nan 0.5 0.2 0.2 0.9", False),  # left to the box checks
    ("0 10 10 20 10 20 20", False),  # a polygon row is not a box row
    ("0 25 30 40 abc 0.9", False),  # not numbers: a bad-number finding, the row dropped
])
def test_yolo_pixel_rows_are_refused_where_the_row_is_parsed(row, refused):
    from datatools.core.errors import FormatError
    from datatools.formats.yolo import parse_label_text

    kw = {"path": "pred/a.txt", "image_id": "a", "names": ["x"], "width": 100, "height": 80}
    text = "0 0.5 0.5 0.1 0.1 0.8\n" + row + "\n"
    if refused:
        with pytest.raises(FormatError, match=r"^pred/a.txt:2: coordinate .* looks like pixel coordinates"):
            parse_label_text(text, refuse_pixels=True, **kw)
    else:
        assert parse_label_text(text, refuse_pixels=True, **kw)[2] == 2
    assert parse_label_text(text, **kw)[2] == 2  # without refuse_pixels (ground truth) rows are read, never refused


def test_yolo_prediction_files_are_parsed_once_each(tmp_path, monkeypatch):
    """One parse per file does the pixel check too, also for a file whose image the ground truth lacks."""
    import collections

    import datatools.formats.yolo as yolo
    from datatools.core.errors import FormatError

    gt = load_ground_truth(SAMPLE, format="voc", split="val")
    folder = tmp_path / "pred"
    folder.mkdir()
    (folder / f"{gt.images[0].image_id}.txt").write_text("0 0.5 0.5 0.2 0.2 0.9\n0 0.4 0.4 0.2 0.2 0.5\n")
    (folder / "not_in_gt.txt").write_text("0 0.5 0.5 0.2 0.2 0.9\n")
    parsed: collections.Counter = collections.Counter()
    real = yolo.parse_label_text

    def counting(text, **kw):
        parsed[Path(kw["path"]).name] += 1
        return real(text, **kw)

    monkeypatch.setattr(yolo, "parse_label_text", counting)
    p = load_predictions(folder, gt)
    assert parsed == {f"{gt.images[0].image_id}.txt": 1, "not_in_gt.txt": 1}
    assert p.read == 3 and p.unmatched_images == 1 and len(p.table.score) == 2
    (folder / "not_in_gt.txt").write_text("0 250 30 40 50 0.9\n")
    with pytest.raises(FormatError, match=r"not_in_gt.txt:1: .*pixel"):
        load_predictions(folder, gt)


def test_nan_and_inf_in_yolo_prediction_rows_are_bad_numbers(tmp_path):
    """A prediction row's class id, coordinate or confidence of nan or inf is a bad-number, the row dropped and
    counted, as a word is: a nan class id crashed evaluate with a traceback, a NaN box was scored silently."""
    gt = load_ground_truth(SAMPLE, format="voc", split="val")
    folder = tmp_path / "pred"
    folder.mkdir()
    bad = ["nan 0.5 0.5 0.2 0.2 0.9", "inf 0.5 0.5 0.2 0.2 0.9", "0 nan 0.5 0.2 0.2 0.9", "0 0.5 0.5 0.2 0.2 nan",
           "0 0.5 0.5 0.2 0.2 inf"]
    (folder / f"{gt.images[0].image_id}.txt").write_text("\n".join(["0 0.5 0.5 0.2 0.2 0.9", *bad]) + "\n")
    p = load_predictions(folder, gt)
    assert len(p.table) == 1 and p.read == 6
    assert [(f.code, f.field, f.objects) for f in p.findings] == [("bad-number", f"line {k}", 1) for k in range(2, 7)]
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--split", "val", "--pred", str(folder), "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output  # bad prediction rows are reported, as a word in a row is, not fatal
    out = json.loads(r.output)
    assert [f["field"] for f in out["findings"] if f["code"] == "bad-number"] == [f"line {k}" for k in range(2, 7)]
    assert out["predictions_used"] == 1


@pytest.mark.parametrize("plus", [False, True])
def test_confusion_matrix_matches_as_ap_does(plus):
    """GT [0, 0, 9, 9] and a detection [1, 1, 10, 10]: IoU 0.653 in continuous pixels, 0.681 with the devkit's +1.
    At --iou 0.67 AP counts the pair as a match only under --legacy-plus-one, and so does the confusion matrix."""
    from datatools.metrics.confusion import confusion_matrix

    gt = BoxTable.build([0], [0], [[0, 0, 9, 9]])
    det = BoxTable.build([0], [0], [[1, 1, 10, 10]], [0.9])
    ap = evaluate_voc(gt, det, ["a"], iou_threshold=0.67, legacy_plus_one=plus).map
    cm = confusion_matrix(gt, det, 1, iou=0.67, legacy_plus_one=plus)
    assert ap == (1.0 if plus else 0.0)
    assert cm.tolist() == ([[1, 0], [0, 0]] if plus else [[0, 1], [1, 0]])


def test_one_number_rule_in_the_json(coco_case, tmp_path):
    """In one evaluate --json, a class with ground truth and no detection has recall 0 in both the VOC table and the
    per-class rows (it was 0.0 in one and null in the other); an undefined value is null everywhere."""
    g = tmp_path / "gt.json"
    gt = json.loads(json.dumps(coco_case["gt"]))
    gt["categories"].append({"id": 99, "name": "unseen"})  # no ground truth: undefined AP and recall
    g.write_text(json.dumps(gt))
    missed = coco_case["res"][0]["category_id"]
    p = tmp_path / "p.json"
    p.write_text(json.dumps([r for r in coco_case["res"] if r["category_id"] != missed]))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(g), "--pred", str(p), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    name = next(c["name"] for c in gt["categories"] if c["id"] == missed)
    voc = {c["class"]: c for c in d["voc"]["per_class"]}
    rows = {c["class"]: c for c in d["per_class"]}
    assert voc[name]["recall"] == rows[name]["recall"] == 0.0 and voc[name]["detections"] == 0
    assert voc["unseen"]["recall"] is rows["unseen"]["recall"] is None
    assert voc["unseen"]["ap"] is rows["unseen"]["ap"] is rows["unseen"]["coco_ap"] is None


def test_pr_plot_files_never_overwrite_each_other(tmp_path):
    """Classes whose names make the same file name ("a b", "a/b"), and a class named "all" beside the summary plot,
    each get their own PNG."""
    from datatools.metrics.plots import plot_pr_curves

    names = ["a b", "a/b", "all"]
    gt = BoxTable.build([0, 0, 0], [0, 1, 2], [[0, 0, 10, 10]] * 3)
    det = BoxTable.build([0, 0, 0], [0, 1, 2], [[0, 0, 10, 10]] * 3, [0.9, 0.8, 0.7])
    files = plot_pr_curves(evaluate_voc(gt, det, names), tmp_path)
    assert [Path(f).name for f in files] == ["pr_a_b.png", "pr_a_b_2.png", "pr_all_2.png", "pr_all.png"]
    assert all(Path(f).stat().st_size > 1000 for f in files)


def test_a_base_name_two_images_share_matches_neither(tmp_path):
    """Ground truth b/x.jpg and c/x.jpg: a prediction for "x.jpg" (or a YOLO predictions file x.txt, as ultralytics
    saves them flat) names neither, and is reported rather than scored against the first; the whole names match."""
    from datatools.core.model import Annotation, Dataset, ImageRecord
    from datatools.metrics.inputs import dataset_keys

    recs = tuple(ImageRecord(f"{d}/x", f"{d}/x.jpg", 64, 48, (Annotation("dog", (1.0, 1.0, 9.0, 9.0)),))
                 for d in ("b", "c")) + (ImageRecord("y", "y.jpg", 64, 48),)
    keys = dataset_keys(Dataset(images=recs, classes=("dog",), format="voc"))
    assert [keys.index_of(file_name=n) for n in ("x.jpg", "x", "b/x.jpg", "c/x", "y.jpg", "y")] == [
        None, None, 0, 1, 2, 2]
    # YOLO's images/train/im0.png and images/val/im0.png: the reader makes their ids im0 and val/im0, and the
    # prediction file im0.txt was scored against the train image as if im0 named it alone
    recs = (ImageRecord("im0", "im0.png", 64, 48, splits=("train",)), ImageRecord("val/im0", "im0.png", 64, 48,
                                                                                 splits=("val",)))
    keys = dataset_keys(Dataset(images=recs, classes=("dog",), format="yolo"))
    assert [keys.index_of(file_name=n) for n in ("im0", "im0.png", "val/im0")] == [None, None, 1]


def _cat(i, name):
    return {"id": i, "name": name}


def _img(i, name):
    return {"id": i, "file_name": name, "width": 100, "height": 100}


def _ann(k, image_id, category_id, box):
    return {"id": k, "image_id": image_id, "category_id": category_id, "bbox": box, "area": 900, "iscrowd": 0}


@pytest.mark.parametrize("case", ["float-image-ids", "float-category-ids", "float-ids-int-references", "string-ids"])
def test_coco_numbers_are_pycocotools_for_ids_of_any_type(tmp_path, case):
    """The same numbers as pycocotools on the file itself: ids written 1.0 (as pandas writes an int column with a
    gap) are the ids 1 (predictions were matched to the wrong image or class, or the ground truth dropped), and
    string ids are ranked in pycocotools' sorted order, which decides between detections of equal score in
    different images (AP 1.0 where pycocotools gives 0.5)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    a, b = [10, 10, 30, 30], [60, 60, 30, 30]
    gt, res = {
        "float-image-ids": ({"images": [_img(1.0, "b.jpg"), _img(2.0, "a.jpg")], "categories": [_cat(1, "cat")],
                             "annotations": [_ann(1, 1.0, 1, a), _ann(2, 2.0, 1, b)]},
                            [{"image_id": 1, "category_id": 1, "bbox": a, "score": .9},
                             {"image_id": 2, "category_id": 1, "bbox": b, "score": .8}]),
        "float-category-ids": ({"images": [_img(1, "a.jpg")], "categories": [_cat(2.0, "dog"), _cat(1.0, "cat")],
                                "annotations": [_ann(1, 1, 1.0, a), _ann(2, 1, 2.0, b)]},
                               [{"image_id": 1, "category_id": 1, "bbox": a, "score": .9},
                                {"image_id": 1, "category_id": 2, "bbox": b, "score": .8}]),
        "float-ids-int-references": ({"images": [_img(1.0, "a.jpg"), _img(2.0, "b.jpg")],
                                      "categories": [_cat(1, "cat")], "annotations": [_ann(1, 1, 1, a),
                                                                                      _ann(2, 2, 1, b)]},
                                     [{"image_id": 1, "category_id": 1, "bbox": a, "score": .9},
                                      {"image_id": 2, "category_id": 1, "bbox": b, "score": .8}]),
        "string-ids": ({"images": [_img("b", "a.jpg"), _img("a", "b.jpg")], "categories": [_cat(1, "cat")],
                        "annotations": [_ann(1, "b", 1, a)]},
                       [{"image_id": "b", "category_id": 1, "bbox": a, "score": .5},
                        {"image_id": "a", "category_id": 1, "bbox": a, "score": .5}]),
    }[case]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(str(tmp_path / "gt.json"))
        e = COCOeval(g, g.loadRes(str(tmp_path / "res.json")), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    for backend in ("pycocotools", "faster-coco-eval"):
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                                     "--backend", backend, "--json"])
        assert r.exit_code == 0, r.output
        got = json.loads(r.output)["coco"]["stats"]
        assert list(got.values()) == pytest.approx([float(x) for x in e.stats], abs=1e-9), (backend, got)


def test_categories_of_one_name_are_one_class_in_every_metric(tmp_path):
    """Two COCO categories named "car" (ids 1 and 3) are one class, as the reader reads them: a prediction with
    category 3 was "not in the ground truth", and the per-class COCO AP of car came from one of the two ids."""
    gt = {"images": [_img(1, "a.jpg"), _img(2, "b.jpg")],
          "categories": [_cat(1, "car"), _cat(2, "person"), _cat(3, "car")],
          "annotations": [_ann(1, 1, 1, [10, 10, 30, 30]), _ann(2, 1, 3, [50, 50, 30, 30]),
                          _ann(3, 2, 2, [10, 10, 40, 40])]}
    res = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": .9}
           for a in gt["annotations"]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                                 "--json"])
    d = json.loads(r.output)
    assert d["coco"]["stats"]["AP"] == 1.0 and [c["ap"] for c in d["coco"]["per_class"]] == [1.0, 1.0]
    car = next(c for c in d["per_class"] if c["class"] == "car")
    assert (car["gt"], car["tp"], car["fp"]) == (2, 2, 0)
    assert [f["code"] for f in d["findings"] if f["severity"] != "info"] == ["duplicate-category-name",
                                                                              "missing-image-dir"]


@pytest.mark.parametrize("fmt, images", [("openimages", 40), ("cvat", 40), ("labelme", None)])
def test_split_picks_the_split_of_every_format_or_is_refused(tmp_path, fmt, images):
    """--split was applied to COCO, VOC and YOLO ground truth only: on Open Images or CVAT it evaluated all 200
    images (train included), and --split nosuch exited 0. LabelMe keeps no split: refused, not ignored."""
    import datatools

    datatools.convert("voc", SAMPLE, fmt, tmp_path / fmt, images_mode="none")
    (tmp_path / "p.json").write_text("[]")
    for split in ("val", "nosuch"):
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(tmp_path / fmt), "--pred", str(tmp_path / "p.json"),
                                     "--split", split, "--images", str(SAMPLE / "JPEGImages"), "--json"])
        if split == "val" and images:
            assert r.exit_code == 0 and json.loads(r.output)["images"] == images, r.output
        else:
            assert r.exit_code == 2 and f"no split {split!r}" in r.output, r.output


def test_ground_truth_without_a_box_of_the_classes_is_an_error(tmp_path):
    # --classes a,b on sample_data left no ground-truth box: every metric was -1, exit 0
    (tmp_path / "p.json").write_text("[]")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(tmp_path / "p.json"), "--classes",
                                 "a,b", "--split", "val"])
    assert r.exit_code == 1 and "holds no box of the classes 'a', 'b' in its 40 images" in r.output, r.output


def test_a_scored_coco_file_names_its_images_by_the_one_id_text(tmp_path):
    # a scored COCO dataset file whose image "1" (a string) is the ground truth's shapes_0005.jpg, and whose box says
    # image_id 1 (an int): the box was matched by the raw id, missed the file name and went to the ground truth's
    # image 1, shapes_0000.jpg
    from datatools.metrics.predictions import load_predictions

    gt = load_ground_truth(SAMPLE)
    doc = {"images": [{"id": "1", "file_name": "shapes_0005.jpg"}], "categories": [{"id": 1, "name": "circle"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    pr = load_predictions(tmp_path / "p.json", gt)
    assert [gt.images[i].image_id for i in pr.table.image.tolist()] == ["shapes_0005"]


@pytest.mark.parametrize("crowd", ["0", None, False])
@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_an_iscrowd_written_as_text_or_null_is_the_readers_flag(tmp_path, crowd, backend):
    """iscrowd "0" (pandas, CSV converters) went to the evaluator as it is: pycocotools took every box for a crowd
    (all 12 numbers -1) while faster-coco-eval gave 1.0; null stopped both with a TypeError."""
    ims = [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10 * i, 10, 30, 30], "area": 900, "iscrowd": crowd}
            for i in (1, 2)]
    (tmp_path / "gt.json").write_text(json.dumps({"images": ims, "annotations": anns,
                                                  "categories": [{"id": 1, "name": "dog"}]}))
    (tmp_path / "pred.json").write_text(json.dumps([{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
                                                     "score": 0.9} for a in anns]))
    rep = evaluate(tmp_path / "gt.json", tmp_path / "pred.json", backend=backend)
    assert rep.coco.stat("AP") == pytest.approx(1.0)


def test_a_prediction_without_width_is_said_and_scored_as_pycocotools_scores_it(tmp_path):
    ims = [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0}]
    (tmp_path / "gt.json").write_text(json.dumps({"images": ims, "annotations": anns,
                                                  "categories": [{"id": 1, "name": "dog"}]}))
    (tmp_path / "pred.json").write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.5},
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, -2, 3], "score": 0.9}]))
    rep = evaluate(tmp_path / "gt.json", tmp_path / "pred.json", backend="pycocotools")
    assert [f.code for f in rep.findings if f.code.startswith("pred")] == ["pred-empty-box"]
    assert rep.predictions_used == 2
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "pred.json")), "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert rep.coco.stat("AP") == pytest.approx(ev.stats[0])


def _yolo_same_names(root: Path) -> Path:
    """YOLO with im0.jpg in train and in val (ids im0 and val/im0): one dog box each, at different places."""
    from tests.conftest import make_jpeg

    for split, box in (("train", "0.5 0.5 0.2 0.2"), ("val", "0.3 0.3 0.2 0.2")):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        make_jpeg(root / "images" / split / "im0.jpg", 100, 100)
        (root / "labels" / split / "im0.txt").write_text(f"1 {box}\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: ['cat', 'dog']\n")
    return root


def test_a_prediction_in_another_splits_folder_is_not_scored_on_this_split(tmp_path):
    # train/im0.jpg matched val's im0.jpg by its base name: a wrong box scored against the val picture, no finding
    gt = _yolo_same_names(tmp_path / "ds")
    preds = [{"file_name": "train/im0.jpg", "category_id": 2, "bbox": [40, 40, 20, 20], "score": 0.9},
             {"file_name": "val/im0.jpg", "category_id": 2, "bbox": [20, 20, 20, 20], "score": 0.5}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--split", "val", "--pred", str(tmp_path / "p.json"),
                                 "--json"])
    doc = json.loads(r.stdout)
    assert doc["predictions_used"] == 1 and doc["coco"]["stats"]["AP"] == pytest.approx(1.0)
    assert [f["code"] for f in doc["findings"]] == ["pred-unknown-image"]


def test_a_name_two_images_share_is_the_one_its_image_id_names(tmp_path):
    # predict wrote im0.jpg for both images: every prediction was unmatched (exit 1), or some were, with exit 0
    gt = load_ground_truth(_yolo_same_names(tmp_path / "ds"))
    assert [r.image_id for r in gt.images] == ["im0", "val/im0"]
    assert gt.index_of(file_name="im0.jpg", image_id=2) == 1 and gt.index_of(file_name="im0.jpg", image_id=1) == 0
    assert gt.index_of(file_name="im0.jpg") is None  # no id: still said, never given to the first


def test_predict_names_the_split_of_images_that_share_a_name(tmp_path):
    from datatools.training.prediction import result_names

    gt = load_ground_truth(_yolo_same_names(tmp_path / "ds"))
    names = result_names(gt.images)
    assert names == ["train/im0.jpg", "val/im0.jpg"]
    val = load_ground_truth(tmp_path / "ds", split="val")
    assert val.index_of(file_name=names[0], image_id=1) is None and val.index_of(file_name=names[1], image_id=2) == 0
    assert [gt.index_of(file_name=n, image_id=k) for k, n in enumerate(names, 1)] == [0, 1]


def test_a_pr_curve_of_one_detection_is_drawn(tmp_path):
    # one GT box and one right detection: a curve of one point, drawn as nothing over empty axes ("AP50 = 1.000")
    from PIL import Image

    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0}], "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "in" / "p.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30],
                                                         "score": 0.9}]))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(tmp_path / "in" / "gt.json"), "-f", "coco", "--pred",
                                 str(tmp_path / "in" / "p.json"), "--plots", str(tmp_path / "pl")])
    assert r.exit_code == 0, r.output
    png = np.asarray(Image.open(tmp_path / "pl" / "pr_cat.png").convert("RGB")).astype(int)
    orange = (np.abs(png - [255, 127, 14]).sum(-1) < 60).sum()  # the interpolated curve's colour
    assert orange > 500  # a line across the plot, not the legend's sample alone (about 100)


def test_a_prediction_named_exactly_as_its_image_is_that_image(tmp_path):
    # CVAT's instances_default.json names train/a.jpg: the split-folder rule refused the image's own name (exit 1)
    gt = {"images": [{"id": 1, "file_name": "train/a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0}], "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "instances_default.json").write_text(json.dumps(gt))
    keys = load_ground_truth(tmp_path / "instances_default.json", format="coco")
    assert keys.index_of(file_name="train/a.jpg") == 0 and keys.index_of(file_name="train/a") == 0
