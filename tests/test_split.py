"""split: stratification on a skewed set, groups, hash stability, k-fold, determinism, and the three output layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli
from datatools.core.errors import FormatError, UsageError
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.split import iterative_stratification, parse_group_by, plan_split, read_group_file
from tests.conftest import SAMPLE, make_voc_root, tree_digest, voc_xml


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


# --------------------------------------------------------------------------------------------------- group sources

def video_of(image_id: str) -> str:
    return image_id.split("/")[-1].split("_")[0]


def coco_with_videos(tmp_path, n: int = 240, missing: int = 0):
    """A COCO file whose image dicts carry ``video_id`` (an int) and ``meta.sequence``; the first ``missing`` images
    have neither."""
    base = skewed_dataset(n=n)
    names = list(base.classes)
    images, anns = [], []
    for k, r in enumerate(base.images, 1):
        v = int(r.image_id[3:5])
        im = {"id": k, "file_name": r.image_id + ".jpg", "width": 100, "height": 100}
        if k > missing:
            im |= {"video_id": v, "meta": {"sequence": f"seq{v}", "camera": "left"}}
        images.append(im)
        for a in r.annotations:
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": names.index(a.label) + 1,
                         "bbox": [1, 1, 19, 19], "area": 361, "iscrowd": 0})
    path = tmp_path / "videos.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(names)]}))
    return path


def voc_with_videos(tmp_path, n: int = 120, missing: int = 0):
    """A VOC root whose XMLs name their video in ``<source><video>``; the first ``missing`` have no such tag."""
    base = skewed_dataset(n=n)
    items = {}
    for k, r in enumerate(base.images):
        video = f"<source><database>shapes</database><video>{video_of(r.image_id)}</video></source>"
        extra = "" if k < missing else video
        objs = [{"name": a.label, "box": (2, 2, 20, 20)} for a in r.annotations]
        items[r.image_id] = voc_xml(r.image_id + ".jpg", (100, 100), objs, extra=extra)
    return make_voc_root(tmp_path / "voc", items)


def write_table(path, rows, sep=","):
    path.write_text("".join(sep.join(row) + "\n" for row in rows), encoding="utf-8")
    return path


def group_source(kind: str, tmp_path):
    """(dataset, group_by) for every kind of group source; every one groups by the video of the image id."""
    if kind == "coco-attr":
        return formats.get("coco").read(coco_with_videos(tmp_path)), "attr:video_id"
    if kind == "coco-nested-attr":
        return formats.get("coco").read(coco_with_videos(tmp_path)), "attr:meta.sequence"
    if kind == "voc-attr":
        return formats.get("voc").read(voc_with_videos(tmp_path)), "attr:source.video"
    ds = skewed_dataset(n=240)
    ids = [r.image_id for r in ds.images]
    if kind == "regex":
        return ds, r"^(vid\d+)_"
    if kind == "regex-prefixed":
        return ds, r"regex:^(vid\d+)_"
    if kind == "mapping":
        return ds, {i: video_of(i) for i in ids}
    if kind == "csv":
        return ds, read_group_file(write_table(tmp_path / "g.csv", [(i, video_of(i)) for i in ids]))
    if kind == "csv-header-file-names":  # a header row and image file names instead of ids
        rows = [("filename", "video")] + [(i + ".jpg", video_of(i)) for i in ids]
        return ds, read_group_file(write_table(tmp_path / "g.csv", rows))
    if kind == "tsv-named-columns":
        rows = [("video", "frame", "image_id")] + [(video_of(i), i[-4:], i) for i in ids]
        return ds, read_group_file(write_table(tmp_path / "g.tsv", rows, "\t"), group_column="video",
                                   image_column="image_id")
    raise AssertionError(kind)


GROUP_SOURCES = ["regex", "regex-prefixed", "mapping", "csv", "csv-header-file-names", "tsv-named-columns",
                 "coco-attr", "coco-nested-attr", "voc-attr"]


@pytest.mark.parametrize("kind", GROUP_SOURCES)
@pytest.mark.parametrize("method,kfold", [("group", 0), ("group", 4), ("hash", 0), ("hash", 4)])
def test_groups_from_every_source_never_straddle_parts(kind, method, kfold, tmp_path):
    ds, group_by = group_source(kind, tmp_path)
    plan = plan_split(ds, val=None if kfold else 0.2, test=0.1, method=method, group_by=group_by, kfold=kfold)
    videos = {video_of(r.image_id) for r in ds.images}
    # hash on 20 videos may leave a 10% part without any: that is reported, never hidden
    assert plan.groups == len(videos) and all(method == "hash" and f.code == "empty-part" for f in plan.findings)
    for sub, assign in plan.layouts():  # every fold too, not only the parts
        split_of_video: dict[str, set[str]] = {}
        for iid, split in assign.items():
            split_of_video.setdefault(video_of(iid), set()).add(split)
        assert all(len(s) == 1 for s in split_of_video.values()), sub
    assert sum(len(ids) for ids in plan.parts.values()) == len(ds.images)
    assert plan.to_dict()["group_source"]


@pytest.mark.parametrize("kind", ["csv", "coco-attr", "voc-attr"])
def test_group_sources_agree_and_are_deterministic(kind, tmp_path):
    """The same grouping from another source gives the same plan; the same input gives the same plan twice."""
    ds, group_by = group_source(kind, tmp_path)
    a = plan_split(ds, val=0.2, test=0.1, method="group", group_by=group_by, seed=5)
    b = plan_split(ds, val=0.2, test=0.1, method="group", group_by=group_by, seed=5)
    assert a.parts == b.parts and a.deviation == b.deviation
    assert set(a.deviation) == {"images", "class_objects", "worst_class", "worst_part"}


def test_hash_hashes_the_group_key_and_is_stable_under_growth(tmp_path):
    big = skewed_dataset(n=600)
    small = big.evolve(images=big.images[::4])
    table = {r.image_id: video_of(r.image_id) for r in big.images}
    a = plan_split(small, val=0.2, method="hash", group_by=table).part_of()
    b = plan_split(big, val=0.2, method="hash", group_by=table).part_of()
    assert all(b[iid] == part for iid, part in a.items())
    # The part depends on the group key only: the same key through a regex or an attribute lands the same way.
    c = plan_split(big, val=0.2, method="hash", group_by=r"^(vid\d+)_").part_of()
    assert b == c


@pytest.mark.parametrize("kind,code,missing", [
    ("regex", "group-unmatched", 3),
    ("file", "group-missing", 5),
    ("file-empty-cell", "group-missing", 2),
    ("coco-attr", "group-attr-missing", 4),
    ("voc-attr", "group-attr-missing", 6),
])
def test_images_without_a_group_are_reported_and_kept_as_their_own_group(kind, code, missing, tmp_path):
    if kind == "coco-attr":
        ds, group_by = formats.get("coco").read(coco_with_videos(tmp_path, missing=missing)), "attr:video_id"
    elif kind == "voc-attr":
        ds, group_by = formats.get("voc").read(voc_with_videos(tmp_path, missing=missing)), "attr:source.video"
    else:
        ds = skewed_dataset(n=240)
        ids = [r.image_id for r in ds.images]
        if kind == "regex":
            ds = ds.evolve(images=ds.images + tuple(ImageRecord(f"loose{k}", "x.jpg", 10, 10) for k in range(missing)))
            group_by = r"^(vid\d+)_"
        elif kind == "file":
            group_by = read_group_file(write_table(tmp_path / "g.csv", [(i, video_of(i)) for i in ids[missing:]]))
        else:
            rows = [(i, "" if k < missing else video_of(i)) for k, i in enumerate(ids)]
            group_by = read_group_file(write_table(tmp_path / "g.csv", rows))
    plan = plan_split(ds, val=0.2, method="group", group_by=group_by)
    videos = {video_of(r.image_id) for r in ds.images if r.image_id.startswith("vid")}
    found = [f for f in plan.findings if f.code == code]
    assert len(found) == 1 and found[0].message.startswith(f"{missing} image")
    assert sum(len(ids) for ids in plan.parts.values()) == len(ds.images)  # nothing dropped
    assert plan.groups == len(videos) + missing  # each keyless image is a group of its own (videos have 12 frames)


def test_group_file_rows_for_unknown_images_are_reported(tmp_path):
    ds = skewed_dataset(n=60)
    rows = [(r.image_id, video_of(r.image_id)) for r in ds.images] + [("ghost_1", "g"), ("ghost_2", "g")]
    plan = plan_split(ds, method="group", group_by=read_group_file(write_table(tmp_path / "g.csv", rows)))
    assert [f.code for f in plan.findings] == ["group-unknown-image"]
    assert plan.findings[0].message.startswith("2 row(s)")


@pytest.mark.parametrize("text,rows", [
    ("a,1\nb,2\n", [("a", "1"), ("b", "2")]),
    ("image,group\na,1\n", [("image", "group"), ("a", "1")]),  # a header is dropped later if it names no image
    ("a\t1\n\n# comment\nb\t2\n", [("a", "1"), ("b", "2")]),
    ("a;1\nb;2\n", [("a", "1"), ("b", "2")]),
    ('"a,x",1\n./b,"2"\n', [("a,x", "1"), ("b", "2")]),
    ("\ufeffa,1,extra\nb,2,extra\n", [("a", "1"), ("b", "2")]),
])
def test_read_group_file_forms(text, rows, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text(text, encoding="utf-8")
    assert [(im, g) for _, im, g in read_group_file(p).rows] == rows


@pytest.mark.parametrize("text,kwargs,error,match", [
    ("", {}, FormatError, "no rows"),
    ("just-one-column\n", {}, FormatError, "line 1: expected two columns"),
    ("a,1\nb\n", {}, FormatError, "line 2: expected at least 2 columns"),
    ("a,1\nb,2\na,3\n", {}, FormatError, "line 3: image 'a' is given group '3' here but '1' on line 1"),
    (",1\n", {}, FormatError, "line 1: the column 1 cell is empty"),
    ("image,video\na,1\n", {"group_column": "clip"}, UsageError, "--group-column 'clip' is not in the header row"),
    ("image,video\na,1\n", {"image_column": "file", "group_column": "video"}, UsageError, "--image-column 'file'"),
    ("image,video\na,1\n", {"image_column": "video", "group_column": "video"}, UsageError, "the same column"),
])
def test_read_group_file_errors_name_file_line_and_problem(text, kwargs, error, match, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(error, match=match) as e:
        read_group_file(p, **kwargs)
    assert str(p) in str(e.value)


def test_read_group_file_refuses_non_utf8(tmp_path):
    p = tmp_path / "g.csv"
    p.write_bytes(b"a,\xff\xfe\n")
    with pytest.raises(FormatError, match="UTF-8"):
        read_group_file(p)


@pytest.mark.parametrize("text,parsed", [
    (r"^(vid\d+)_", ("regex", r"^(vid\d+)_")),
    (r"regex:^(vid\d+)_", ("regex", r"^(vid\d+)_")),
    ("regex:attr:x", ("regex", "attr:x")),
    ("attr:video_id", ("attr", "video_id")),
    ("attr: source.video ", ("attr", "source.video")),
    ("vid:(\\d+)", ("regex", "vid:(\\d+)")),  # an unknown prefix is part of the regex
])
def test_parse_group_by(text, parsed):
    assert parse_group_by(text) == parsed


@pytest.mark.parametrize("make,group_by,match", [
    ("memory", "attr:video_id", "no image has a field 'video_id'"),
    ("coco", "attr:clip", "no image has a field 'clip'; the image dicts here have: .*video_id"),
    ("voc", "attr:source.clip", "no image has a field 'source.clip'; the annotations here have: .*folder"),
    ("yolo", "attr:video_id", "YOLO labels have no image-level fields"),
    ("memory", "attr:", "give a field name"),
    ("memory", "regex:", "give a pattern"),
    ("memory", "(unclosed", "not a valid regular expression"),
])
def test_bad_group_sources_are_usage_errors(make, group_by, match, tmp_path):
    if make == "coco":
        ds = formats.get("coco").read(coco_with_videos(tmp_path, n=24))
    elif make == "voc":
        ds = formats.get("voc").read(voc_with_videos(tmp_path, n=24))
    else:
        ds = skewed_dataset(n=24).evolve(format="yolo" if make == "yolo" else "")
    with pytest.raises(UsageError, match=match):
        plan_split(ds, method="group", group_by=group_by)


def test_group_file_matching_no_image_is_a_clear_error(tmp_path):
    gf = read_group_file(write_table(tmp_path / "g.csv", [("IMG_1", "a"), ("IMG_2", "b")]))
    with pytest.raises(FormatError, match="none of the 24 images is in the file"):
        plan_split(skewed_dataset(n=24), method="group", group_by=gf)


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


def copy_to_memory(local) -> str:
    """A local tree copied into fsspec's in-memory filesystem; its ``memory://`` URL (no OS call can open it)."""
    import uuid

    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    base = f"/split{uuid.uuid4().hex[:8]}/{local.name}"
    for p in sorted(local.rglob("*")):
        if p.is_file():
            mem.pipe_file(f"{base}/{p.relative_to(local).as_posix()}", p.read_bytes())
    return "memory://" + base


