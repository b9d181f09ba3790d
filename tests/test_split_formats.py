"""``split`` for CVAT, Open Images, LabelMe and Label Studio: each part written in the source's own format reads back
with that format's reader and holds exactly the images of that part, with their boxes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli
from datatools.core.errors import DatatoolsError, UsageError
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.split import plan_split, write_split
from tests.conftest import make_jpeg, tree_digest

NEW = ["cvat", "openimages", "labelme", "labelstudio"]
PER_PART_FOLDER = {"labelme", "labelstudio"}  # no notion of split: one complete dataset per part
TOP = {"cvat": ["annotations.xml", "images"], "openimages": ["annotations", "images"]}
CLASSES = ("bird", "car", "person")


def synthetic(tmp_path: Path, n: int = 30) -> Dataset:
    """``n`` images of varying sizes on disk, 0 to 3 boxes each (every 7th image empty), three classes."""
    recs = []
    for i in range(n):
        w, h = 40 + 4 * (i % 5), 30 + 3 * (i % 4)
        path = make_jpeg(tmp_path / "pictures" / f"img_{i:03d}.jpg", w, h)
        anns = () if i % 7 == 3 else tuple(
            Annotation(CLASSES[(i + k) % 3], (1.5 + k, 2.0 + i % 5, 10.25 + 3 * k + i % 7, 12.0 + k))
            for k in range(1 + i % 3))
        recs.append(ImageRecord(image_id=f"img_{i:03d}", file_name=path.name, width=w, height=h, annotations=anns,
                                image_path=str(path), source=str(path)))
    return Dataset(images=tuple(recs), classes=CLASSES)


def make_source(fmt: str, tmp_path: Path) -> Path:
    """The synthetic dataset written as ``fmt`` by its own writer: a dataset a user could have labelled."""
    root = tmp_path / f"src_{fmt}"
    formats.get(fmt).write(synthetic(tmp_path), root, images_mode="copy")
    return root


def boxes_by_image(ds: Dataset, ids=None) -> dict[str, list]:
    """{image id: sorted (label, box rounded to 1e-3)}: what a part must give back (Label Studio stores percent)."""
    return {im.image_id: sorted((a.label, tuple(round(v, 3) for v in a.box)) for a in im.annotations)
            for im in ds.images if ids is None or im.image_id in ids}


def read_part(fmt: str, out: Path, part: str, **options) -> dict[str, list]:
    """The images of ``part`` as the format's reader sees them: the part's folder, or the images whose split is it."""
    root = out / part if fmt in PER_PART_FOLDER else out
    assert formats.detect(root) == fmt
    back = formats.get(fmt).read(root, **options)
    if fmt not in PER_PART_FOLDER:
        back = back.evolve(images=tuple(im for im in back.images if im.splits == (part,)))
    return boxes_by_image(back)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("fmt", NEW)
def test_every_part_reads_back_with_exactly_its_images_and_boxes(fmt, tmp_path):
    src = make_source(fmt, tmp_path)
    source = formats.get(fmt).read(src)
    before = tree_digest(src)
    out = tmp_path / "out"
    r = run("split", src, out, "--val", "0.2", "--test", "0.2", "--seed", "1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["write_findings"] == []
    parts = d["assignment"]
    assert sorted(parts) == ["test", "train", "val"]
    # Every image of the synthetic set, those without boxes too, is in the source as its format reads it back.
    assert sorted(Path(im.file_name).stem for im in source.images) == [im.image_id for im in synthetic(tmp_path).images]
    assert sorted(i for ids in parts.values() for i in ids) == sorted(im.image_id for im in source.images)
    for part, ids in parts.items():
        assert ids, part
        assert read_part(fmt, out, part) == boxes_by_image(source, set(ids)), part
    expected_top = sorted(parts) if fmt in PER_PART_FOLDER else TOP[fmt]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == expected_top  # not the markers
    placed = [p for p in out.rglob("*.jpg")]
    assert len(placed) == len(source.images)  # every image placed once
    assert tree_digest(src) == before  # the input is never modified
    first = tree_digest(out)
    assert run("split", src, out, "--val", "0.2", "--test", "0.2", "--seed", "1").exit_code == 0
    assert tree_digest(out) == first  # same seed, same bytes


def test_layouts_follow_how_each_format_carries_splits(tmp_path):
    """CVAT: one annotations.xml, a subset per image; Open Images: one box CSV per part and images/<part>/."""
    out = tmp_path / "cv"
    assert run("split", make_source("cvat", tmp_path), out, "--val", "0.3").exit_code == 0
    text = (out / "annotations.xml").read_text()
    assert text.count('subset="train"') == 21 and text.count('subset="val"') == 9
    out = tmp_path / "oi"
    assert run("split", make_source("openimages", tmp_path), out, "--val", "0.3").exit_code == 0
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "class-descriptions.csv", "images.meta", "train-annotations-bbox.csv", "train-images-with-rotation.csv",
        "val-annotations-bbox.csv", "val-images-with-rotation.csv"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["train", "val"]
    # The image lists name every image of their part, those without boxes too (the box CSVs cannot).
    listed = {part: (out / "annotations" / f"{part}-images-with-rotation.csv").read_text().splitlines()[1:]
              for part in ("train", "val")}
    assert sorted(row.split(",")[0] for rows in listed.values() for row in rows) == \
        [im.image_id for im in synthetic(tmp_path).images]


@pytest.mark.parametrize("fmt", ["labelme", "cvat"])
def test_kfold_writes_every_fold_in_the_format(fmt, tmp_path):
    src = make_source(fmt, tmp_path)
    source = formats.get(fmt).read(src)
    out = tmp_path / "out"
    r = run("split", src, out, "--kfold", "3", "--test", "0.2", "--json")
    assert r.exit_code == 0, r.output
    assignment = json.loads(r.output)["assignment"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["fold_0", "fold_1", "fold_2"]
    vals = []
    for i in range(3):
        fold = out / f"fold_{i}"
        got = {part: read_part(fmt, fold, part) for part in ("train", "val", "test")}
        assert got["val"] == boxes_by_image(source, set(assignment[f"fold_{i}"]))
        assert got["test"] == boxes_by_image(source, set(assignment["test"]))
        assert not set(got["train"]) & (set(got["val"]) | set(got["test"]))
        assert len(got["train"]) + len(got["val"]) + len(got["test"]) == len(source.images)
        vals.append(set(got["val"]))
    assert sorted(i for v in vals for i in v) == sorted(set().union(*vals))  # each image is val in one fold only
    assert set().union(*vals) | set(assignment["test"]) == {im.image_id for im in source.images}


@pytest.mark.parametrize("fmt", ["labelme", "cvat", "labelstudio"])
def test_images_mode_none_places_no_image_and_removes_an_earlier_split_s(fmt, tmp_path):
    src = make_source(fmt, tmp_path)
    source = formats.get(fmt).read(src)
    out = tmp_path / "out"
    assert run("split", src, out, "--val", "0.2").exit_code == 0
    assert list(out.rglob("*.jpg"))
    r = run("split", src, out, "--val", "0.2", "--seed", "4", "--images-mode", "none", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert not list(out.rglob("*.jpg")) and not [p for p in out.rglob("images")]
    assert "stale-images-removed" in [f["code"] for f in d["write_findings"]]
    # Label Studio keeps an image's size in its regions only: an image without boxes needs its picture (--images)
    images = {"images": src} if fmt == "labelstudio" else {}
    for part, ids in d["assignment"].items():
        assert read_part(fmt, out, part, **images) == boxes_by_image(source, set(ids))


@pytest.mark.parametrize("fmt", NEW)
def test_a_split_over_an_earlier_one_leaves_none_of_its_files(fmt, tmp_path):
    """With a test part, then without, into the same OUT: the tree equals a fresh write (an old test/ folder, subset
    or CSV would bring test images back into play)."""
    src = make_source(fmt, tmp_path)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert run("split", src, out, "--val", "0.2", "--test", "0.2").exit_code == 0
    had_test = [p for p in out.rglob("*") if "test" in p.name]
    assert had_test or 'subset="test"' in (out / "annotations.xml").read_text()
    r = run("split", src, out, "--val", "0.3", "--seed", "1", "--json")
    assert r.exit_code == 0, r.output
    codes = [f["code"] for f in json.loads(r.output)["write_findings"]]
    assert codes == (["stale-parts-removed"] if fmt in PER_PART_FOLDER else [])
    assert run("split", src, fresh, "--val", "0.3", "--seed", "1").exit_code == 0
    assert tree_digest(out) == tree_digest(fresh)
    assert not [p for p in out.rglob("*") if "test" in p.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stage or trash left beside OUT


def test_fewer_folds_over_more_and_kfold_over_a_plain_split(tmp_path):
    src = make_source("labelme", tmp_path)
    out = tmp_path / "out"
    assert run("split", src, out, "--val", "0.2").exit_code == 0
    r = run("split", src, out, "--kfold", "4", "--json")
    assert "top-level-split-left" in [f["code"] for f in json.loads(r.output)["write_findings"]]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fold_0", "fold_1", "fold_2", "fold_3", "train", "val"]
    r = run("split", src, out, "--kfold", "2", "--json")
    codes = [f["code"] for f in json.loads(r.output)["write_findings"]]
    assert "stale-folds-removed" in codes and not (out / "fold_2").exists() and (out / "fold_1" / "val").is_dir()


def test_out_inside_src_is_refused(tmp_path):
    src = make_source("labelme", tmp_path)
    r = CliRunner().invoke(cli, ["split", str(src), str(src / "out")])
    assert r.exit_code == 2 and "inside the input" in r.output
    assert not (src / "out").exists()


@pytest.mark.parametrize("fmt", ["labelme", "cvat"])
def test_a_split_that_would_replace_its_own_input_is_refused(fmt, tmp_path):
    """LabelMe's part folders and CVAT's annotations.xml are replaced whole: an input there is refused, unchanged."""
    out = tmp_path / "out"
    if fmt == "labelme":
        src = out / "train"  # a dataset that lives where the train part would go
        formats.get(fmt).write(synthetic(tmp_path), src, images_mode="copy")
        arg = src
    else:
        formats.get(fmt).write(synthetic(tmp_path), out, images_mode="copy")
        arg = out / "annotations.xml"
    before = tree_digest(out)
    r = CliRunner().invoke(cli, ["split", str(arg), str(out)])
    assert r.exit_code == 2 and "which holds the input" in r.output, r.output
    assert tree_digest(out) == before


def test_a_failed_write_leaves_out_as_it_was(tmp_path, monkeypatch):
    """The parts are written in one output transaction: a writer failing on the second part leaves the earlier split
    in OUT untouched, with no half-written part folder."""
    from datatools.formats import labelme

    src = make_source("labelme", tmp_path)
    out = tmp_path / "out"
    assert run("split", src, out, "--val", "0.2", "--test", "0.1").exit_code == 0
    before = tree_digest(out)
    real, calls = labelme.write, []

    def failing(ds, target, **kw):
        calls.append(Path(target).name)
        if len(calls) == 2:
            raise DatatoolsError("disk on fire")
        return real(ds, target, **kw)

    monkeypatch.setattr(labelme, "write", failing)
    plan = plan_split(labelme.read(src), val=0.3, seed=5)
    with pytest.raises(DatatoolsError, match="disk on fire"):
        write_split(plan, out)
    assert calls == ["train", "val"]
    assert tree_digest(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_size_relative_format_without_sizes_is_refused_before_writing(tmp_path):
    ds = synthetic(tmp_path, n=6)
    ds = ds.evolve(images=tuple(im if k else ImageRecord(im.image_id, im.file_name, None, None, im.annotations,
                                                          source="tasks.json") for k, im in enumerate(ds.images)),
                   format="labelstudio")
    with pytest.raises(UsageError, match="img_000.*has no size"):
        write_split(plan_split(ds, val=0.5), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_voc_ids_with_a_space_round_trip_through_the_split_lists(tmp_path):
    # the lists hold "s 0"; read back, the first word "s" named no annotation: every image was lost (missing-annotation
    # s.xml, not-in-sets 6). A list line that names an annotation whole is that id, as torchvision reads the lists.
    from tests.conftest import make_voc_root, voc_xml

    items = {f"s {k}": voc_xml(f"s {k}.jpg", (20, 20), [{"name": "x", "box": (2, 2, 9, 9)}]) for k in range(6)}
    src = make_voc_root(tmp_path / "v", items, images={f"s {k}.jpg": (20, 20) for k in range(6)})
    r = CliRunner().invoke(cli, ["split", str(src), str(tmp_path / "o"), "--val", "0.5"])
    assert r.exit_code == 0, r.output
    back = formats.get("voc").read(tmp_path / "o")
    assert sorted(im.image_id for im in back.images) == sorted(items) and not back.findings
    assert sorted(back.splits) == ["train", "val"]


def test_a_cvat_project_split_keeps_each_image_with_its_own_picture(tmp_path):
    # images/train/f0.jpg and images/val/f0.jpg are two images (f0 and val/f0); after a split the writer placed f0 at
    # images/f0.jpg with subset val, and the reader took images/val/f0.jpg (the other image's picture) first
    from tests.conftest import make_jpeg

    ann = ['<annotations><version>1.1</version><meta><project><labels><label><name>x</name></label></labels>'
           '</project></meta>']
    k = 0
    for sub in ("train", "val"):
        for n in range(6):
            w = 40 + 10 * n + (100 if sub == "val" else 0)
            make_jpeg(tmp_path / "p" / "images" / sub / f"f{n}.jpg", w, 30)
            ann.append(f'<image id="{k}" name="f{n}.jpg" subset="{sub}" width="{w}" height="30">'
                       f'<box label="x" xtl="1" ytl="1" xbr="9" ybr="9" occluded="0"></box></image>')
            k += 1
    (tmp_path / "p" / "annotations.xml").write_text("".join(ann) + "</annotations>")
    src = formats.get("cvat").read(tmp_path / "p")
    r = CliRunner().invoke(cli, ["split", str(tmp_path / "p"), str(tmp_path / "o"), "--val", "0.5"])
    assert r.exit_code == 0, r.output
    back = formats.get("cvat").read(tmp_path / "o")
    size = {im.image_id: im.width for im in src.images}
    assert sorted((im.image_id, im.width) for im in back.images) == sorted(size.items())
    assert not [f for f in back.findings if f.code == "size-mismatch"]


def test_a_coco_split_with_float_ids_writes_its_images(tmp_path):
    # ids written 1.0 were compared as "1.0" with the reader's "1": both parts came out empty, exit 0
    doc = {"images": [{"id": float(k), "file_name": f"i{k}.jpg", "width": 20, "height": 20} for k in range(1, 11)],
           "annotations": [{"id": float(k), "image_id": float(k), "category_id": 1.0, "bbox": [1, 1, 5, 5],
                            "area": 25, "iscrowd": 0} for k in range(1, 11)],
           "categories": [{"id": 1.0, "name": "x"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(cli, ["split", str(tmp_path / "c.json"), str(tmp_path / "o"), "--val", "0.3",
                                 "--images-mode", "none"])
    assert r.exit_code == 0, r.output
    back = formats.get("coco").read(tmp_path / "o")
    assert (len(back.images), back.num_objects, sorted(back.splits)) == (10, 10, ["train", "val"])


def test_voc_output_says_which_images_the_default_lists_leave_out(tmp_path):
    # merging a split VOC with an unsplit LabelMe set wrote 400 images of which reading OUT gave 200, without a word
    from datatools.core.model import Annotation, Dataset, ImageRecord

    recs = tuple(ImageRecord(f"i{k}", f"i{k}.jpg", 20, 20, (Annotation("x", (1.0, 1.0, 9.0, 9.0)),), splits=s)
                 for k, s in enumerate([("train",), ("val",), (), ("trainval",)]))
    res = formats.get("voc").write(Dataset(images=recs, classes=("x",)), tmp_path / "v", images_mode="none")
    [f] = [f for f in res.findings if f.code == "split-not-read-by-default"]
    assert "2 image(s)" in f.message and "all, trainval" in f.message and "--sets all" in f.message
    assert (tmp_path / "v/ImageSets/Main/all.txt").read_text() == "i2\n"
    assert len(formats.get("voc").read(tmp_path / "v").images) == 2
    assert len(formats.get("voc").read(tmp_path / "v", sets="all").images) == 4


def test_a_coco_split_of_per_split_folders_that_reuse_names(tmp_path):
    # images/train/0.jpg and images/val/0.jpg are two pictures (read as 0 and val/0): the split placed both as
    # images/0.jpg and refused ("two different images would be placed under this name"), exit 1
    from tests.conftest import make_jpeg

    for split, w in (("train", 30), ("val", 50)):
        doc = {"images": [{"id": k, "file_name": f"{k}.jpg", "width": w + k, "height": 20} for k in range(4)],
               "annotations": [{"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25,
                                "iscrowd": 0} for k in range(4)],
               "categories": [{"id": 1, "name": "x"}]}
        (tmp_path / "c" / "annotations").mkdir(parents=True, exist_ok=True)
        (tmp_path / "c" / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
        for k in range(4):
            make_jpeg(tmp_path / "c" / "images" / split / f"{k}.jpg", w + k, 20)
    src = formats.get("coco").read(tmp_path / "c")
    r = CliRunner().invoke(cli, ["split", str(tmp_path / "c"), str(tmp_path / "o"), "--val", "0.5"])
    assert r.exit_code == 0, r.output
    back = formats.get("coco").read(tmp_path / "o")
    assert sorted((im.image_id, im.width) for im in back.images) == sorted((im.image_id, im.width)
                                                                           for im in src.images)
    assert not [f for f in back.findings if f.severity.value != "info"]


def run_split(*args):
    r = CliRunner().invoke(cli, ["split", *map(str, args)])
    assert r.exit_code == 0, r.output
    return r


def test_what_split_rewrites_as_boxes_and_cannot_read_is_said(tmp_path):
    """A LabelMe source of polygons comes out as rectangles (split rewrites every format but VOC and COCO), and a
    Label Studio task without a size is dropped: both were in no line of split's output (it said "0 objects")."""
    src = make_source("labelme", tmp_path)
    for f in (src / "annotations").glob("*.json"):
        d = json.loads(f.read_text())
        for shape in d["shapes"]:
            (x1, y1), (x2, y2) = shape["points"]
            shape.update(points=[[x1, y1], [x2, y1], [x2, y2]], shape_type="polygon")
        f.write_text(json.dumps(d))
    r = run_split(src, tmp_path / "out")
    assert "OUT holds their boxes" in r.output, r.output
    d = json.loads(run_split(src, tmp_path / "out2", "--json").output)
    assert d["read_shapes_as_boxes"] == sum(1 for im in synthetic(tmp_path).images if im.annotations)
    ls = make_source("labelstudio", tmp_path)
    tasks = json.loads((ls / "tasks.json").read_text())
    for t in tasks[:3]:
        t["data"].pop("width", None), t["data"].pop("height", None)
        for a in t["annotations"]:
            for res in a["result"]:
                res.pop("original_width", None), res.pop("original_height", None)
    (ls / "tasks.json").write_text(json.dumps(tasks))
    for p in (ls / "images").rglob("*.jpg"):
        p.unlink()  # no picture to read a size from either
    d = json.loads(run_split(ls, tmp_path / "ls_out", "--json", "--images-mode", "none").output)
    assert d["read_images_dropped"] == d["read_errors"] == 3 and d["images"] == 27
    r = run_split(ls, tmp_path / "ls_out2", "--images-mode", "none")
    assert "3 images could not be read and are in no part" in r.output, r.output


