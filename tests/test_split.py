"""split: stratification on a skewed set, groups, hash stability, k-fold, determinism, and the three output layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli
from datatools.core.errors import UsageError
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.split import iterative_stratification, plan_split
from tests.conftest import SAMPLE, tree_digest


def skewed_dataset(n: int = 600, seed: int = 3, empty: int = 0) -> Dataset:
    """Classes from very common to rare (~1% of images), 1-4 objects each; ids 'vidNN_frameMMM'."""
    rng = np.random.default_rng(seed)
    probs = {"common": 0.6, "mid": 0.3, "few": 0.1, "rare": 0.03, "rarest": 0.012}
    recs = []
    for i in range(n):
        anns = []
        for name, p in probs.items():
            if rng.random() < p:
                anns += [Annotation(name, (1.0, 1.0, 20.0, 20.0))] * int(rng.integers(1, 5))
        if i < empty:
            anns = []
        recs.append(ImageRecord(image_id=f"vid{i // 12:02d}_frame{i:04d}", file_name=f"{i}.jpg", width=100,
                                height=100, annotations=tuple(anns)))
    return Dataset(images=tuple(recs), classes=tuple(probs), format="voc")


def class_deviation(plan, min_objects: int = 0) -> float:
    worst = 0.0
    for c in plan.dataset.classes:
        tot = sum(r.class_objects[c] for r in plan.reports)
        if tot < min_objects or not tot:
            continue
        worst = max(worst, max(abs(r.class_objects[c] / tot - r.asked) for r in plan.reports))
    return worst


def test_stratified_puts_every_class_close_to_the_asked_share():
    ds = skewed_dataset()
    strat = [class_deviation(plan_split(ds, val=0.2, test=0.1, seed=s)) for s in range(4)]
    rand = [class_deviation(plan_split(ds, val=0.2, test=0.1, method="random", seed=s)) for s in range(4)]
    assert max(strat) < 0.05  # rare classes (about 7 and 20 images) included
    assert np.mean(strat) < np.mean(rand) / 2
    plan = plan_split(ds, val=0.2, test=0.1, seed=0)
    for r in plan.reports:  # the rarest class reaches every part
        assert r.class_objects["rarest"] > 0


def test_iterative_stratification_respects_part_sizes_without_labels():
    rng = np.random.default_rng(0)
    out = iterative_stratification(np.zeros((100, 3)), np.array([70.0, 20.0, 10.0]), rng=rng)
    assert np.bincount(out).tolist() == [70, 20, 10]


@pytest.mark.parametrize("method", ["group", "hash"])
@pytest.mark.parametrize("kfold", [0, 4])
def test_groups_never_straddle_parts(method, kfold):
    ds = skewed_dataset()
    plan = plan_split(ds, val=None if kfold else 0.2, test=0.1, method=method, group_by=r"^(vid\d+)_", kfold=kfold)
    part_of_group: dict[str, set[str]] = {}
    for name, ids in plan.parts.items():
        for iid in ids:
            part_of_group.setdefault(iid.split("_")[0], set()).add(name)
    assert len(part_of_group) == 50 and plan.groups == 50
    assert all(len(parts) == 1 for parts in part_of_group.values())


def test_group_regex_without_capture_uses_whole_match_and_reports_unmatched():
    ds = skewed_dataset(n=120)
    ds = ds.evolve(images=ds.images + (ImageRecord("loose", "loose.jpg", 10, 10),))
    plan = plan_split(ds, method="group", group_by=r"vid\d+")
    assert plan.groups == 11  # 10 videos + the unmatched image on its own
    assert [f.code for f in plan.findings] == ["group-unmatched"]


def test_hash_is_stable_when_images_are_added():
    big = skewed_dataset(n=800)
    small = big.evolve(images=big.images[::3])
    a = plan_split(small, val=0.2, test=0.1, method="hash").part_of()
    b = plan_split(big, val=0.2, test=0.1, method="hash").part_of()
    assert all(b[iid] == part for iid, part in a.items())
    shares = {p: sum(1 for v in b.values() if v == p) / len(b) for p in ("train", "val", "test")}
    assert abs(shares["val"] - 0.2) < 0.05 and abs(shares["test"] - 0.1) < 0.05


@pytest.mark.parametrize("method,group_by", [("stratified", None), ("random", None), ("group", r"^(vid\d+)"),
                                             ("hash", None)])
@pytest.mark.parametrize("k,test", [(3, 0.0), (5, 0.1)])
def test_kfold_folds_are_disjoint_and_cover_everything(method, group_by, k, test):
    ds = skewed_dataset(n=300)
    plan = plan_split(ds, kfold=k, test=test, method=method, group_by=group_by)
    folds = [set(plan.parts[f"fold_{i}"]) for i in range(k)]
    held = set(plan.parts.get("test", ()))
    everything = set().union(*folds) | held
    assert everything == {im.image_id for im in ds.images}
    assert sum(len(f) for f in folds) + len(held) == len(ds.images)
    assert all(len(f) > 0 for f in folds)
    for sub, assign in plan.layouts():  # every fold is val exactly once; test is shared
        i = int(sub.split("_")[1])
        assert {iid for iid, s in assign.items() if s == "val"} == folds[i]
        assert {iid for iid, s in assign.items() if s == "test"} == held


@pytest.mark.parametrize("method", ["stratified", "random"])
def test_same_seed_same_plan_other_seed_other_plan(method):
    ds = skewed_dataset(n=300)
    a = plan_split(ds, method=method, seed=7).parts
    b = plan_split(ds, method=method, seed=7).parts
    c = plan_split(ds, method=method, seed=8).parts
    assert a == b and a != c


def test_counts_and_empty_images():
    ds = skewed_dataset(n=300, empty=40)
    plan = plan_split(ds, val=30, test=20, method="random")
    assert [len(plan.parts[p]) for p in ("train", "val", "test")] == [250, 30, 20]
    plan = plan_split(ds, val=0.2, test=0.1)
    empties = {r.name: r.empty for r in plan.reports}
    n_empty = sum(1 for im in ds.images if not im.annotations)
    assert n_empty >= 40
    assert sum(empties.values()) == n_empty and all(v > 0 for v in empties.values())
    assert abs(empties["val"] / n_empty - 0.2) < 0.1  # spread, not dumped into one part
    dropped = plan_split(ds, val=0.2, drop_empty=True)
    assert len(dropped.dropped_empty) == n_empty and len(dropped.dataset.images) == 300 - n_empty


@pytest.mark.parametrize("kwargs", [
    {"method": "hash", "val": 100},
    {"val": 0.6, "test": 0.4},
    {"method": "group"},
    {"method": "stratified", "group_by": "x"},
    {"kfold": 3, "val": 0.2},
    {"kfold": 1},
    {"method": "nope"},
    {"val": 2.5},
])
def test_bad_options_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        plan_split(skewed_dataset(n=50), **kwargs)


# --------------------------------------------------------------------------------------------------- CLI

def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_voc_writes_a_complete_root_and_leaves_the_input_alone(tmp_path):
    before = tree_digest(SAMPLE)
    out = tmp_path / "out"
    r = run("split", SAMPLE, out, "--val", "0.2", "--test", "0.1", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "largest deviation" in r.output
    assert tree_digest(SAMPLE) == before
    lists = {s: (out / f"ImageSets/Main/{s}.txt").read_text().split() for s in ("train", "val", "test", "trainval")}
    assert sorted(lists["trainval"]) == sorted(lists["train"] + lists["val"])
    assert len(lists["train"]) + len(lists["val"]) + len(lists["test"]) == 200
    assert (out / "Annotations/shapes_0000.xml").read_bytes() == (SAMPLE / "Annotations/shapes_0000.xml").read_bytes()
    back = formats.get("voc").read(out)
    assert len(back.images) == 200 and all(im.image_path for im in back.images)
    assert {im.image_id: im.splits for im in back.images}["shapes_0000"][0] in ("train", "val", "test")
    first = tree_digest(out)
    assert run("split", SAMPLE, out, "--val", "0.2", "--test", "0.1", "--seed", "3").exit_code == 0
    assert tree_digest(out) == first  # same seed, same bytes


def test_cli_yolo_split_with_json(tmp_path):
    import yaml

    src = tmp_path / "y"
    assert run("voc2yolo", SAMPLE, src).exit_code == 0
    out = tmp_path / "ys"
    r = run("split", "-f", "yolo", src, out, "--val", "40", "--test", "20", "--method", "random", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert [p["images"] for p in d["parts"]] == [140, 40, 20]
    for split, n in (("train", 140), ("val", 40), ("test", 20)):
        assert len(list((out / "labels" / split).glob("*.txt"))) == n
        assert len(list((out / "images" / split).glob("*.jpg"))) == n
        assert set(d["assignment"][split]) == {p.stem for p in (out / "labels" / split).glob("*.txt")}
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["val"] == "images/val" and data["test"] == "images/test" and data["nc"] == 4
    back = formats.get("yolo").read(out)
    assert back.num_objects == 591


def test_cli_coco_keeps_every_field_and_kfold(tmp_path):
    src = tmp_path / "c.json"
    assert run("voc2coco", SAMPLE, src).exit_code == 0
    original = json.loads(src.read_text())
    out = tmp_path / "cs"
    r = run("split", "-f", "coco", src, out, "--kfold", "3", "--images", SAMPLE / "JPEGImages")
    assert r.exit_code == 0, r.output
    for i in range(3):
        parts = [json.loads((out / f"fold_{i}/annotations/instances_{s}.json").read_text()) for s in ("train", "val")]
        assert sum(len(p["images"]) for p in parts) == len(original["images"])
        ids = [im["id"] for p in parts for im in p["images"]]
        assert sorted(ids) == sorted(im["id"] for im in original["images"])  # ids kept
        by_id = {a["id"]: a for a in original["annotations"]}
        for p in parts:
            assert p["categories"] == original["categories"] and p["info"] == original["info"]
            keep = {im["id"] for im in p["images"]}
            assert all(a == by_id[a["id"]] and a["image_id"] in keep for a in p["annotations"])
        assert sum(len(p["annotations"]) for p in parts) == len(original["annotations"])
    ds = formats.get("coco").read(out / "fold_0")
    assert len(ds.images) == 200 and all(im.image_path for im in ds.images)


def test_cli_refuses_output_inside_input_and_bad_ratios(tmp_path):
    r = CliRunner().invoke(cli, ["split", str(SAMPLE), str(SAMPLE / "out")])
    assert r.exit_code == 2 and "inside the input" in r.output
    assert not (SAMPLE / "out").exists()
    r = CliRunner().invoke(cli, ["split", str(SAMPLE), str(tmp_path / "o"), "--val", "1.5"])
    assert r.exit_code == 2


def test_cli_dry_run_writes_nothing(tmp_path):
    r = run("split", SAMPLE, tmp_path / "o", "--dry-run", "--method", "group", "--group-by", r"(\d)$")
    assert r.exit_code == 0 and "dry run" in r.output and "10 groups" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.realworld
def test_cli_split_on_real_voc(realworld, tmp_path):
    src = realworld / "bccd"
    before = tree_digest(src / "Annotations")
    out = tmp_path / "bccd"
    r = run("split", src, out, "--sets", "all", "--test", "0.1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    back = formats.get("voc").read(out)
    assert len(back.images) == d["images"] and back.num_objects == d["objects"]
    assert tree_digest(src / "Annotations") == before
