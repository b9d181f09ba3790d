"""COCO fields the annotation model does not hold (info, licenses, segmentation, mask area, custom keys, categories'
supercategory) survive COCO -> COCO conversion and `merge`, and pycocotools reads what is written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.ops import surgery
from datatools.ops.convert import convert
from tests.conftest import make_voc_root, voc_xml


def coco_source(root: Path, *, license_url: str, prefix: str) -> Path:
    """A COCO folder (annotations/instances_train.json + images/train/) with every field a real COCO file has."""
    from PIL import Image

    (root / "images" / "train").mkdir(parents=True)
    for n in ("a", "b"):
        Image.new("RGB", (100, 80)).save(root / "images" / "train" / f"{prefix}{n}.jpg")
    doc = {
        "info": {"description": f"set {prefix}", "year": 2017},
        "licenses": [{"id": 1, "name": "CC-BY", "url": license_url}],
        "images": [{"id": 7, "file_name": f"{prefix}a.jpg", "width": 100, "height": 80, "license": 1,
                    "coco_url": f"http://x/{prefix}a.jpg", "date_captured": "2013-11-14 17:02:52"},
                   {"id": 9, "file_name": f"{prefix}b.jpg", "width": 100, "height": 80, "license": 1}],
        "annotations": [
            {"id": 3, "image_id": 7, "category_id": 18, "bbox": [10, 10, 20, 30], "area": 321.5, "iscrowd": 0,
             "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]], "source_tool": "cvat",
             "attributes": {"pose": "left", "track": {"id": 4}}},
            {"id": 4, "image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 18, "name": "dog", "supercategory": "animal", "keypoints": []}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root


def written(out: Path, split: str = "train") -> dict:
    return json.loads((out / "annotations" / f"instances_{split}.json").read_text())


def test_coco_to_coco_keeps_every_field(tmp_path):
    src = coco_source(tmp_path / "src", license_url="http://l/1", prefix="")
    s = convert("coco", src, "coco", tmp_path / "out")
    assert s.objects_written == 2
    doc = written(tmp_path / "out")
    assert doc["info"] == {"description": "set ", "year": 2017}
    assert doc["licenses"] == [{"id": 1, "name": "CC-BY", "url": "http://l/1"}]
    a = next(im for im in doc["images"] if im["file_name"] == "a.jpg")
    assert (a["license"], a["coco_url"], a["date_captured"]) == (1, "http://x/a.jpg", "2013-11-14 17:02:52")
    dog = next(x for x in doc["annotations"] if x["image_id"] == a["id"])
    assert dog["segmentation"] == [[10, 10, 30, 10, 30, 40, 10, 40]]
    assert dog["area"] == 321.5  # the mask's area, as the source says: COCO's small/medium/large ranges use it
    assert dog["source_tool"] == "cvat"
    assert dog["attributes"]["pose"] == "left" and dog["attributes"]["track"] == {"id": 4}
    person = next(x for x in doc["annotations"] if x["image_id"] != a["id"])
    assert person["area"] == 12 and "segmentation" not in person
    cats = {c["name"]: c for c in doc["categories"]}
    assert cats["dog"]["supercategory"] == "animal" and cats["dog"]["keypoints"] == []
    assert cats["person"]["supercategory"] == "person"

    from pycocotools.coco import COCO

    api = COCO(str(tmp_path / "out" / "annotations" / "instances_train.json"))
    mask = api.annToMask(api.loadAnns([dog["id"]])[0])
    assert mask.shape == (80, 100) and mask.sum() > 0


def test_voc_to_coco_has_box_area_and_default_fields(tmp_path):
    root = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (100, 80), [{"name": "cat", "box": (1, 1, 11, 21)}])},
                         images={"a.jpg": (100, 80)})
    convert("voc", root, "coco", tmp_path / "out")
    doc = json.loads(next((tmp_path / "out" / "annotations").glob("*.json")).read_text())
    ann = doc["annotations"][0]
    x, y, w, h = ann["bbox"]
    assert ann["area"] == w * h and "segmentation" not in ann
    assert doc["licenses"] == [] and doc["categories"][0]["supercategory"] == "none"


def test_merge_keeps_coco_fields_and_renumbers_clashing_licenses(tmp_path):
    a = coco_source(tmp_path / "a", license_url="http://l/A", prefix="a_")
    b = coco_source(tmp_path / "b", license_url="http://l/B", prefix="b_")
    r = surgery.merge([a, b], tmp_path / "out")
    s = r.summary
    assert s.objects_read == s.objects_written + sum(s.objects_dropped.values()) == 4
    doc = written(tmp_path / "out")
    assert doc["info"]["description"] == "set a_"
    lic = {x["url"]: x["id"] for x in doc["licenses"]}
    assert lic == {"http://l/A": 1, "http://l/B": 2}  # B's license 1 is another license: renumbered
    by_name = {im["file_name"].rsplit("/", 1)[-1].split(".")[0]: im for im in doc["images"]}
    assert by_name["a_a"]["license"] == 1 and by_name["b_a"]["license"] == 2 and by_name["b_b"]["license"] == 2
    assert by_name["b_a"]["coco_url"] == "http://x/b_a.jpg"
    segs = [x for x in doc["annotations"] if "segmentation" in x]
    assert len(segs) == 2 and all(x["area"] == 321.5 for x in segs)
    assert {c["name"]: c["supercategory"] for c in doc["categories"]} == {"person": "person", "dog": "animal"}


def test_merge_same_license_is_one(tmp_path):
    a = coco_source(tmp_path / "a", license_url="http://l/same", prefix="a_")
    b = coco_source(tmp_path / "b", license_url="http://l/same", prefix="b_")
    res = CliRunner().invoke(cli, ["merge", str(a), str(b), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = written(tmp_path / "out")
    assert doc["licenses"] == [{"id": 1, "name": "CC-BY", "url": "http://l/same"}]
    assert {im["license"] for im in doc["images"]} == {1}


def test_coco_fields_lost_in_another_format_are_counted(tmp_path):
    src = coco_source(tmp_path / "src", license_url="http://l/1", prefix="")
    s = convert("coco", src, "voc", tmp_path / "out")
    lost = [f for f in s.findings if f.code == "field-not-kept" and f.field == "extra"]
    assert len(lost) == 1, [f.message for f in s.findings]
    msg = lost[0].message
    assert "segmentation 1" in msg and "source_tool 1" in msg and "image license 2" in msg and "image coco_url 1" in msg
    again = convert("coco", src, "coco", tmp_path / "out2")
    assert not [f for f in again.findings if f.code == "field-not-kept"]


def test_coco_sizes_and_numbers_are_read_by_the_rule_of_every_reader(tmp_path):
    """A width that is not a whole JSON number of pixels in 1..1,000,000 (640.7, "640", true, 5,000,000) is a
    bad-size warning and the size is left to the image header, as VOC, CVAT, LabelMe and Label Studio do (COCO
    used to truncate or accept them silently); a bbox of strings is dropped with its finding, as pycocotools could
    not use it either."""
    from datatools.formats import coco

    bad = [640.7, "640", True, 5_000_000]
    doc = {"images": [{"id": k + 1, "file_name": f"{k}.jpg", "width": w, "height": 480} for k, w in enumerate(bad)]
           + [{"id": 9, "file_name": "ok.jpg", "width": 640, "height": 480}],
           "annotations": [{"id": 1, "image_id": 9, "category_id": 1, "bbox": ["1", 2, 30, 40]},
                           {"id": 2, "image_id": 9, "category_id": 1, "bbox": [1, 2, 30, 40]}],
           "categories": [{"id": 1, "name": "dog"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = coco.read(tmp_path / "a.json")
    sizes = {r.file_name: (r.width, r.height) for r in ds.images}
    assert sizes == {"0.jpg": (None, None), "1.jpg": (None, None), "2.jpg": (None, None), "3.jpg": (None, None),
                     "ok.jpg": (640, 480)}
    assert sorted(f.field for f in ds.findings if f.code == "bad-size") == [f"images[{k}]/width" for k in range(4)]
    assert [a.box for r in ds.images for a in r.annotations] == [(1.0, 2.0, 31.0, 42.0)]
    assert [f.field for f in ds.findings if f.code == "missing-field"] == ["annotations[0]/bbox"]


def test_an_upper_case_json_suffix_is_read_as_it_is_detected(tmp_path):
    """annotations/instances_val.JSON: detected as COCO, so read as COCO too (split val), not refused as empty."""
    from datatools.formats import coco, detect

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.JSON").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
         "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}],
         "categories": [{"id": 1, "name": "x"}]}))
    assert detect(str(tmp_path)) == "coco"
    ds = coco.read(tmp_path)
    assert ds.splits == ("val",) and ds.num_objects == 1


def test_coco_image_ids_are_unique_and_never_empty(tmp_path):
    """The third a.jpg (id 2) would be a__2, which the second image's own name holds: it is renamed again rather than
    sharing (and overwriting) that image. A file name of only slashes and dots is named by its id, never ''."""
    from datatools.formats import coco

    names = ["a.jpg", "a__2.jpg", "a.jpg", "/", "../"]
    doc = {"images": [{"id": k, "file_name": n, "width": 10, "height": 10} for k, n in enumerate(names)],
           "annotations": [{"id": k + 1, "image_id": k, "category_id": 1, "bbox": [1, 1, 3, 3]} for k in range(5)],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = coco.read(tmp_path / "a.json")
    assert sorted((r.image_id, r.file_name, len(r.annotations)) for r in ds.images) == [
        ("a", "a.jpg", 1), ("a__2", "a__2.jpg", 1), ("a__2_2", "a.jpg", 1), ("image_3", "/", 1),
        ("image_4", "../", 1)]


BAD_IDS = {"images": [{"id": [1], "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
           "annotations": [{"id": 1, "image_id": [2], "category_id": 1, "bbox": [1, 1, 3, 3]},
                           {"id": 2, "image_id": 2, "category_id": [1], "bbox": [1, 1, 3, 3]},
                           {"id": 3, "image_id": 2, "category_id": {"a": 1}, "bbox": [1, 1, 3, 3]},
                           {"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 1, 3, 3]}],
           "categories": [{"id": 1, "name": "x"}, {"id": [2], "name": "y"}, {"id": {"b": 3}, "name": "z"}]}


def test_coco_ids_that_are_lists_are_bad_ids_not_a_traceback(tmp_path):
    """An id that is a list or an object cannot be looked up (a TypeError): it is read as a missing or unknown id,
    with the finding such an id already gets, and the rest of the file is read."""
    from datatools.formats import coco

    (tmp_path / "a.json").write_text(json.dumps(BAD_IDS))
    ds = coco.read(tmp_path / "a.json")
    assert [(r.image_id, [a.label for a in r.annotations]) for r in ds.images] == [("b", ["x"])]
    got = [(f.code, f.field) for f in ds.findings if f.code != "missing-image-dir" and f.code != "missing-size"]
    assert got == [("bad-category", "categories"), ("bad-category", "categories"), ("missing-field", "images[0]/id"),
                   ("unknown-image", "annotations[0]/image_id"), ("unknown-class", "annotations[1]/category_id"),
                   ("unknown-class", "annotations[2]/category_id")]
    assert ds.objects_read == 4


def test_coco_ids_that_are_lists_through_check(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(BAD_IDS))
    r = CliRunner().invoke(cli, ["check", str(tmp_path / "a.json")])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output and "images[0]/id" in r.output


def test_coco_ids_written_as_whole_floats_are_read(tmp_path):
    """Ids written 1.0 (pandas writes the ids of a column with a gap so) find each other as 1 does: the image, its
    box and its class are read, with no finding about ids."""
    from datatools.formats import coco

    doc = {"images": [{"id": 1.0, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1.0, "image_id": 1.0, "category_id": 2.0, "bbox": [1, 1, 4, 4]},
                           {"id": 2, "image_id": 1, "category_id": 2, "bbox": [2, 2, 4, 4]}],
           "categories": [{"id": 2.0, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = coco.read(tmp_path / "a.json")
    assert [(r.image_id, [a.label for a in r.annotations]) for r in ds.images] == [("a", ["x", "x"])]
    assert not [f for f in ds.findings if f.code in ("missing-field", "unknown-image", "unknown-class",
                                                      "bad-category")]


def test_coco_segmentation_of_words_is_a_finding(tmp_path):
    """Without a bbox the box is the polygon's extent, its coordinates read by the bbox's rule: "a" (float() raised
    a ValueError) or "1" (float() took it) drops the object with its finding."""
    from datatools.formats import coco

    segs = [[[1, 2, 5, 2, 5, 8]], [["a", 2, 5, 2, 5, 8]], [[1, 2, "5", 2, 5, 8]]]
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": k, "image_id": 1, "category_id": 1, "segmentation": s} for k, s in enumerate(segs)],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = coco.read(tmp_path / "a.json")
    assert [a.box for a in ds.images[0].annotations] == [(1.0, 2.0, 5.0, 8.0)]
    assert [f.field for f in ds.findings if f.code == "missing-field"] == ["annotations[1]/bbox", "annotations[2]/bbox"]


def _one_annotation(tmp_path, **fields):
    """A COCO file of one image and one annotation with ``fields``, read."""
    from datatools.formats import coco

    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3], **fields}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    return coco.read(tmp_path / "a.json")


@pytest.mark.parametrize("attrs,want,bad", [
    ({"difficult": "false", "occluded": "0"}, (False, False, False), []),  # bool("false") was True
    ({"difficult": "true", "truncated": 1, "occluded": "yes"}, (True, True, True), []),
    ({"difficult": True, "truncated": None}, (True, False, False), []),
    ({"difficult": "maybe", "occluded": 2}, (False, False, True), ["difficult", "occluded"]),
])
def test_coco_flags_written_as_text_are_read_by_the_flag_rule(tmp_path, attrs, want, bad):
    ds = _one_annotation(tmp_path, attributes=attrs)
    (a,) = ds.images[0].annotations
    assert (a.difficult, a.truncated, a.occluded) == want
    assert [f.field for f in ds.findings if f.code == "bad-flag"] == [f"annotations[0]/attributes/{k}" for k in bad]


@pytest.mark.parametrize("crowd, want, bad", [(0, False, False), (1, True, False), (True, True, False),
                                              ("0", False, False), ("1", True, False), ("no", False, False),
                                              (2, True, True), ("x", False, True)])
def test_iscrowd_written_as_text_is_read_by_the_flag_rule(tmp_path, crowd, want, bad):
    # bool("0") is True: such objects were crowds, ignored by the evaluation and written out as VOC difficult
    ds = _one_annotation(tmp_path, iscrowd=crowd)
    assert ds.images[0].annotations[0].iscrowd is want
    assert [f.field for f in ds.findings if f.code == "bad-flag"] == (["annotations[0]/iscrowd"] if bad else [])


def test_coco_category_ids_are_ordered_as_numbers_whatever_their_type(tmp_path):
    """2.0 sorts as 2 does: ints and whole floats are one kind of id (a float sorted before every int, which
    reordered the classes and so the YOLO ids of a conversion)."""
    from datatools.formats import coco

    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}], "annotations": [],
           "categories": [{"id": 1, "name": "zebra"}, {"id": 2.0, "name": "ant"}, {"id": "x", "name": "emu"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert coco.read(tmp_path / "a.json").classes == ("zebra", "ant", "emu")


def _split_files(tmp_path, images_of, boxes_of):
    """A COCO folder with annotations/instances_<split>.json for each split: images_of[split] = [(file_name,
    (w, h), folder or None)], boxes_of[split] = [(file_name, [x, y, w, h])]."""
    from tests.conftest import make_jpeg

    for split, images in images_of.items():
        ids = {name: k for k, (name, _, _) in enumerate(images, 1)}
        doc = {"images": [{"id": ids[n], "file_name": n, "width": s[0], "height": s[1]} for n, s, _ in images],
               "annotations": [{"id": k, "image_id": ids[n], "category_id": 1, "bbox": b, "area": b[2] * b[3],
                                "iscrowd": 0} for k, (n, b) in enumerate(boxes_of[split], 1)],
               "categories": [{"id": 1, "name": "car"}]}
        (tmp_path / "c" / "annotations").mkdir(parents=True, exist_ok=True)
        (tmp_path / "c" / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
        for name, size, folder in images:
            if folder:
                make_jpeg(tmp_path / "c" / "images" / folder / name, *size)
    return tmp_path / "c"


def test_a_file_name_in_two_split_files_is_two_images_when_the_files_differ(tmp_path):
    # CVAT's COCO project export names the frames of every task frame_000000.jpg, under images/<subset>/: the two
    # pictures were read as one image, the second split's box on the first split's picture
    from datatools.formats import coco

    src = _split_files(tmp_path, {"Train": [("f.jpg", (200, 100), "Train")],
                                  "Validation": [("f.jpg", (400, 300), "Validation")]},
                       {"Train": [("f.jpg", [10, 20, 30, 40])], "Validation": [("f.jpg", [250, 200, 100, 80])]})
    ds = coco.read(src)
    got = sorted((im.image_id, im.width, im.splits, [a.box for a in im.annotations]) for im in ds.images)
    assert got == [("Validation/f", 400, ("Validation",), [(250.0, 200.0, 350.0, 280.0)]),
                   ("f", 200, ("Train",), [(10.0, 20.0, 40.0, 60.0)])], got


def test_one_picture_in_two_split_files_carries_its_boxes_once(tmp_path):
    # train and trainval both list a.jpg with its box: it was read twice, and a --fix copy (which writes the image
    # in both files again) grew by one box on every pass
    from datatools.formats import coco

    src = _split_files(tmp_path, {"train": [("a.jpg", (100, 100), "")], "trainval": [("a.jpg", (100, 100), ""),
                                                                                      ("b.jpg", (100, 100), "")]},
                       {"train": [("a.jpg", [10, 10, 20, 20])],
                        "trainval": [("a.jpg", [10, 10, 20, 20]), ("b.jpg", [5, 5, 9, 9])]})
    ds = coco.read(src)
    assert sorted((im.image_id, im.splits, len(im.annotations)) for im in ds.images) == [
        ("a", ("train", "trainval"), 1), ("b", ("trainval",), 1)]
    [f] = [f for f in ds.findings if f.code == "repeated-image"]
    assert f.image_id == "a" and f.objects == 1 and ds.objects_read == 3
    r = CliRunner().invoke(cli, ["check", str(src), "--fix", str(tmp_path / "fixed"), "--images-mode", "copy"])
    assert r.exit_code == 0, r.output
    again = coco.read(tmp_path / "fixed")
    assert sorted((im.image_id, len(im.annotations)) for im in again.images) == [("a", 1), ("b", 1)]


@pytest.mark.parametrize("rotation, box, code", [(90, (90.0, 20.0, 130.0, 40.0), "rotated-box"),
                                                 (0.0, (100.0, 10.0, 120.0, 50.0), None),
                                                 ("x", None, "bad-number")])
def test_cvat_coco_rotation_is_read_as_the_envelope(tmp_path, rotation, box, code):
    # CVAT's COCO export writes the unrotated bbox and attributes.rotation (about the centre): the box was read
    # unrotated without a word, and 'rotation' went on as a plain attribute
    ds = _one_annotation(tmp_path, bbox=[100, 10, 20, 40], attributes={"rotation": rotation})
    anns = ds.images[0].annotations
    assert [a.box for a in anns] == ([box] if box else []) and all(not a.attributes for a in anns)
    assert [f.code for f in ds.findings if f.code != "missing-image-dir"] == ([code] if code else [])


@pytest.mark.parametrize("image_id", [1, 1.0])
def test_an_image_entry_listed_twice_is_one_image_whatever_its_id_type(tmp_path, image_id):
    # the record's source took the id's one text ("1") while the check compared the raw id ("1.0"): the entry
    # listed twice became two images, 'a' without its box and 'a__1.0' with it
    from datatools.formats import coco

    doc = {"images": [{"id": image_id, "file_name": "a.jpg", "width": 10, "height": 10}] * 2,
           "annotations": [{"id": 1, "image_id": image_id, "category_id": 1, "bbox": [1, 1, 3, 3]}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "d.json").write_text(json.dumps(doc))
    ds = coco.read(tmp_path / "d.json")
    assert [(r.image_id, len(r.annotations)) for r in ds.images] == [("a", 1)]


def test_the_coco_2017_annotations_folder_reads_its_boxes_once_per_split(tmp_path):
    """annotations/ holds captions_*, instances_* and person_keypoints_* per split: each file was a split of its own
    (captions ones errors, keypoints ones copies of the person boxes), and with the val files only, the YOLO written
    trained on images/person_keypoints_val2017, the validation pictures."""
    from PIL import Image

    from datatools import formats

    cats = [{"supercategory": "person", "id": 1, "name": "person"}, {"supercategory": "animal", "id": 18, "name": "dog"}]
    (tmp_path / "annotations").mkdir()
    for split, ids in (("train2017", [9, 25]), ("val2017", [139, 285])):
        (tmp_path / split).mkdir()
        ims = [{"file_name": f"{i:012d}.jpg", "height": 80, "width": 100, "id": i} for i in ids]
        for im in ims:
            Image.new("RGB", (100, 80)).save(tmp_path / split / im["file_name"])
        inst = [{"id": k + 1000 * i, "image_id": i, "category_id": c, "bbox": [10, 10, 30, 20], "iscrowd": 0}
                for i in ids for k, c in enumerate((1, 18))]
        kp = [dict(a, keypoints=[0] * 51, num_keypoints=0) for a in inst if a["category_id"] == 1]
        for task, doc in (("instances", {"images": ims, "annotations": inst, "categories": cats}),
                          ("person_keypoints", {"images": ims, "annotations": kp, "categories": cats[:1]}),
                          ("captions", {"images": ims, "annotations": [{"image_id": i, "id": i, "caption": "x"}
                                                                       for i in ids]})):
            (tmp_path / "annotations" / f"{task}_{split}.json").write_text(json.dumps(doc))
    ds = formats.get("coco").read(tmp_path)
    assert ds.splits == ("train2017", "val2017") and len(ds.images) == 4
    assert sum(len(im.annotations) for im in ds.images) == 8 and all(im.image_path for im in ds.images)
    assert sorted(f.code for f in ds.findings) == ["task-file-not-read"] * 4
    for split in ("train2017",):  # a download of the val files only
        for f in (tmp_path / "annotations").glob(f"*_{split}.json"):
            f.unlink()
    ds = formats.get("coco").read(tmp_path)
    assert ds.splits == ("val2017",) and len(ds.images) == 2


def test_an_image_id_listed_twice_keeps_its_boxes_on_the_first_image(tmp_path):
    """Two files concatenated (ids 1..3 twice): each dog box went to the other file's picture, with no finding."""
    from datatools import formats

    images = [{"id": i, "file_name": f"{p}{i}.jpg", "width": 100, "height": 80} for p in "AB" for i in (1, 2)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [5, 5, 10, 10]} for i in (1, 2)] * 2
    (tmp_path / "c.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                 "categories": [{"id": 1, "name": "dog"}]}))
    ds = formats.get("coco").read(tmp_path / "c.json")
    assert [(im.image_id, len(im.annotations)) for im in ds.images] == [("A1", 2), ("A2", 2)]
    codes = sorted(f.code for f in ds.findings if f.code.startswith("duplicate"))
    assert codes == ["duplicate-annotation-id"] * 2 + ["duplicate-image-id"] * 2
    assert all(f.image_dropped for f in ds.findings if f.code == "duplicate-image-id")
    r = CliRunner().invoke(cli, ["split", str(tmp_path / "c.json"), str(tmp_path / "s"), "--val", "0.5",
                                 "--images-mode", "none", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["read_images_dropped"] == 2, r.output
    parts = [json.loads(f.read_text())["images"] for f in (tmp_path / "s" / "annotations").glob("*.json")]
    assert sorted(im["file_name"] for part in parts for im in part) == ["A1.jpg", "A2.jpg"]  # each once


def test_a_roboflow_project_named_after_its_one_class_keeps_its_boxes(tmp_path):
    """Roboflow's group category (id 0, supercategory none) named as the class itself: the group was left out by
    name, so the class went with it and every box was dropped as unknown-class."""
    from datatools import formats

    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 0, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [5, 5, 10, 10]}],
        "categories": [{"id": 0, "name": "pothole", "supercategory": "none"},
                       {"id": 1, "name": "pothole", "supercategory": "pothole"}]}))
    ds = formats.get("coco").read(tmp_path / "c.json")
    assert ds.classes == ("pothole",) and len(ds.images[0].annotations) == 1
    assert [f.code for f in ds.findings if f.severity.value != "info" and "image" not in f.code] == []