@pytest.mark.parametrize("args", [["--val", "0.2", "--test", "0.1"], ["--kfold", "3"],
                                  ["--method", "group", "--group-by", "attr:file_name"]])
def test_cli_coco_url_source_splits_like_the_local_copy(args, tmp_path):
    """A COCO source behind a URL: the JSON files are read again through core.fs (they once went to Path.read_bytes
    and crashed with a traceback); OUT must be the bytes the local copy gives, images included."""
    src = tmp_path / "coco"
    assert run("voc2coco", SAMPLE, src, "--images-mode", "copy").exit_code == 0
    url = copy_to_memory(src)
    local, remote = tmp_path / "local", tmp_path / "remote"
    r1 = run("split", src, local, "--images-mode", "copy", "--json", *args)
    r2 = run("split", url, remote, "--images-mode", "copy", "--json", *args)
    assert r1.exit_code == 0, r1.output
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.output)["assignment"] == json.loads(r1.output)["assignment"]
    assert tree_digest(remote) == tree_digest(local)
    assert len(list(remote.rglob("*.jpg"))) == 200 * (3 if "--kfold" in args else 1)
    assert len(list(remote.rglob("instances_*.json"))) >= 2


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


# --------------------------------------------------------------------------------------------------- CLI: groups

def sample_groups_file(tmp_path, *, skip: int = 0, header: bool = True):
    """sample_data's 200 images in 20 groups of 10 (shapes_0000..0009 -> g00, ...); the first ``skip`` left out."""
    ids = [f"shapes_{i:04d}" for i in range(200)]
    rows = ([("image_id", "scene")] if header else []) + [(i, f"g{int(i[-4:]) // 10:02d}") for i in ids[skip:]]
    return write_table(tmp_path / "groups.csv", rows)


