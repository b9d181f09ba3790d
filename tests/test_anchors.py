"""anchors: known clusters come back, IoU distance, scaling to the training size, determinism, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.core.errors import UsageError
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.anchors import box_sizes, compute_anchors, kmeans_iou, summarize, wh_iou
from tests.conftest import SAMPLE

TRUE_CENTRES = {
    3: [(12, 30), (60, 45), (200, 160)],
    5: [(10, 10), (16, 48), (64, 32), (120, 120), (300, 200)],
}


def clustered(centres, per: int = 150, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.repeat(np.asarray(centres, dtype=np.float64), per, axis=0)
    return c * np.exp(rng.normal(0, noise, c.shape))


@pytest.mark.parametrize("k", sorted(TRUE_CENTRES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_clusters_come_back(k, seed):
    wh = clustered(TRUE_CENTRES[k], seed=seed)
    anchors = kmeans_iou(wh, k, rng=np.random.default_rng(seed))
    truth = np.asarray(TRUE_CENTRES[k], dtype=np.float64)
    truth = truth[np.argsort(truth[:, 0] * truth[:, 1])]
    assert np.allclose(anchors, truth, rtol=0.05)  # sorted by area, each within 5% of its true centre
    res = summarize(wh, anchors, iou_thr=0.5)
    assert res.bpr == 1.0 and res.mean_iou > 0.85 and sorted(res.cluster_sizes) == [150] * k


@pytest.mark.parametrize("a,b,expected", [((10, 10), (10, 10), 1.0), ((10, 10), (20, 20), 0.25),
                                          ((10, 40), (40, 10), 100 / 700), ((4, 4), (2, 8), 8 / 24)])
def test_centred_iou(a, b, expected):
    assert wh_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_boxes_are_scaled_to_the_training_size_and_bad_ones_counted():
    recs = (ImageRecord("a", "a.jpg", 1280, 640, (Annotation("x", (0, 0, 100, 50)), Annotation("x", (5, 5, 5, 9)))),
            ImageRecord("b", "b.jpg", None, None, (Annotation("x", (0, 0, 10, 10)),)))
    ds = Dataset(images=recs, classes=("x",))
    wh, skipped = box_sizes(ds, img_size=640)
    assert wh.tolist() == [[50.0, 25.0]] and skipped == {"zero-size": 1, "no-image-size": 1}
    wh, skipped = box_sizes(ds, img_size=None)
    assert wh.tolist() == [[100.0, 50.0], [10.0, 10.0]] and skipped == {"zero-size": 1}


def test_boxes_are_clipped_to_the_image_as_training_clips_them():
    # a box past the image gave an anchor larger than any image ([1984, 1984] at 640 for a 100 x 80 image); a
    # coordinate of 1e308 made k-means fail with a RuntimeError traceback
    recs = (ImageRecord("a", "a.jpg", 100, 80, (Annotation("x", (-10, -10, 300, 300)),
                                                 Annotation("x", (10, 10, 1e308, 20)), Annotation("x", (200, 0, 300, 9)))),
            ImageRecord("b", "b.jpg", None, None, (Annotation("x", (0, 0, 1e308, 1e308)),)))
    wh, skipped = box_sizes(Dataset(images=recs, classes=("x",)), img_size=640)
    assert wh.tolist() == [[640.0, 512.0], [576.0, 64.0]] and skipped == {"zero-size": 1, "no-image-size": 1}
    wh, skipped = box_sizes(Dataset(images=recs, classes=("x",)), img_size=None)
    assert skipped == {"zero-size": 1, "not-finite": 1}
    res = compute_anchors(Dataset(images=recs, classes=("x",)), k=1)
    assert res.boxes == 2 and len(res.anchors) == 1 and all(math.isfinite(v) for v in res.anchors[0])


def test_seeded_and_deterministic():
    ds = Dataset(images=tuple(ImageRecord(f"i{i}", "x.jpg", 640, 640, tuple(
        Annotation("x", (0, 0, float(w), float(h))) for w, h in clustered(TRUE_CENTRES[5], per=20, noise=0.3, seed=i)))
        for i in range(3)), classes=("x",))
    a = compute_anchors(ds, k=5, seed=4)
    b = compute_anchors(ds, k=5, seed=4)
    assert a == b
    areas = [w * h for w, h in a.anchors]
    assert areas == sorted(areas) and 0 <= a.bpr <= 1 and len(a.yaml_rows()) == 1


def test_too_few_boxes_is_a_usage_error():
    ds = Dataset(images=(ImageRecord("a", "a.jpg", 10, 10, (Annotation("x", (0, 0, 5, 5)),)),), classes=("x",))
    with pytest.raises(UsageError):
        compute_anchors(ds, k=3)


def test_boxes_all_left_out_say_why(tmp_path):
    """A VOC set without <size> and without images: 'no boxes with a positive size' (exit 2) about boxes that had
    one; every box was left out for want of an image size, which --img-size 0 does without."""
    from tests.conftest import make_voc_root, voc_xml

    root = make_voc_root(tmp_path / "v", {f"a{i}": voc_xml(f"a{i}.jpg", None, [{"name": "x", "box": (1, 1, 5 + i, 9)}])
                                          for i in range(4)})
    r = CliRunner().invoke(cli, ["anchors", str(root), "-k", "2"])
    assert r.exit_code == 1 and "no-image-size 4" in r.output and "--img-size 0" in r.output, r.output
    r = CliRunner().invoke(cli, ["anchors", str(root), "-k", "2", "--img-size", "0"])
    assert r.exit_code == 0, r.output


def test_fewer_distinct_sizes_than_k_is_a_usage_error():
    """Ten identical boxes made three identical anchors, two of which no box used."""
    same = tuple(Annotation("x", (0, 0, 5, 5)) for _ in range(10))
    ds = Dataset(images=(ImageRecord("a", "a.jpg", 10, 10, same),), classes=("x",))
    with pytest.raises(UsageError, match="only 1 distinct size"):
        compute_anchors(ds, k=3, img_size=None)
    assert compute_anchors(ds, k=1, img_size=None).cluster_sizes == (10,)


def test_cli_anchors_on_sample_data():
    r = CliRunner().invoke(cli, ["anchors", str(SAMPLE), "-k", "9", "--img-size", "320", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    areas = [w * h for w, h in d["anchors"]]
    assert len(areas) == 9 and areas == sorted(areas)
    assert all(w <= 320 and h <= 320 for w, h in d["anchors"])
    assert 0.5 < d["mean_iou"] <= 1 and 0 < d["bpr"] <= 1 and d["boxes"] == 591 and sum(d["cluster_sizes"]) == 591
    assert [len(row) for row in d["yaml"]] == [6, 6, 6]
    table = CliRunner().invoke(cli, ["anchors", str(SAMPLE), "-k", "3"])
    assert table.exit_code == 0 and "mean best IoU" in table.output and "BPR" in table.output
    bad = CliRunner().invoke(cli, ["anchors", str(SAMPLE), "-k", "1000"])
    assert bad.exit_code == 2 and "lower -k" in bad.output
    # SRC as a file:// URL, as every other command takes it (anchors alone refused it: "does not exist").
    url = CliRunner().invoke(cli, ["anchors", SAMPLE.as_uri(), "-k", "9", "--img-size", "320", "--json"])
    assert url.exit_code == 0 and json.loads(url.output) == d, url.output


def test_classes_select_the_boxes_clustered():
    # --classes was read as YOLO names only, so on a VOC source every class's boxes were clustered
    runs = {c: json.loads(CliRunner().invoke(cli, ["anchors", str(SAMPLE), "-k", "3", "--json", *c]).output)
            for c in ((), ("--classes", "circle"), ("--classes", "circle,star"))}
    assert runs[()]["boxes"] == 591
    assert runs[("--classes", "circle")]["boxes"] == 157
    assert runs[("--classes", "circle,star")]["boxes"] == 157 + 151


def test_many_boxes_cluster_on_a_sample_that_keeps_every_size():
    """Past MAX_FIT boxes k-means runs on a seeded sample; a size too rare to be drawn still makes its anchor."""
    from datatools.ops.anchors import MAX_FIT, kmeans_iou

    wh = np.concatenate([np.full((MAX_FIT + 50_000, 2), 10.0), [[50.0, 50.0], [80.0, 20.0], [20.0, 80.0]]])
    anchors = kmeans_iou(wh, 4, rng=np.random.default_rng(0))
    assert sorted(map(tuple, anchors.tolist())) == [(10.0, 10.0), (20.0, 80.0), (50.0, 50.0), (80.0, 20.0)]
    again = kmeans_iou(wh, 4, rng=np.random.default_rng(0))
    assert np.array_equal(anchors, again)  # the same seed, the same sample and anchors


def test_crowd_regions_and_boxes_under_two_pixels_are_left_out_and_counted():
    """A crowd region (COCO iscrowd, an Open Images group) filled an anchor of its own though training never sees
    it; a 2 x 2 px car on a 4000 px aerial picture made the yaml row [0, 0, ...], an anchor that matches nothing."""
    recs = (ImageRecord("a", "a.jpg", 100, 80, (Annotation("x", (10, 10, 20, 25)), Annotation("x", (30, 30, 45, 40)),
                                                 Annotation("x", (0, 0, 100, 80), iscrowd=True))),
            ImageRecord("b", "b.jpg", 4000, 3000, (Annotation("x", (0, 0, 2, 2)), Annotation("x", (5, 5, 8, 7)),
                                                   Annotation("x", (9, 0, 10, 500)))))  # a pole: 1 px wide
    wh, skipped = box_sizes(Dataset(images=recs, classes=("x",)), img_size=None)
    assert wh.tolist() == [[10.0, 15.0], [15.0, 10.0], [2.0, 2.0], [3.0, 2.0], [1.0, 500.0]]
    assert skipped == {"crowd": 1}
    wh, skipped = box_sizes(Dataset(images=recs, classes=("x",)), img_size=640)
    assert skipped == {"crowd": 1, "under-2px": 2} and len(wh) == 3  # YOLOv5 keeps a box with one side of 2 px
    assert all(v >= 1 for row in compute_anchors(Dataset(images=recs, classes=("x",)), k=2).yaml_rows() for v in row)


@pytest.mark.parametrize("k, shape", [(9, [6, 6, 6]), (6, [4, 4, 4]), (3, [2, 2, 2]), (12, [6, 6, 6, 6]), (4, [8])])
def test_the_yaml_rows_are_a_yolov5_heads_levels(k, shape):
    """k = 6 gave two rows of three anchors: YOLOv5's three-level head takes three rows (anchors per level)."""
    wh = clustered([(10, 20), (40, 30), (90, 120), (200, 100)], per=60)
    res = summarize(wh, kmeans_iou(wh, k, rng=np.random.default_rng(0)))
    assert [len(row) for row in res.yaml_rows()] == shape


def test_anchors_say_how_many_objects_classes_left_out():
    res = CliRunner().invoke(cli, ["anchors", str(SAMPLE), "--classes", "circle", "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["skipped"] == {"other-class": 434}
