"""Real VOC data written by other people (../shared/realworld); skipped when the folder is absent."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.core.errors import NoInputError

pytestmark = pytest.mark.realworld


def test_bccd_converts_with_books_balanced(realworld, tmp_path):
    for fmt in ("yolo", "coco"):
        s = datatools.convert("voc", realworld / "bccd", fmt, tmp_path / fmt)
        assert s.balanced and s.objects_read == 4888
        # the two zero-area boxes (BloodImage_00338, 00343) are dropped by name and counted
        zero = [f for f in s.findings if f.code == "zero-area"]
        assert {f.image_id for f in zero} == {"BloodImage_00338", "BloodImage_00343"}
        assert s.objects_dropped == {"zero-area": 2}
        assert set(s.splits) == {"train", "val", "test"}
        assert set(s.class_counts) == {"Platelets", "RBC", "WBC"}


def test_raccoon_agrees_with_its_csv_answer_key(realworld):
    root = realworld / "raccoon"
    ds = formats.get("voc").read(root / "annotations", images=root / "images", convention="as-is")
    ours = sorted((im.file_name, im.width, im.height, a.label, *map(int, a.box)) for im in ds.images for a in im.annotations)
    with open(root / "data" / "raccoon_labels.csv", newline="") as f:
        key = sorted((r["filename"], int(r["width"]), int(r["height"]), r["class"], int(r["xmin"]), int(r["ymin"]),
                      int(r["xmax"]), int(r["ymax"])) for r in csv.DictReader(f))
    assert ours == key
    gray = [im for im in ds.images if im.image_id in ("raccoon-150", "raccoon-152", "raccoon-161")]
    assert len(gray) == 3 and all(im.depth == 1 for im in gray)


def test_raccoon_yolo_has_every_box(realworld, tmp_path):
    root = realworld / "raccoon"
    s = datatools.convert("voc", root / "annotations", "yolo", tmp_path / "y", images=root / "images")
    assert s.balanced and s.objects_written == 217 and s.errors == {}
    assert len(list((tmp_path / "y/images/all").iterdir())) == 200


def test_raccoon_as_downloaded_needs_no_options(realworld, tmp_path):
    """datitran/raccoon_dataset keeps its XMLs in annotations/ beside images/: the root is all a user gives."""
    root = realworld / "raccoon"
    r = CliRunner().invoke(cli, ["voc2yolo", str(root), str(tmp_path / "y"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"]["written"] == 200 and s["objects"]["written"] == 217 and s["errors"] == {}, s["errors"]
    assert len(list((tmp_path / "y/images/all").iterdir())) == 200


@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_datumaro_assets_convert_with_books_balanced(realworld, tmp_path, name, fmt):
    src = realworld / "datumaro_voc" / name
    if not src.is_dir():
        pytest.skip(f"{name} not present")
    if name == "voc_dataset2" and fmt == "yolo":  # no <size> and no images: nothing can be normalized
        with pytest.raises(NoInputError, match=r"nothing to write: every image of .* was dropped \(missing-size 5\)"):
            datatools.convert("voc", src, fmt, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        return
    s = datatools.convert("voc", src, fmt, tmp_path / "out")
    assert s.balanced
    if name == "voc_dataset1":
        assert s.notes.get("part-ignored") == 1