def assert_no_group_straddles(out, kfold: int, group_of) -> None:
    for sub in [f"fold_{i}" for i in range(kfold)] or [""]:
        lists = out / sub / "ImageSets/Main"
        split_of: dict[str, set[str]] = {}
        for s in ("train", "val", "test"):
            if (lists / f"{s}.txt").exists():
                for iid in (lists / f"{s}.txt").read_text().split():
                    split_of.setdefault(group_of(iid), set()).add(s)
        assert split_of and all(len(v) == 1 for v in split_of.values()), sub


@pytest.mark.parametrize("extra,kfold", [
    ([], 0),
    (["--group-column", "scene"], 3),
    (["--method", "hash"], 0),
    (["--method", "hash", "--group-column", "scene", "--image-column", "image_id"], 3),
])
def test_cli_groups_file_on_voc(extra, kfold, tmp_path):
    gfile = sample_groups_file(tmp_path, skip=4)
    out = tmp_path / "out"
    args = ["split", SAMPLE, out, "--groups", gfile, "--test", "0.1", *extra] + (["--kfold", kfold] if kfold else [])
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["method"] == ("hash" if "hash" in extra else "group")
    assert d["groups"] == 20 + 4 and d["group_source"] == f"file:{gfile}"
    assert [(f["code"], f["message"].split(" ")[0]) for f in d["findings"]] == [("group-missing", "4")]
    assert_no_group_straddles(out, kfold, lambda iid: f"g{int(iid[-4:]) // 10:02d}" if iid >= "shapes_0004" else iid)
    first = tree_digest(out)
    assert run(*args).exit_code == 0
    assert tree_digest(out) == first  # deterministic bytes


