"""Operations never edit the records they are given: they return new ones.

Annotation and ImageRecord are not frozen (see datatools.core.model for the measured reason), so this test holds the
promise that ``frozen=True`` used to enforce: each operation runs on a dataset that exercises its every rewrite
(clipping, crowd, renaming, remapping, filtering, sampling, merging, splitting, writing), and afterwards the dataset
it was given pickles to the same bytes as before, down to the fields that equality ignores (``where``, ``extra``).
"""
from __future__ import annotations

import pickle

import pytest

from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.check import check_dataset
from datatools.ops.convert import fields_not_kept, summarize, write_dataset
from datatools.ops.sanitize import prepare
from datatools.ops.split import plan_split
from datatools.ops.stats import label_stats
from datatools.ops.surgery import filter_dataset, merge_datasets, remap_classes, sample_dataset
from datatools import formats


def _dataset(tag: str = "a") -> Dataset:
    def rec(k: int, anns, size=(100, 80), split="train"):
        return ImageRecord(image_id=f"{tag}{k}", file_name=f"{tag}{k}.jpg", width=size[0] if size else None,
                           height=size[1] if size else None, annotations=tuple(anns), source=f"/src/{tag}{k}.xml",
                           splits=(split,), extra=(("license", 1),))

    images = (
        rec(0, [Annotation("cat", (10.0, 10.0, 50.0, 40.0), difficult=True, attributes=(("pose", "Left"),)),
                Annotation("cat", (-5.0, 5.0, 120.0, 60.0), truncated=True, where="line 3"),  # clipped
                Annotation("Cat ", (5.0, 5.0, 20.0, 20.0)),  # a case variant: unknown, or renamed by normalize
                Annotation("dog", (20.0, 20.0, 100.0000001, 80.0), extra=(("area", 5.0),))]),  # float noise at an edge
        rec(1, [Annotation("dog", (1.0, 1.0, 3.0, 3.0), iscrowd=True),  # small: filtered by size
                Annotation("bird", (60.0, 60.0, 50.0, 70.0))], split="val"),  # inverted: dropped
        rec(2, [Annotation("cat", (0.0, 0.0, 30.0, 30.0), occluded=True, score=0.9)], size=None),  # no size
        rec(3, [], split="val"),
        rec(4, [Annotation("dog", (5.0, 5.0, 60.0, 70.0), difficult=True)]),
    )
    return Dataset(images=images, classes=("cat", "dog"), objects_read=8, root="/src", format="voc",
                   meta={"coco": {"info": {"year": 2024}}})


def _operations(tmp_path):
    yield "prepare keep", lambda ds: prepare(ds, difficult="keep")
    yield "prepare crowd", lambda ds: prepare(ds, classes=["dog", "cat"], difficult="crowd", normalize_names=True,
                                              require_size=True)
    yield "prepare skip", lambda ds: prepare(ds, difficult="skip", clip_boxes=False)
    yield "summarize", lambda ds: summarize(ds, prepare(ds), src="s", out="o", src_format="voc", dst_format="yolo")
    yield "remap", lambda ds: remap_classes(ds, {"cat": "animal", "Cat ": "animal", "dog": None})
    yield "filter", lambda ds: filter_dataset(ds, classes=["dog"], min_size=4, drop_empty=True)
    yield "sample", lambda ds: sample_dataset(ds, n=2, stratified=True, seed=1)
    yield "merge", lambda ds: merge_datasets([ds, _dataset("b")])
    yield "split", lambda ds: plan_split(ds, val=0.4, seed=3)
    yield "stats", label_stats
    yield "check", lambda ds: check_dataset(ds)
    for fmt in formats.FORMATS:
        def write(ds, fmt=fmt):
            ready = prepare(ds, require_size=True)
            out = tmp_path / fmt
            write_dataset(ready, fmt, out, images_mode="none")
            return ready, fields_not_kept(ready, formats.get(fmt), out)
        yield f"write {fmt}", write


def test_no_operation_edits_its_input(tmp_path):
    names = []
    for name, op in _operations(tmp_path):
        ds = _dataset()
        before = pickle.dumps(ds)
        op(ds)
        assert pickle.dumps(ds) == before, f"{name} edited the dataset it was given"
        names.append(name)
    assert len(names) >= 11 + len(formats.FORMATS)


def test_records_are_values():
    a = Annotation("cat", (1.0, 2.0, 3.0, 4.0), attributes=(("pose", "Left"),))
    same = Annotation("cat", (1.0, 2.0, 3.0, 4.0), attributes=(("pose", "Left"),), where="line 7", extra=(("area", 4.0),))
    assert a == same and hash(a) == hash(same) and len({a, same}) == 1  # where and extra are not part of the value
    r = ImageRecord("x", "x.jpg", 10, 10, (a,))
    assert hash(r) == hash(ImageRecord("x", "x.jpg", 10, 10, (same,)))
    assert pickle.loads(pickle.dumps(same)).extra == (("area", 4.0),)
    with pytest.raises(AttributeError):  # slotted: a misspelt field is an error, not a new attribute
        a.lable = "dog"  # type: ignore[attr-defined]
