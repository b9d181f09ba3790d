"""Dataset surgery: merge, remap, filter, sample. Collisions, case variants, empty results and books that balance."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli
from datatools.core.errors import NoInputError, UsageError
from datatools.ops import surgery
from tests.conftest import make_voc_root, voc_xml


def voc(root: Path, objects: dict[str, list[tuple[str, tuple]]], *, sets=None) -> Path:
    """A VOC root: {image id: [(class, (xmin, ymin, xmax, ymax))]}, every image 100x80."""
    items = {iid: voc_xml(f"{iid}.jpg", (100, 80), [{"name": n, "box": b} for n, b in objs])
             for iid, objs in objects.items()}
    return make_voc_root(root, items, images={f"{i}.jpg": (100, 80) for i in objects}, sets=sets)


def boxes(root: Path, fmt: str = "voc") -> dict[str, list[tuple[str, tuple]]]:
    ds = formats.get(fmt).read(root)
    return {im.image_id: sorted((a.label, a.box) for a in im.annotations) for im in ds.images}


def books(report) -> None:
    s = report.summary
    assert s.objects_read == s.objects_written + sum(s.objects_dropped.values())
    assert s.images_read == s.images_written + sum(s.images_dropped.values())


@pytest.fixture
def two(tmp_path):
    a = voc(tmp_path / "a", {"x1": [("Dog", (1, 1, 20, 20))], "same": [("cat", (5, 5, 30, 30))]},
            sets={"train": ["x1"], "val": ["same"]})
    b = voc(tmp_path / "b", {"same": [("dog", (2, 2, 40, 40)), ("cat", (3, 3, 9, 9))], "y1": []},
            sets={"train": ["same", "y1"]})
    return a, b


def test_merge_collisions_renamed_deterministically_and_reported(two, tmp_path):
    a, b = two
    r = surgery.merge([a, b], tmp_path / "out")
    books(r)
    got = boxes(tmp_path / "out")
    assert set(got) == {"x1", "same", "same__src2", "y1"}
    assert got["same"] == [("cat", (5.0, 5.0, 30.0, 30.0))]  # the first source keeps the id
    assert got["same__src2"] == [("cat", (3.0, 3.0, 9.0, 9.0)), ("dog", (2.0, 2.0, 40.0, 40.0))]
    assert r.details["collisions"] == [{"source": 2, "image_id": "same", "renamed": "same__src2"}]
    assert r.summary.warnings["name-collision"] == 1
    assert (tmp_path / "out/JPEGImages/same__src2.jpg").is_file()
    assert (tmp_path / "out/ImageSets/Main/train.txt").read_text().split() == ["x1", "same__src2", "y1"]
    r2 = surgery.merge([a, b], tmp_path / "out2")
    assert (tmp_path / "out/Annotations/same__src2.xml").read_bytes() == \
        (tmp_path / "out2/Annotations/same__src2.xml").read_bytes()
    assert r2.to_dict()["collisions"] == r.to_dict()["collisions"]


def test_merge_case_variants_reported_then_folded(two, tmp_path):
    a, b = two
    r = surgery.merge([a, b], tmp_path / "kept")
    assert r.details["case_variants"] == [["Dog", "dog"]]
    assert r.summary.class_counts == {"Dog": 1, "cat": 2, "dog": 1}
    assert r.summary.warnings.get("name-case") == 1
    f = surgery.merge([a, b], tmp_path / "folded", normalize_names=True)
    assert f.summary.class_counts == {"cat": 2, "dog": 2}
    books(f)


def test_merge_chosen_splits_and_other_format(two, tmp_path):
    a, b = two
    r = surgery.merge([a, b], tmp_path / "y", splits=["train"], to="yolo")
    books(r)
    assert r.summary.images_dropped == {"split-not-chosen": 1} and r.summary.objects_dropped == {"split-not-chosen": 1}
    assert r.summary.splits == {"train": 3}
    assert sorted(p.name for p in (tmp_path / "y/labels/train").iterdir()) == ["same.txt", "x1.txt", "y1.txt"]
    with pytest.raises(UsageError):
        surgery.merge([a, b], tmp_path / "one.json")


def test_remap_rename_merge_drop_and_order(tmp_path):
    src = voc(tmp_path / "s", {"i1": [("car", (1, 1, 9, 9)), ("truck", (2, 2, 8, 8)), ("tree", (3, 3, 7, 7))],
                               "i2": [("person", (1, 1, 5, 5))]})
    r = surgery.remap(src, tmp_path / "o", "car:vehicle,truck:vehicle,tree:", order=["person", "vehicle"])
    books(r)
    assert r.summary.class_counts == {"person": 1, "vehicle": 2}
    assert r.details["classes_before"] == {"car": 1, "person": 1, "tree": 1, "truck": 1}
    assert r.summary.objects_dropped == {"class-removed": 1}
    assert boxes(tmp_path / "o")["i1"] == [("vehicle", (1.0, 1.0, 9.0, 9.0)), ("vehicle", (2.0, 2.0, 8.0, 8.0))]
    y = surgery.remap(src, tmp_path / "y", {"tree": None}, order=["truck", "person", "car"], to="yolo")
    assert (tmp_path / "y/classes.txt").read_text() == "truck\nperson\ncar\n"
    books(y)
    with pytest.raises(UsageError, match="leaves out"):
        surgery.remap(src, tmp_path / "z", {"tree": None}, order=["car"])


@pytest.mark.parametrize("name,text", [("m.yaml", "car: vehicle\ntruck: vehicle\ntree:\n"),
                                       ("m.csv", "old,new\ncar,vehicle\ntruck,vehicle\ntree,\n")])
def test_map_files(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    assert surgery.parse_mapping(p) == {"car": "vehicle", "truck": "vehicle", "tree": None}


@pytest.mark.parametrize("bad", ["car", "car:a,car:b", ":x"])
def test_bad_maps_are_usage_errors(bad):
    with pytest.raises(UsageError):
        surgery.parse_mapping(bad)


def test_remap_unknown_entry_is_a_warning(tmp_path):
    src = voc(tmp_path / "s", {"i1": [("car", (1, 1, 9, 9))]})
    r = surgery.remap(src, tmp_path / "o", "cra:vehicle")
    assert r.summary.warnings == {"map-unused": 1} and r.summary.class_counts == {"car": 1}


@pytest.fixture
def sizes(tmp_path):
    return voc(tmp_path / "s", {"big": [("a", (0, 0, 90, 70)), ("b", (10, 10, 14, 50))],
                                "small": [("a", (1, 1, 4, 4))], "none": [], "kid_1": [("b", (1, 1, 30, 30))]})


@pytest.mark.parametrize("tests,dropped,images", [
    ({"min_size": 5}, {"too-small": 2}, ["big", "kid_1", "none", "small"]),
    ({"max_size": 60}, {"too-large": 1}, ["big", "kid_1", "none", "small"]),
    ({"min_area": 100}, {"area-too-small": 1}, ["big", "kid_1", "none", "small"]),
    ({"classes": ["a"], "drop_empty": True}, {"class-not-kept": 2}, ["big", "small"]),
    ({"min_size": 5, "drop_empty": True}, {"too-small": 2}, ["big", "kid_1"]),
    ({"ids": r"^kid_"}, {"id-not-matched": 3}, ["kid_1"]),
])
def test_filter_counts_every_drop_by_reason(sizes, tmp_path, tests, dropped, images):
    r = surgery.filter_data(sizes, tmp_path / "o", **tests)
    books(r)
    assert r.summary.objects_dropped == dropped
    assert sorted(boxes(tmp_path / "o")) == images


def test_filter_only_empty_keeps_negatives(sizes, tmp_path):
    r = surgery.filter_data(sizes, tmp_path / "o", only_empty=True)
    books(r)
    assert list(boxes(tmp_path / "o")) == ["none"] and r.summary.images_dropped == {"image-not-empty": 3}


@pytest.mark.parametrize("tests", [{"ids": "nomatch"}, {"min_size": 1000}])
def test_empty_results_are_errors_not_empty_outputs(sizes, tmp_path, tests):
    with pytest.raises(NoInputError, match="nothing was written"):
        surgery.filter_data(sizes, tmp_path / "o", **tests)
    assert not (tmp_path / "o").exists()


def test_filter_bad_options(sizes, tmp_path):
    for kw in ({"classes": ["zebra"]}, {"ids": "("}, {"drop_empty": True, "only_empty": True}):
        with pytest.raises(UsageError):
            surgery.filter_data(sizes, tmp_path / "o", **kw)


@pytest.fixture
def skewed(tmp_path):
    """40 images: 'rare' on 2 of them, 'common' on all."""
    objs = {f"im{i:02d}": [("common", (1, 1, 20, 20))] + ([("rare", (30, 30, 50, 50))] if i in (7, 31) else [])
            for i in range(40)}
    return voc(tmp_path / "s", objs)


def test_stratified_sample_keeps_every_class_and_is_seeded(skewed, tmp_path):
    for seed in range(5):
        r = surgery.sample(skewed, tmp_path / f"o{seed}", n=4, stratified=True, seed=seed)
        books(r)
        assert r.summary.images_written == 4 and r.summary.class_counts["rare"] >= 1
        assert r.details["sample"]["classes_missing"] == []
    again = surgery.sample(skewed, tmp_path / "again", n=4, stratified=True, seed=3)
    assert sorted(boxes(tmp_path / "again")) == sorted(boxes(tmp_path / "o3"))
    assert again.summary.images_dropped == {"not-sampled": 36}


def test_random_sample_size_and_limits(skewed, tmp_path):
    r = surgery.sample(skewed, tmp_path / "o", frac=0.25, seed=1)
    books(r)
    assert r.summary.images_written == 10
    with pytest.raises(UsageError):
        surgery.sample(skewed, tmp_path / "x", n=41)


def test_out_inside_src_refused(two):
    a, b = two
    with pytest.raises(UsageError, match="inside"):
        surgery.filter_data(a, a / "sub", min_size=1)
    with pytest.raises(UsageError, match="inside"):
        surgery.merge([a, b], b / "m")


@pytest.mark.parametrize("args", [
    ["merge", "{a}", "{b}", "{out}", "--to", "coco"],
    ["remap", "{a}", "{out}", "--map", "Dog:dog"],
    ["filter", "{a}", "{out}", "--min-size", "10"],
    ["sample", "{a}", "{out}", "-n", "1", "--stratified"],
])
def test_cli_commands_json(two, tmp_path, args):
    a, b = two
    out = tmp_path / "cli_out"
    res = CliRunner().invoke(cli, [x.format(a=a, b=b, out=out) for x in args] + ["--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["command"] == args[0] and d["objects"]["balanced"] and out.is_dir()


def test_cli_errors_are_one_line(two, tmp_path):
    a, b = two
    r = CliRunner().invoke(cli, ["filter", str(a), str(tmp_path / "o"), "--ids", "zzz"])
    assert r.exit_code == 1 and "Traceback" not in r.output and "no image is left" in r.output
    r = CliRunner().invoke(cli, ["sample", str(a), str(tmp_path / "o")])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["merge", str(a), str(tmp_path / "o")])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["remap", str(a), str(tmp_path / "o"), "--map", "Dog"])
    assert r.exit_code == 2 and "old:new" in r.output


def test_merge_mixed_formats_and_images_mode(two, tmp_path):
    import datatools

    a, b = two
    datatools.convert("voc", b, "yolo", tmp_path / "b_yolo")
    r = surgery.merge([a, tmp_path / "b_yolo"], tmp_path / "c", to="coco", images_mode="copy")
    books(r)
    assert [s["format"] for s in r.details["sources"]] == ["voc", "yolo"]
    doc = json.loads((tmp_path / "c/annotations/instances_train.json").read_text())
    assert sorted(im["file_name"] for im in doc["images"]) == ["same__src2.jpg", "x1.jpg", "y1.jpg"]
    assert [a["id"] for a in doc["annotations"]] == [1, 2, 3]
    copied = tmp_path / "c/images/train/same__src2.jpg"
    assert copied.is_file() and copied.stat().st_nlink == 1


def test_filter_without_tests_is_a_conversion(two, tmp_path):
    """Surgery writes through convert's own tail (prepare, the books, the write): a filter that keeps everything
    gives the summary and the files of a VOC -> VOC conversion."""
    from datatools.ops.convert import convert
    from tests.conftest import tree_digest

    a, _ = two
    conv = convert("voc", a, "voc", tmp_path / "c").to_dict()
    filt = surgery.filter_data(a, tmp_path / "f").summary.to_dict()
    assert {**conv, "out": ""} == {**filt, "out": ""} and conv["objects"]["read"] == 2
    assert tree_digest(tmp_path / "c") == tree_digest(tmp_path / "f")


def test_cli_surgery_prints_converts_summary_with_its_own_details(two, tmp_path):
    a, b = two
    conv = CliRunner().invoke(cli, ["convert", "--from", "voc", "--to", "voc", str(a), str(tmp_path / "c")])
    filt = CliRunner().invoke(cli, ["filter", str(a), str(tmp_path / "f")])
    assert conv.exit_code == filt.exit_code == 0, (conv.output, filt.output)
    books = [o[o.index("┏"):o.index("Classes")] for o in (conv.output, filt.output)]
    tail = [o.split("difficult objects:")[1].replace("\n", "").replace(str(out), "OUT")
            for o, out in ((conv.output, tmp_path / "c"), (filt.output, tmp_path / "f"))]
    assert books[0] == books[1] and tail[0] == tail[1]  # one renderer: the same books, difficult line, splits, end
    assert filt.output.startswith("filter (voc -> voc): ") and "before" in filt.output
    r = CliRunner().invoke(cli, ["merge", str(a), str(b), str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "1 image id collided" in r.output and "name-collision" in r.output  # summed up and counted
    assert "is already used by an earlier source" not in r.output  # not listed again, finding by finding
    r = CliRunner().invoke(cli, ["remap", str(a), str(tmp_path / "r"), "--map", "Dog:"])
    assert r.exit_code == 0 and "map: Dog dropped (1 object)" in r.output, r.output
    r = CliRunner().invoke(cli, ["filter", str(a), str(tmp_path / "f2"), "--classes", "cat"])
    assert r.exit_code == 0 and "classes no longer present: Dog" in r.output, r.output


def test_cli_remap_before_column_counts_what_the_map_sends_in(tmp_path):
    src = voc(tmp_path / "s", {"a": [("circle", (1, 1, 9, 9)), ("disc", (2, 2, 8, 8)), ("square", (3, 3, 9, 9))],
                               "b": [("round", (1, 1, 5, 5)), ("square", (1, 1, 6, 6))]})
    res = CliRunner().invoke(cli, ["remap", str(src), str(tmp_path / "o"), "--map", "circle:round,disc:round,square:"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if " round " in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][1:] == ["round", "3", "3"]  # class, before, objects
    assert "map: circle -> round (1 object)" in res.output
    assert "map: square dropped (2 objects)" in res.output
    assert "no longer present" not in res.output  # every vanished class is explained by the map


# --------------------------------------------------------------- issue 18: read options, messages, maps, books

OI_HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"


def open_images(root: Path, pics: Path, ids: tuple[str, ...] = ("img1", "img2")) -> Path:
    """An Open Images folder (box CSV, class names) whose images live in ``pics``, not beside the CSV: only
    ``--images`` finds them (without, every image is dropped as missing-image: no size)."""
    from tests.conftest import make_jpeg

    (root / "annotations").mkdir(parents=True)
    rows = "".join(f"{i},xclick,/m/s,1,0.1,0.5,0.1,0.5,0,0,0,0,0\n{i},xclick,/m/c,1,0.2,0.6,0.2,0.6,0,0,0,0,0\n"
                   for i in ids)
    (root / "annotations" / "train-annotations-bbox.csv").write_text(OI_HEADER + rows)
    (root / "annotations" / "class-descriptions-boxable.csv").write_text("/m/s,star\n/m/c,circle\n")
    for i in ids:
        make_jpeg(pics / f"{i}.jpg", 100, 80)
    return root


@pytest.mark.parametrize("args", [["filter", "--classes", "star"], ["remap", "--map", "circle:"],
                                  ["sample", "-n", "1"]])
def test_cli_surgery_takes_converts_images_option(tmp_path, args):
    src = open_images(tmp_path / "oi", tmp_path / "pics")
    cmd, *rest = args
    without = CliRunner().invoke(cli, [cmd, str(src), str(tmp_path / "a"), *rest])
    assert without.exit_code == 1 and "missing-image" in without.output, without.output
    res = CliRunner().invoke(cli, [cmd, str(src), str(tmp_path / "b"), *rest, "--images", str(tmp_path / "pics"),
                                   "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["images"]["written"] >= 1 and d["objects"]["balanced"] and not d["images"]["dropped"].get("missing-image")


def test_merge_images_one_per_source(tmp_path):
    a = open_images(tmp_path / "a", tmp_path / "pa", ("a1",))
    b = open_images(tmp_path / "b", tmp_path / "pb", ("b1", "b2"))
    r = surgery.merge([a, b], tmp_path / "o", images=[tmp_path / "pa", tmp_path / "pb"], to="voc")
    books(r)
    assert sorted(boxes(tmp_path / "o")) == ["a1", "b1", "b2"]
    with pytest.raises(UsageError, match="one per source"):
        surgery.merge([a, b], tmp_path / "x", images=[tmp_path / "pa"])
    with pytest.raises(UsageError, match="inside"):  # an image folder is an input: OUT may not go in it
        surgery.merge([a, b], tmp_path / "pb" / "o", images=[tmp_path / "pa", tmp_path / "pb"])
    res = CliRunner().invoke(cli, ["merge", str(a), str(b), str(tmp_path / "c"), "--images", str(tmp_path / "pa")])
    assert res.exit_code == 2 and "2 sources, 1 --images" in res.output, res.output
    res = CliRunner().invoke(cli, ["merge", str(a), str(b), str(tmp_path / "c"), "--images", str(tmp_path / "pa"),
                                   "--images", str(tmp_path / "pb"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["images"]["written"] == 3, res.output


def test_surgery_reads_with_pixel_convention_sets_and_xml_limit(tmp_path):
    src = voc(tmp_path / "s", {"t": [("a", (11, 21, 30, 40))], "v": [("a", (1, 1, 9, 9))]},
              sets={"train": ["t"], "val": ["v"]})
    r = surgery.filter_data(src, tmp_path / "c", to="coco", convention="devkit", sets="train")
    assert r.summary.images_read == 1 and r.summary.splits == {"train": 1}
    doc = json.loads((tmp_path / "c/annotations/instances_train.json").read_text())
    assert doc["annotations"][0]["bbox"] == [10, 20, 20, 20]  # devkit: [xmin-1, ymin-1, xmax, ymax]
    surgery.filter_data(src, tmp_path / "v", convention="devkit")  # VOC out under the same convention: same numbers
    assert "<xmin>11</xmin>" in (tmp_path / "v/Annotations/t.xml").read_text()
    res = CliRunner().invoke(cli, ["sample", str(src), str(tmp_path / "x"), "-n", "1", "--max-xml-mb", "0.00001"])
    assert res.exit_code == 1 and "file-too-large" in res.output, res.output
    res = CliRunner().invoke(cli, ["remap", str(src), str(tmp_path / "y"), "--map", "a:b", "--sets", "val",
                                   "--pixel-convention", "devkit", "--to", "yolo", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["splits"] == {"val": 1}, res.output


def test_empty_result_counts_images_and_objects_apart(sizes, tmp_path):
    """--only-empty on a source without negatives: the message counts images as images and objects as objects."""
    no_negatives = voc(tmp_path / "nn", {"p": [("a", (1, 1, 5, 5)), ("a", (2, 2, 6, 6))], "q": [("a", (1, 1, 5, 5))]})
    with pytest.raises(NoInputError) as e:
        surgery.filter_data(no_negatives, tmp_path / "o", only_empty=True)
    assert "images dropped: image-not-empty 2; objects dropped: image-not-empty 3" in str(e.value)


def test_merge_unknown_split_is_a_usage_error_listing_those_found(two, tmp_path):
    a, b = two
    for wanted in (["tset"], ["train", "tset"]):
        with pytest.raises(UsageError, match=r"'tset' not in any source \(splits found: train, val\)"):
            surgery.merge([a, b], tmp_path / "o", splits=wanted)
    assert not (tmp_path / "o").exists()
    res = CliRunner().invoke(cli, ["merge", str(a), str(b), str(tmp_path / "o"), "--splits", "train,tset"])
    assert res.exit_code == 2 and "splits found: train, val" in res.output, res.output


@pytest.mark.parametrize("text,message", [
    ("circle: [a, b]\n", "the target ['a', 'b'] is a list"),
    ("circle: no\n", "quote it"),
    ("star: 1.0\n", "the target 1.0 is a number"),
    ("yes: star\n", "the name True is a boolean"),
])
def test_yaml_map_targets_must_be_names(tmp_path, text, message):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        surgery.parse_mapping(p)
    p.write_text("circle: 'no'\nstar: '1.0'\ngone: ''\nnull_too: null\n")  # quoted: names; empty or null: drop
    assert surgery.parse_mapping(p) == {"circle": "no", "star": "1.0", "gone": None, "null_too": None}


@pytest.mark.parametrize("value", ["nofile.yaml", "maps/x.YML", "m.csv", "m.tsv"])
def test_missing_map_file_says_so(tmp_path, value):
    with pytest.raises(UsageError, match="no such file"):
        surgery.parse_mapping(str(tmp_path / value))
    src = voc(tmp_path / "s", {"i": [("car", (1, 1, 9, 9))]})
    res = CliRunner().invoke(cli, ["remap", str(src), str(tmp_path / "o"), "--map", "nofile.yaml"])
    assert res.exit_code == 2 and "nofile.yaml: no such file" in res.output and "old:new" not in res.output


def test_difficult_line_adds_up_after_the_commands_own_drops(tmp_path):
    objs = [{"name": "hard", "box": (1, 1, 9, 9), "difficult": 1}, {"name": "hard", "box": (2, 2, 9, 9), "difficult": 1},
            {"name": "easy", "box": (1, 1, 5, 5), "difficult": 1}, {"name": "easy", "box": (3, 3, 8, 8)}]
    src = make_voc_root(tmp_path / "s", {"i": voc_xml("i.jpg", (100, 80), objs)}, images={"i.jpg": (100, 80)})
    def adds_up(d):
        return d["read"] == d["kept"] + d["as_crowd"] + d.get("not_kept", 0) + d["skipped"] + d["dropped"]

    d = surgery.remap(src, tmp_path / "o", "hard:").summary.difficult
    assert (d["read"], d["kept"], d["dropped"]) == (3, 1, 2) and adds_up(d)
    trained = make_voc_root(tmp_path / "t", {"i": voc_xml("i.jpg", (100, 80), objs)}, images={"i.jpg": (100, 80)},
                            sets={"train": ["i"]})
    d = surgery.merge([src, trained], tmp_path / "m", to="coco", splits=["train"]).summary.difficult
    assert (d["read"], d["as_crowd"], d["dropped"]) == (6, 3, 3) and adds_up(d)  # src's image: split-not-chosen
    d = surgery.sample(src, tmp_path / "y", n=1, to="yolo").summary.difficult
    assert d["read"] == 3 and d["dropped"] == 0 and adds_up(d)
    res = CliRunner().invoke(cli, ["filter", str(src), str(tmp_path / "f"), "--classes", "easy"])
    assert res.exit_code == 0 and re.search(r"difficult objects: 3 read, 1 kept, .*, 2 dropped", res.output), res.output


def test_merge_supercategory_conflict_is_a_warning_first_kept(tmp_path):
    from tests.test_coco_extras import coco_source

    a = coco_source(tmp_path / "a", license_url="http://l/same", prefix="a_")
    b = coco_source(tmp_path / "b", license_url="http://l/same", prefix="b_")
    path = b / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    doc["categories"][1]["supercategory"] = "pet"  # dog: animal in a, pet in b
    path.write_text(json.dumps(doc))
    r = surgery.merge([a, b], tmp_path / "o")
    f, = [x for x in r.summary.findings if x.code == "category-conflict"]
    assert r.summary.warnings["category-conflict"] == 1 and f.path == str(b) and "'pet'" in f.message
    out = json.loads((tmp_path / "o/annotations/instances_train.json").read_text())
    assert {c["name"]: c["supercategory"] for c in out["categories"]} == {"person": "person", "dog": "animal"}
    same = surgery.merge([a, a], tmp_path / "same")
    assert "category-conflict" not in same.summary.warnings


def test_a_renamed_id_is_never_another_id_of_the_same_source(tmp_path):
    # source 2 holds "same" and "same__src2": its "same" was renamed to "same__src2", which then made its own
    # "same__src2" collide ("already used by an earlier source", untrue) and become same__src2__src2
    a = voc(tmp_path / "a", {"same": [("cat", (5, 5, 30, 30))]})
    b = voc(tmp_path / "b", {"same": [("dog", (2, 2, 40, 40))], "same__src2": [("dog", (3, 3, 9, 9))]})
    r = surgery.merge([a, b], tmp_path / "out")
    books(r)
    assert set(boxes(tmp_path / "out")) == {"same", "same__src2", "same__src2__2"}
    assert r.details["collisions"] == [{"source": 2, "image_id": "same", "renamed": "same__src2__2"}]


def test_filter_refuses_a_size_that_is_not_a_number(two):
    # the CLI's options refuse nan; the library's own check (v < 0) let it through and filtered nothing
    from datatools.ops.convert import read_source

    with pytest.raises(UsageError, match="--min-size must be a number >= 0, not nan"):
        surgery.filter_dataset(read_source(two[0]), min_size=float("nan"))