@pytest.mark.parametrize("bbox", [["10", "10", "20", "20"], [10, 10, 20, 20, 0]])
def test_a_malformed_bbox_is_an_error_not_the_polygons_box(tmp_path, bbox):
    from datatools import formats

    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox, "segmentation": [[0, 0, 60, 0, 60, 60]]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 60, 0, 60, 60]]}]
    (tmp_path / "c.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 99,
                                                             "height": 99}], "annotations": anns,
                                                 "categories": [{"id": 1, "name": "dog"}]}))
    ds = formats.get("coco").read(tmp_path / "c.json")
    assert [a.box for a in ds.images[0].annotations] == [(0, 0, 60, 60)]  # the one without a bbox
    assert [(f.code, f.field) for f in ds.findings if f.objects] == [("missing-field", "annotations[0]/bbox")]


def test_coco_to_coco_keeps_the_files_image_and_category_ids(tmp_path):
    """convert, filter and check --fix wrote ids from 1 (images sorted by name, categories 1..K): a results file keyed
    by the original ids scored AP 0.0 against the copy, with no finding."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    names = {7: "zebra.jpg", 42: "apple.jpg", 3: "mango.jpg"}
    for name in names.values():
        Image.new("RGB", (100, 80)).save(tmp_path / "images" / name)
    gt = {"images": [{"id": i, "file_name": n, "width": 100, "height": 80} for i, n in names.items()],
          "annotations": [{"id": 10 + i, "image_id": i, "category_id": 18, "bbox": [10, 10, 30, 20]} for i in names],
          "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    preds = [{"image_id": i, "category_id": 18, "bbox": [10, 10, 30, 20], "score": 0.9} for i in names]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    for cmd in (["convert", "--to", "coco"], ["filter", "--classes", "dog,person"]):
        out = tmp_path / f"{cmd[0]}.json"
        r = CliRunner().invoke(cli, [cmd[0], str(tmp_path / "gt.json"), str(out), *cmd[1:]])
        assert r.exit_code == 0, r.output
        doc = json.loads(out.read_text())
        assert sorted((im["id"], im["file_name"]) for im in doc["images"]) == sorted(names.items())
        assert {c["name"]: c["id"] for c in doc["categories"]} == {"dog": 18, "person": 1}
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(out), "--pred", str(tmp_path / "pred.json"),
                                     "--images", str(tmp_path / "images"), "--json"])
        assert r.exit_code == 0 and json.loads(r.output)["coco"]["stats"]["AP"] == pytest.approx(1.0), r.output


def test_kept_ids_give_way_where_they_cannot_be_kept(tmp_path):
    """String ids that look like numbers to str.isdigit ("--1", "²") stopped COCO -> COCO with a traceback; an image
    file named .a.jpg that the annotations name was no longer found once hidden files stopped being images."""
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (50, 40)).save(src / ".a.jpg")
    Image.new("RGB", (50, 40)).save(src / "b.jpg")
    doc = {"images": [{"id": i, "file_name": n, "width": 50, "height": 40} for i, n in (("--1", ".a.jpg"),
                                                                                       ("²", "b.jpg"))],
           "annotations": [{"id": 1, "image_id": "--1", "category_id": 1, "bbox": [1, 1, 9, 9]}],
           "categories": [{"id": 1, "name": "dog"}]}
    (src / "c.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(cli, ["convert", str(src / "c.json"), str(tmp_path / "out"), "--to", "coco",
                                 "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "out" / "annotations" / "instances_all.json").read_text())
    assert sorted(im["id"] for im in out["images"]) == [1, 2]
    assert json.loads(r.stdout)["images"]["written"] == 2 and (tmp_path / "out" / "images").is_dir()


def test_coco_to_coco_keeps_the_files_other_top_level_keys(tmp_path):
    from datatools import formats

    (tmp_path / "c.json").write_text(json.dumps({
        "type": "instances", "dataset_version": {"v": 3}, "info": {"year": 2017}, "licenses": [],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}],
        "categories": [{"id": 1, "name": "dog"}]}))
    ds = formats.get("coco").read(tmp_path / "c.json")
    formats.get("coco").write(ds, tmp_path / "out.json")
    doc = json.loads((tmp_path / "out.json").read_text())
    assert (doc["type"], doc["dataset_version"], doc["info"]) == ("instances", {"v": 3}, {"year": 2017})


def test_two_names_of_one_id_are_said_as_they_are(tmp_path):
    """x.jpg and x.png: the warning said "file name 'x.png' appears twice", which it does not."""
    from datatools import formats

    (tmp_path / "c.json").write_text(json.dumps({"images": [
        {"id": 1, "file_name": "x.jpg", "width": 9, "height": 9}, {"id": 2, "file_name": "x.png", "width": 9,
                                                                   "height": 9}],
        "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    (f,) = [f for f in formats.get("coco").read(tmp_path / "c.json").findings if f.code == "duplicate-file-name"]
    assert "'x.png' has the id of 'x.jpg'" in f.message and "appears twice" not in f.message