@pytest.mark.parametrize("method", ["group", "hash"])
def test_cli_attr_on_coco_and_voc(method, tmp_path):
    coco = coco_with_videos(tmp_path)
    r = run("split", coco, tmp_path / "c", "--group-by", "attr:video_id", "--method", method, "--kfold", "3", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["groups"] == 20 and d["group_source"] == "attr:video_id" and not d["findings"]
    for i in range(3):
        video_split: dict[int, set[str]] = {}
        for s in ("train", "val"):
            doc = json.loads((tmp_path / "c" / f"fold_{i}/annotations/instances_{s}.json").read_text())
            for im in doc["images"]:
                video_split.setdefault(im["video_id"], set()).add(s)
                assert im["meta"]["camera"] == "left"  # every image field kept
        assert len(video_split) == 20 and all(len(v) == 1 for v in video_split.values())
    voc = voc_with_videos(tmp_path, missing=3)
    r = run("split", voc, tmp_path / "v", "--group-by", "attr:source.video", "--method", method)
    assert r.exit_code == 0, r.output
    assert "13 groups (attr:source.video)" in " ".join(r.output.split())
    d = json.loads(run("split", voc, tmp_path / "v", "--group-by", "attr:source.video", "--method", method,
                       "--json").output)
    assert [f["message"] for f in d["findings"]] == [
        "3 image(s) have no field 'source.video' and are each their own group "
        "(first: vid00_frame0000, vid00_frame0001, vid00_frame0002)"]
    assert_no_group_straddles(tmp_path / "v", 0, lambda iid: video_of(iid) if iid >= "vid00_frame0003" else iid)


BAD_GROUP_ARGS = [
    # (arguments after SRC OUT, the groups file text or None, exit code, what the message says)
    (["--groups", "{dir}/nope.csv"], None, 2, "does not exist"),
    (["--groups", "{gfile}"], "shapes_0000,a\nshapes_0001\n", 1, "line 2: expected at least 2 columns"),
    (["--groups", "{gfile}"], "shapes_0000,a\nshapes_0000,b\n", 1, "given group 'b' here but 'a' on line 1"),
    (["--groups", "{gfile}"], "", 1, "no rows"),
    (["--groups", "{gfile}"], "IMG_1,a\nIMG_2,b\n", 1, "none of the 200 images is in the file"),
    (["--groups", "{gfile}", "--group-column", "video"], "image,scene\nshapes_0000,a\n", 2,
     "--group-column 'video' is not in the header row"),
    (["--group-column", "scene"], None, 2, "go with --groups FILE"),
    (["--groups", "{gfile}", "--group-by", "x"], "shapes_0000,a\n", 2, "either --group-by or --groups"),
    (["--groups", "{gfile}", "--method", "stratified"], "shapes_0000,a\n", 2, "apply to --method group or hash"),
    (["--group-by", "attr:video_id"], None, 2, "no image has a field 'video_id'; the annotations here have: "),
    (["--group-by", "attr:"], None, 2, "give a field name after 'attr:'"),
    (["--group-by", "regex:(x"], None, 2, "not a valid regular expression"),
]


@pytest.mark.parametrize("args,text,code,message", BAD_GROUP_ARGS)
def test_cli_bad_group_inputs_give_a_clear_message(args, text, code, message, tmp_path):
    gfile = tmp_path / "g.csv"
    if text is not None:
        gfile.write_text(text, encoding="utf-8")
    args = [a.format(dir=tmp_path, gfile=gfile) for a in args]
    r = CliRunner().invoke(cli, ["split", str(SAMPLE), str(tmp_path / "o"), *args])
    assert r.exit_code == code, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output  # never a traceback
    assert message in " ".join(r.output.split()), r.output
    assert not (tmp_path / "o").exists()


def test_cli_attr_on_yolo_is_a_clear_error(tmp_path):
    src = tmp_path / "y"
    assert run("voc2yolo", SAMPLE, src).exit_code == 0
    r = CliRunner().invoke(cli, ["split", "-f", "yolo", str(src), str(tmp_path / "o"), "--group-by", "attr:video"])
    assert r.exit_code == 2 and "YOLO labels have no image-level fields" in " ".join(r.output.split())


def class_image_deviation(plan, min_images: int) -> float:
    """The largest |share of a class's images in a part - asked share|, over classes with at least min_images."""
    worst = 0.0
    for c in plan.dataset.classes:
        tot = sum(r.class_images[c] for r in plan.reports)
        if tot >= min_images:
            worst = max(worst, max(abs(r.class_images[c] / tot - r.asked) for r in plan.reports))
    return worst


@pytest.mark.parametrize("kwargs,sizes", [
    ({"val": 0.2, "test": 0.1}, {"train": 420, "val": 120, "test": 60}),
    ({"val": 40, "test": 20}, {"train": 540, "val": 40, "test": 20}),
    ({"val": 1}, {"train": 599, "val": 1}),
    ({"kfold": 3, "test": 30}, {"test": 30, "fold_0": 190, "fold_1": 190, "fold_2": 190}),
    ({"method": "group", "group_by": r"^(vid\d+)_", "val": 0.2, "test": 0.1}, {"train": 420, "val": 120, "test": 60}),
    ({"method": "group", "group_by": r"^(vid\d+)_", "kfold": 5}, {f"fold_{i}": 120 for i in range(5)}),
])
def test_stratified_and_group_parts_hold_exactly_the_asked_images(kwargs, sizes):
    """Object-count stratification alone left parts ~5% off in images on this set (64.5/22.5/13 for 70/20/10), and a
    count asked was not the count got. Now sizes are exact (groups of 12: 420/120/60 is reachable), and the classes
    stay balanced in objects and in images."""
    ds = skewed_dataset()
    for seed in range(3):
        plan = plan_split(ds, seed=seed, **kwargs)
        assert {name: len(ids) for name, ids in plan.parts.items()} == sizes
        assert plan.deviation["images"] < 1e-9
        if "kfold" not in kwargs and kwargs.get("val") != 1:
            # A test part of 20 images: one object of the rarest class (about 20 in all) moves its share by 5%.
            assert class_deviation(plan) < (0.07 if kwargs.get("val") == 40 else 0.05)
            assert class_image_deviation(plan, min_images=50) < 0.05


def test_stratified_balances_class_images_as_well_as_objects():
    """Balancing objects alone left the images of a class up to 12% off its share on 3,000 skewed images."""
    ds = skewed_dataset(n=3000)
    plan = plan_split(ds, val=0.2, test=0.1, seed=0)
    assert class_deviation(plan) < 0.02
    assert class_image_deviation(plan, min_images=30) < 0.04
    assert plan.deviation["images"] < 1e-9


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_cli_a_split_over_an_earlier_one_leaves_none_of_its_files(fmt, tmp_path):
    """A first split with a test part, then one without, into the same OUT: the old test list (or JSON, or folder)
    must go, or its images come back into play beside the new train part. The tree must equal a fresh write."""
    src = {"voc": SAMPLE, "coco": tmp_path / "c.json", "yolo": tmp_path / "y"}[fmt]
    if fmt == "coco":
        assert run("voc2coco", SAMPLE, src).exit_code == 0
    if fmt == "yolo":
        assert run("voc2yolo", SAMPLE, src).exit_code == 0
    extra = ["--images", SAMPLE / "JPEGImages"] if fmt == "coco" else []
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert run("split", src, out, "--val", "0.2", "--test", "0.1", *extra).exit_code == 0
    assert run("split", src, out, "--val", "0.3", "--seed", "1", *extra).exit_code == 0
    assert run("split", src, fresh, "--val", "0.3", "--seed", "1", *extra).exit_code == 0
    yaml_ = "data.yaml"  # YOLO's names OUT by its absolute path (ultralytics resolves a relative one from the CWD)
    assert ({k: v for k, v in tree_digest(out).items() if k != yaml_} ==
            {k: v for k, v in tree_digest(fresh).items() if k != yaml_})
    if fmt == "yolo":
        assert (out / yaml_).read_text().replace(str(out), "X") == (fresh / yaml_).read_text().replace(str(fresh), "X")
    assert not [p for p in out.rglob("*") if "test" in p.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stage or trash left beside OUT


def test_cli_fewer_folds_over_more_removes_the_old_folds(tmp_path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert run("split", SAMPLE, out, "--kfold", "5").exit_code == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [f"fold_{i}" for i in range(5)]
    r = run("split", SAMPLE, out, "--kfold", "3", "--json")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["fold_0", "fold_1", "fold_2"]
    assert [f["code"] for f in json.loads(r.output)["write_findings"]] == ["stale-folds-removed"]
    assert run("split", SAMPLE, fresh, "--kfold", "3").exit_code == 0
    assert tree_digest(out) == tree_digest(fresh)


def test_split_warns_of_empty_parts_and_refuses_more_folds_than_images(tmp_path):
    ds = skewed_dataset(n=120)
    one_group = plan_split(ds, method="group", group_by=r"^(vid)", val=0.2)  # every id matches "vid": one group
    assert [(f.code, f.field) for f in one_group.findings] == [("empty-part", "val")]
    assert len(one_group.parts["train"]) == 120 and not one_group.parts["val"]
    with pytest.raises(UsageError, match="only 120 images"):
        plan_split(ds, kfold=300)
    with pytest.raises(UsageError, match="only 10 groups"):
        plan_split(ds, kfold=12, method="group", group_by=r"^(vid\d+)_")
    with pytest.raises(UsageError, match="no image id matches"):
        plan_split(ds, method="group", group_by=r"zzz(\d+)")
    with pytest.raises(UsageError, match=r"--val 100 \+ --test 30 is 130 of the 120 images"):
        plan_split(ds, val=100, test=30)
    assert plan_split(ds, val=0.2, test=0.1).asked == {"train": 0.7, "val": 0.2, "test": 0.1}


def test_cli_yolo_split_without_val_says_that_val_is_train(tmp_path):
    import yaml

    src = tmp_path / "y"
    assert run("voc2yolo", SAMPLE, src).exit_code == 0
    r = run("split", src, tmp_path / "o", "--method", "group", "--group-by", "^(shapes)", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert [f["code"] for f in d["findings"]] == ["empty-part"]
    assert [f["code"] for f in d["write_findings"]] == ["val-is-train"]
    assert yaml.safe_load((tmp_path / "o" / "data.yaml").read_text())["val"] == "images/train"


def test_cli_images_mode_none_and_kfold_over_a_plain_split(tmp_path):
    src = tmp_path / "y"
    assert run("voc2yolo", SAMPLE, src).exit_code == 0
    out = tmp_path / "out"
    assert run("split", src, out, "--val", "0.2", "--seed", "1").exit_code == 0
    r = run("split", src, out, "--val", "0.2", "--seed", "2", "--images-mode", "none", "--json")
    assert r.exit_code == 0, r.output
    assert not (out / "images").exists()  # the first split's images/train would sit under the second's labels
    assert "stale-images-removed" in [f["code"] for f in json.loads(r.output)["write_findings"]]
    r = run("split", src, out, "--kfold", "3", "--images-mode", "none", "--json")
    codes = [f["code"] for f in json.loads(r.output)["write_findings"]]
    assert "top-level-split-left" in codes and (out / "labels").is_dir() and (out / "fold_2" / "labels").is_dir()


def test_swaps_never_move_group_part_sizes_away_from_the_ask():
    """Groups of very different sizes: the class-balancing swaps may only keep or improve the part sizes that
    fit_part_sizes reached (a size weight once let a 10% test part end with 69 images where 57 were asked)."""
    from datatools.ops.split import balance_by_swaps, fit_part_sizes, integer_targets

    for seed in range(40):
        rng = np.random.default_rng(seed)
        g = int(rng.integers(5, 60))
        weights = rng.integers(1, 60, g).astype(float)
        counts = (rng.random((g, 4)) < 0.3) * rng.integers(1, 5, (g, 4))
        target = integer_targets(int(weights.sum()), np.array([0.7, 0.2, 0.1]))
        start = rng.integers(0, 3, g)
        fitted = fit_part_sizes(start, counts, target, weights=weights, rng=np.random.default_rng(0))
        swapped = balance_by_swaps(fitted, counts, target, weights=weights, rng=np.random.default_rng(0))
        err = lambda idx: np.abs(np.bincount(idx, weights=weights, minlength=3) - target).sum()
        assert err(swapped) <= err(fitted) <= err(start), seed


@pytest.mark.parametrize("val,parts", [(0.5, None), (2, None), (1.0, "has a point"), (200.0, "has a point"),
                                       (-1, "give a ratio"), (float("nan"), "give a ratio")])
def test_val_is_a_ratio_or_a_count_by_type_in_the_library_as_in_the_cli(small_voc, tmp_path, val, parts):
    """plan_split(val=...) reads an amount as the CLI does: a float below 1 is a ratio, an int a count of images,
    and 1.0 is refused (it once held out 1 image from Python while the CLI refused it)."""
    from datatools.core.errors import UsageError
    from datatools.formats import voc
    from datatools.ops.split import plan_split

    ds = voc.read(small_voc)
    if parts is None:
        plan = plan_split(ds, val=val, method="random")
        assert len(plan.parts["val"]) == 2 if val == 2 else 0 < len(plan.parts["val"]) < len(ds.images)
    else:
        with pytest.raises(UsageError, match=parts):
            plan_split(ds, val=val, method="random")
    r = CliRunner().invoke(cli, ["split", str(small_voc), str(tmp_path / "o"), "--val", str(val), "--json"])
    assert (r.exit_code == 0) == (parts is None) and "Traceback" not in r.output, r.output


def test_cli_prints_class_names_as_data(tmp_path):
    """A class named like console markup is printed as written in the deviation line (it was swallowed as a style,
    and "[/]" was a MarkupError traceback)."""
    names = ["[green]sq", "[/]", "[bold]x"]
    items = {f"im{i}": voc_xml(f"im{i}.jpg", (100, 100), [{"name": names[i % 3], "box": (10, 10, 50, 50)}]
                               + [{"name": names[(i // 3) % 3], "box": (20, 20, 60, 60)}] * (i % 4))
             for i in range(30)}
    root = make_voc_root(tmp_path / "voc", items)
    r = CliRunner().invoke(cli, ["split", str(root), str(tmp_path / "out"), "--dry-run", "--method", "random",
                                 "--seed", "5"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("largest deviation"))
    assert any(f"({n} in " in line for n in names), line


@pytest.mark.parametrize("command", ["split", "anchors", "sample", "report", "stats", "visualize"])
def test_cli_a_negative_seed_is_a_usage_error(command, tmp_path):
    args = {"split": ["--dry-run"], "sample": ["-n", "2"], "report": [], "stats": ["--labels-only"],
            "visualize": []}.get(command, [])
    out = [str(tmp_path / "out")] if command in ("split", "sample", "report", "visualize") else []
    r = CliRunner().invoke(cli, [command, str(SAMPLE), *out, *args, "--seed", "-1"])
    assert r.exit_code == 2 and "Invalid value for '--seed'" in r.output and "Traceback" not in r.output, r.output


def test_cli_says_which_annotation_files_no_part_holds(tmp_path):
    """A VOC root whose lists name only some files is split as listed; the files in no chosen list are said to be
    in no part (the reader's note was an info finding that split's output left out, so they vanished quietly)."""
    import shutil

    root = tmp_path / "v"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.py"))
    ids = (root / "ImageSets/Main/train.txt").read_text().split()[:50]
    (root / "ImageSets/Main/train.txt").write_text("\n".join(ids) + "\n")
    (root / "ImageSets/Main/val.txt").unlink()
    r = CliRunner().invoke(cli, ["split", str(root), str(tmp_path / "o"), "--dry-run"])
    assert r.exit_code == 0 and "150 annotation file(s) are in none of the chosen split lists" in r.output, r.output
    r = CliRunner().invoke(cli, ["split", str(root), str(tmp_path / "o"), "--dry-run", "--json"])
    assert json.loads(r.output)["images"] == 50 and json.loads(r.output)["not_read"][0].startswith("150 ")