def test_a_voc_split_says_the_boxes_it_could_not_read_are_still_in_its_copies(tmp_path):
    src = make_source("voc", tmp_path)
    xml = sorted((src / "Annotations").glob("*.xml"))[0]
    xml.write_text(xml.read_text().replace("</object>", "</object><object><name>car</name><bndbox><xmin>5</xmin>"
                                           "<ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>", 1))
    r = run_split(src, tmp_path / "out")
    assert "still hold" in r.output and "are not in OUT" not in r.output, r.output


def test_dedup_says_what_it_could_not_compare(tmp_path):
    src = make_source("voc", tmp_path)
    for p in list((src / "JPEGImages").glob("*.jpg"))[:2]:
        p.write_bytes(b"not a picture")
    d = json.loads(run_split(src, tmp_path / "out", "--dedup", "--json").output)
    assert len(d["dedup"]["not_compared"]) == 2
    for p in (src / "JPEGImages").glob("*.jpg"):
        p.unlink()
    r = CliRunner().invoke(cli, ["split", str(src), str(tmp_path / "out2"), "--dedup"])
    assert r.exit_code == 1 and "none of the 30 images could be compared" in r.output, r.output
    assert not (tmp_path / "out2").exists()


def test_shapes_as_boxes_are_counted_by_image(tmp_path):
    """Two CVAT images, each with two rotated boxes, a polygon and an ellipse: 2 images, not 8 findings."""
    for n in "ab":
        make_jpeg(tmp_path / "cv" / "images" / f"{n}.jpg", 100, 80)
    image = ('<image id="0" name="{}.jpg" width="100" height="80">'
             '<box label="cat" xtl="10" ytl="10" xbr="50" ybr="50" rotation="10"/>'
             '<box label="cat" xtl="10" ytl="10" xbr="50" ybr="50" rotation="20"/>'
             '<polygon label="cat" points="1,1;20,1;20,20"/><ellipse label="cat" cx="30" cy="30" rx="5" ry="5"/>'
             '</image>')
    (tmp_path / "cv" / "annotations.xml").write_text(f"<annotations>{image.format('a')}{image.format('b')}"
                                                     "</annotations>")
    d = json.loads(run_split(tmp_path / "cv", tmp_path / "out", "--val", "0.5", "--json").output)
    assert d["read_shapes_as_boxes"] == 2
