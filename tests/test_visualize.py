"""``datatools visualize`` and ``datatools.viz``: pixels of drawn boxes, stable colours, contact sheets, predictions,
``--check``, EXIF, filters and bad images."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datatools.cli import cli
from datatools.viz import SheetLayout, class_colour, draw_boxes, line_width_for, parse_grid, text_colour_on
from datatools.viz.draw import WARNING_COLOUR, WARNING_COLOUR_2
from datatools.viz.render import side_gap
from datatools.viz.sheet import BACKGROUND
from tests.conftest import SAMPLE, make_jpeg, make_voc_root, voc_xml

RED = (255, 0, 0)


def run(*args: str):
    res = CliRunner().invoke(cli, ["visualize", *map(str, args)])
    return res


def blank(w: int = 100, h: int = 80, value: int = 0) -> Image.Image:
    return Image.new("RGB", (w, h), (value, value, value))


def is_colour(px, colour, tol: int = 0) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(px, colour))


# ------------------------------------------------------------------------------------------------ drawing pixels

@pytest.mark.parametrize("box, lw, cols, rows", [
    # continuous box -> first/last pixel columns and rows covered
    ((10, 20, 50, 60), 1, (10, 49), (20, 59)),
    ((10, 20, 50, 60), 3, (10, 49), (20, 59)),
    ((10.4, 19.6, 49.6, 60.4), 2, (10, 49), (20, 59)),
    ((0, 0, 100, 80), 2, (0, 99), (0, 79)),
    ((-30, -5, 40, 200), 2, (0, 39), (0, 79)),  # clipped to the image
])
def test_box_colours_its_border_and_leaves_inside_untouched(box, lw, cols, rows):
    out = np.asarray(draw_boxes(blank(), [box], colours=[RED], width=lw, show_labels=False))
    (c0, c1), (r0, r1) = cols, rows
    border = np.zeros(out.shape[:2], bool)
    border[r0:r1 + 1, c0:c1 + 1] = True
    border[r0 + lw:r1 + 1 - lw, c0 + lw:c1 + 1 - lw] = False
    red = np.all(out == RED, axis=2)
    untouched = np.all(out == 0, axis=2)
    assert red[border].all(), "every border pixel is drawn"
    assert untouched[~border].all(), "nothing inside or outside the outline is touched"


def test_draw_boxes_copies_and_accepts_arrays():
    img = blank()
    before = img.tobytes()
    out = draw_boxes(img, [(10, 10, 30, 30)], ["cat"])
    assert img.tobytes() == before and out is not img
    arr = np.zeros((40, 50), np.uint8)
    out2 = draw_boxes(arr, np.array([[5, 5, 20, 20]]), ["cat"], show_labels=False, width=1)
    assert out2.size == (50, 40) and out2.mode == "RGB"
    assert is_colour(out2.getpixel((5, 10)), class_colour("cat"))
    assert not arr.any()


@pytest.mark.parametrize("kwargs", [{"labels": ["a", "b"]}, {"scores": [0.5, 0.6]}, {"styles": ["solid", "bold"]}])
def test_draw_boxes_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        draw_boxes(blank(), [(1, 1, 5, 5)] if "styles" not in kwargs else [(1, 1, 5, 5), (2, 2, 6, 6)], **kwargs)


def test_dashed_outline_has_gaps_and_a_label_sits_above():
    out = np.asarray(draw_boxes(blank(200, 160), [(20, 60, 180, 140)], ["dog"], styles=["dashed"], width=2))
    colour = class_colour("dog")
    top = np.all(out[60, 20:180] == colour, axis=1)
    assert 0.3 < top.mean() < 0.8, "a dashed edge is partly drawn"
    assert np.all(out[62:138, 22:178] == 0), "inside untouched"
    above = out[:60, 20:80]
    assert np.all(above == colour, axis=2).any(), "the label box is filled in the class colour above the box"
    txt = text_colour_on(colour)
    near_txt = np.all(np.abs(above.astype(int) - txt) <= 60, axis=2)
    assert near_txt.any(), "label text drawn in the contrasting colour (anti-aliased)"


def test_degenerate_boxes_are_marked_not_lost():
    out = np.asarray(draw_boxes(blank(), [(40, 40, 40, 40)], colours=[RED], show_labels=False))
    assert np.all(out == RED, axis=2).any()


@pytest.mark.parametrize("bg, expected", [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255)),
                                          ((255, 255, 0), (0, 0, 0)), ((0, 0, 160), (255, 255, 255))])
def test_label_text_contrasts(bg, expected):
    assert text_colour_on(bg) == expected


def test_line_width_scales_with_image_size():
    widths = [line_width_for(s, s * 3 // 4) for s in (100, 320, 640, 1280, 4000)]
    assert widths == sorted(widths) and widths[0] >= 2 and widths[-1] > widths[0]


def test_class_colours_are_stable_across_processes_and_class_lists():
    names = ["cat", "dog", "RBC", "Platelets", "étoile"]
    code = "import json,sys; from datatools.viz import class_colour; print(json.dumps([class_colour(n) for n in sys.argv[1:]]))"
    env = dict(os.environ, PYTHONHASHSEED="123")
    res = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, env=env, check=True)
    assert [tuple(c) for c in json.loads(res.stdout)] == [class_colour(n) for n in names]
    assert len({class_colour(n) for n in names}) == len(names)
    assert class_colour("cat") != class_colour("Cat")


# ------------------------------------------------------------------------------------------------ fixtures

def _voc(tmp_path: Path, n: int, *, size=(80, 60), extra: dict | None = None, images: dict | None = None) -> Path:
    items = {f"im{k:02d}": voc_xml(f"im{k:02d}.jpg", size, [{"name": "cat" if k % 2 else "dog",
                                                             "box": (10, 10, 40, 40)}]) for k in range(n)}
    items.update(extra or {})
    imgs = {f"im{k:02d}.jpg": size for k in range(n)}
    imgs.update(images or {})
    return make_voc_root(tmp_path / "voc", items, images=imgs)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------ CLI

def test_per_image_output_and_byte_identical_rerun(tmp_path):
    src = _voc(tmp_path, 3)
    for out in ("o1", "o2"):
        res = run(src, tmp_path / out, "--ext", "png", "--json")
        assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["images_drawn"] == 3 and data["boxes_drawn"] == 3
    files = sorted(p.name for p in (tmp_path / "o1").iterdir())
    assert files == ["im00.png", "im01.png", "im02.png"]
    for f in files:
        assert (tmp_path / "o1" / f).read_bytes() == (tmp_path / "o2" / f).read_bytes()
    arr = _png(tmp_path / "o1" / "im01.png")
    assert arr.shape == (60, 80, 3)
    # VOC 10..40 (as-is, the default) is continuous [10, 40): pixel columns 10..39
    assert is_colour(arr[25, 10], class_colour("cat")) and is_colour(arr[25, 39], class_colour("cat"))
    assert not is_colour(arr[25, 9], class_colour("cat")) and not is_colour(arr[25, 40], class_colour("cat"))


@pytest.mark.parametrize("n, grid, tile, sheets, last_tiles", [(7, "2x3", 96, 2, 1), (6, "2x3", 64, 1, 6),
                                                               (5, "1x1", 64, 5, 1), (3, "4x4", 80, 1, 3)])
def test_contact_sheets_have_expected_size_and_tile_count(tmp_path, n, grid, tile, sheets, last_tiles):
    src = _voc(tmp_path, n)
    res = run(src, tmp_path / "out", "--grid", grid, "--tile-size", tile, "--ext", "png", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert len(data["sheets"]) == sheets and data["images_drawn"] == n
    rows, cols = parse_grid(grid)
    layout = SheetLayout.for_tile(rows, cols, tile)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"sheet_{k:04d}.png" for k in range(1, sheets + 1)]
    last = _png(tmp_path / "out" / f"sheet_{sheets:04d}.png")
    assert (last.shape[1], last.shape[0]) == layout.size
    used = 0
    for k in range(layout.per_sheet):
        x0, y0, x1, y1 = layout.tile_box(k)
        if not np.all(last[y0:y1, x0:x1] == BACKGROUND):
            used += 1
    assert used == last_tiles
    assert sum(len(s["images"]) for s in data["sheets"]) == n


def _coco_preds(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_pred_overlay_draws_only_boxes_above_threshold(tmp_path):
    src = _voc(tmp_path, 2, size=(120, 90))
    preds = _coco_preds(tmp_path / "p.json", [
        # VOC ground truth: image_id k is the k-th image (sorted ids), category_id c the c-th sorted class (cat, dog)
        {"image_id": 1, "category_id": 1, "bbox": [60, 50, 40, 30], "score": 0.9},
        {"image_id": 1, "category_id": 2, "bbox": [5, 60, 30, 20], "score": 0.2},
        {"image_id": 9, "category_id": 1, "bbox": [5, 5, 5, 5], "score": 0.9},
    ])
    res = run(src, tmp_path / "out", "--pred", preds, "--score-thr", "0.5", "--pred-layout", "overlay", "--ext", "png",
              "--no-labels", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["preds_drawn"] == 1 and data["preds_below_thr"] == 1 and data["predictions"]["unknown_image"] == 1
    arr = _png(tmp_path / "out" / "im00.png")
    assert is_colour(arr[65, 60], class_colour("cat")) and is_colour(arr[50, 80], class_colour("cat"))
    background = arr[85, 115]
    assert np.all(arr[60:80, 5] == background) and np.all(arr[60, 5:35] == background), "low score not drawn"


def test_pred_side_by_side_layout(tmp_path):
    src = _voc(tmp_path, 1, size=(120, 90))
    # one image (im00: a dog), so the only class is dog = category 1
    preds = _coco_preds(tmp_path / "p.json", [{"file_name": "im00.jpg", "category_id": 1, "bbox": [60, 50, 40, 30],
                                               "score": 0.8}])
    res = run(src, tmp_path / "out", "--pred", preds, "--ext", "png", "--no-labels", "--json")
    assert res.exit_code == 0, res.output
    arr = _png(tmp_path / "out" / "im00.png")
    assert arr.shape[1] == 2 * 120 + side_gap(120)
    band = arr.shape[0] - 90
    assert band > 0
    right = arr[band:, 120 + side_gap(120):]
    assert is_colour(right[60, 60], class_colour("dog")), "prediction drawn in the right panel"
    assert is_colour(arr[band + 25, 10], class_colour("dog")), "ground truth (dog, im00) in the left panel"
    assert not is_colour(right[25, 10], class_colour("dog")), "ground truth not repeated on the right"


def test_pred_with_coco_ground_truth_uses_coco_ids(tmp_path):
    make_jpeg(tmp_path / "img" / "x.jpg", 100, 80)
    gt = {"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 80}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}],
          "categories": [{"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    preds = _coco_preds(tmp_path / "p.json", [{"image_id": 7, "category_id": 8, "bbox": [50, 40, 30, 30], "score": 0.9},
                                              {"image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3], "score": 0.9}])
    res = run(tmp_path / "gt.json", tmp_path / "out", "-f", "coco", "--images", tmp_path / "img", "--pred", preds,
              "--pred-layout", "overlay", "--ext", "png", "--no-labels", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["preds_drawn"] == 1 and data["predictions"]["unknown_image"] == 1
    arr = _png(tmp_path / "out" / "x.png")
    assert is_colour(arr[55, 50], class_colour("dog")) and is_colour(arr[15, 10], class_colour("cat"))


def test_pred_on_a_url_coco_source_matches_as_on_the_local_file(tmp_path):
    """``--pred`` on a COCO source behind a URL (fsspec memory://) matches by the file's own image and category ids,
    exactly as on the local file (the categories were once read with a local path there, and every prediction
    became an unknown category)."""
    fsspec = pytest.importorskip("fsspec")
    from datatools import formats
    from datatools.viz.render import predictions_to_draw

    gt = {"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 80},
                     {"id": 9, "file_name": "y.jpg", "width": 100, "height": 80}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400,
                           "iscrowd": 0}],
          "categories": [{"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    mem = fsspec.filesystem("memory")
    mem.pipe("/viz-url-case/gt.json", json.dumps(gt).encode())
    preds = _coco_preds(tmp_path / "p.json", [
        {"image_id": 7, "category_id": 8, "bbox": [50, 40, 30, 30], "score": 0.9},
        {"image_id": 9, "category_id": 3, "bbox": [5, 5, 10, 10], "score": 0.4},
        {"file_name": "y.jpg", "category_id": 8, "bbox": [1, 2, 3, 4]},  # no score: drawn as 1
        {"image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3], "score": 0.9},  # no such image
        {"image_id": 7, "category_id": 5, "bbox": [1, 1, 3, 3], "score": 0.9}])  # no such category
    try:
        local = predictions_to_draw(preds, formats.get("coco").read(tmp_path / "gt.json"))
        remote = predictions_to_draw(preds, formats.get("coco").read("memory://viz-url-case/gt.json"))
        cli_runs = [run(src, tmp_path / name, "-f", "coco", "--pred", preds, "--json")
                    for src, name in ((tmp_path / "gt.json", "out_local"), ("memory://viz-url-case/gt.json", "out_url"))]
    finally:
        mem.rm("/viz-url-case", recursive=True)
    assert remote.to_dict() == local.to_dict()
    assert remote.by_image == local.by_image
    assert (remote.matched, remote.unknown_image, remote.unknown_category) == (3, 1, 1)
    assert [(a.label, a.box, a.score) for a in remote.by_image["x"]] == [("dog", (50.0, 40.0, 80.0, 70.0), 0.9)]
    assert sorted((a.label, a.score) for a in remote.by_image["y"]) == [("cat", 0.4), ("dog", 1.0)]
    # the files x.jpg and y.jpg are not there: nothing is drawn (exit 1), the predictions are matched all the same
    assert all(r.exit_code == 1 and "could be drawn" in r.output for r in cli_runs), [r.output for r in cli_runs]
    on_local, on_url = (json.loads(r.stdout)["predictions"] for r in cli_runs)
    assert on_url == on_local == remote.to_dict()


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_other_formats(tmp_path, fmt):
    from datatools import formats

    src = _voc(tmp_path, 3)
    ds = formats.get("voc").read(src)
    dst = tmp_path / fmt
    formats.get(fmt).write(ds, dst, images_mode="copy")
    arg = next(dst.rglob("data.yaml")) if fmt == "yolo" else dst  # a COCO folder: annotations/ + images/<split>/
    res = run(arg, tmp_path / "out", "-f", fmt, "--ext", "png", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["images_drawn"] == 3 and data["boxes_drawn"] == 3
    arr = _png(Path(data["files"][1]))
    assert is_colour(arr[25, 10], class_colour("cat"))


def test_missing_and_corrupt_images_are_listed_and_skipped(tmp_path):
    extra = {"gone": voc_xml("gone.jpg", (80, 60), [{"name": "cat", "box": (1, 1, 9, 9)}]),
             "bad": voc_xml("bad.jpg", (80, 60), [{"name": "cat", "box": (1, 1, 9, 9)}])}
    src = _voc(tmp_path, 2, extra=extra)
    (src / "JPEGImages" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    res = run(src, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "Skipped images" in res.output and "gone" in res.output and "bad" in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im00.jpg", "im01.jpg"]
    res = run(src, tmp_path / "sheet", "--grid", "2x2", "--json")
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["images_drawn"] == 2
    assert {s["image_id"]: s["reason"].split(":")[0].split(" (")[0] for s in data["skipped"]} == {
        "bad": "unreadable image", "gone": "missing image file"}


def test_check_draws_only_problem_images_in_warning_colours(tmp_path):
    extra = {"oob": voc_xml("oob.jpg", (80, 60), [{"name": "cat", "box": (40, 20, 120, 50)},
                                                  {"name": "dog", "box": (4, 5, 20, 20)}]),
             "zero": voc_xml("zero.jpg", (80, 60), [{"name": "cat", "box": (30, 30, 30, 30)}])}
    src = _voc(tmp_path, 2, extra=extra, images={"oob.jpg": (80, 60), "zero.jpg": (80, 60)})
    res = run(src, tmp_path / "out", "--check", "--ext", "png", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["findings_drawn"] == {"box-out-of-bounds": 1, "zero-area": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["oob.png", "zero.png"]
    arr = _png(tmp_path / "out" / "oob.png")
    edge = arr[30:48, 79]  # the clipped right edge of the out-of-bounds box
    assert any(is_colour(p, WARNING_COLOUR, 40) for p in edge) and any(is_colour(p, WARNING_COLOUR_2, 40) for p in edge)
    assert is_colour(arr[12, 4], class_colour("dog")), "fine boxes keep their class colour"
    zero = _png(tmp_path / "out" / "zero.png")
    assert np.any(np.all(np.abs(zero.astype(int) - WARNING_COLOUR) <= 40, axis=2)), "a dropped box is still marked"


def test_exif_rotation_is_applied_before_drawing(tmp_path):
    # stored 60x40, orientation 6 (rotate 90): displayed 40x60, the frame annotations use
    root = make_voc_root(tmp_path / "voc", {"r": voc_xml("r.jpg", (40, 60), [{"name": "cat", "box": (4, 31, 20, 50)}])})
    make_jpeg(root / "JPEGImages" / "r.jpg", 60, 40, exif_orientation=6)
    res = run(root, tmp_path / "out", "--ext", "png", "--no-labels")
    assert res.exit_code == 0, res.output
    arr = _png(tmp_path / "out" / "r.png")
    assert arr.shape[:2] == (60, 40)
    assert is_colour(arr[40, 4], class_colour("cat")) and is_colour(arr[49, 12], class_colour("cat"))


def test_max_size_shrinks_and_scales_boxes(tmp_path):
    src = _voc(tmp_path, 2, size=(160, 120))
    res = run(src, tmp_path / "out", "--max-size", "80", "--ext", "png", "--no-labels")
    assert res.exit_code == 0, res.output
    arr = _png(tmp_path / "out" / "im01.png")
    assert arr.shape[:2] == (60, 80)
    # box [10, 10, 40, 40) at half size: columns 5..19
    assert is_colour(arr[12, 5], class_colour("cat"), 40) and not is_colour(arr[12, 3], class_colour("cat"), 40)


def test_filters_classes_ids_limit_shuffle(tmp_path):
    src = _voc(tmp_path, 8)

    def drawn(*args):
        res = run(src, tmp_path / "o", "--json", *args)
        assert res.exit_code == 0, res.output
        return [Path(f).stem for f in json.loads(res.output)["files"]]

    assert drawn("--classes", "cat") == ["im01", "im03", "im05", "im07"]
    assert drawn("--ids", "im0[0-2]") == ["im00", "im01", "im02"]
    (tmp_path / "ids.txt").write_text("im04\nim06.jpg\n")
    assert drawn("--ids", tmp_path / "ids.txt") == ["im04", "im06"]
    assert drawn("--limit", "2") == ["im00", "im01"]
    a, b, c = drawn("--shuffle", "--seed", "1", "--limit", "4"), drawn("--shuffle", "--seed", "1", "--limit", "4"), \
        drawn("--shuffle", "--seed", "2", "--limit", "4")
    assert a == b and len(a) == 4 and (a != c or a != ["im00", "im01", "im02", "im03"])


def test_difficult_hidden_unless_asked(tmp_path):
    src = make_voc_root(tmp_path / "voc", {"d": voc_xml("d.jpg", (80, 60), [
        {"name": "cat", "box": (10, 10, 70, 50), "difficult": 1}])}, images={"d.jpg": (80, 60)})
    res = run(src, tmp_path / "a", "--ext", "png", "--json")
    assert json.loads(res.output)["difficult_hidden"] == 1
    assert not np.any(np.all(_png(tmp_path / "a" / "d.png") == class_colour("cat"), axis=2))
    res = run(src, tmp_path / "b", "--ext", "png", "--show-difficult", "--json")
    assert json.loads(res.output)["difficult_drawn"] == 1
    arr = _png(tmp_path / "b" / "d.png")
    edge = np.all(np.abs(arr[10:50, 10].astype(int) - class_colour("cat")) <= 30, axis=1)
    assert 0.2 < edge.mean() < 0.9, "difficult boxes are drawn dashed with --show-difficult"


@pytest.mark.parametrize("args, message", [(["--grid", "4by4"], "ROWSxCOLS"), (["--classes", "zebra"], "unknown class"),
                                           (["--grid", "0x3"], "between 1 and 50")])
def test_usage_errors(tmp_path, args, message):
    src = _voc(tmp_path, 1)
    res = run(src, tmp_path / "out", *args)
    assert res.exit_code == 2 and message in res.output
    assert "Traceback" not in res.output


def test_refuses_to_write_into_the_source(tmp_path):
    src = _voc(tmp_path, 1)
    res = run(src, src)
    assert res.exit_code == 2 and "is the input" in res.output


@pytest.mark.slow
def test_sample_data_in_parallel(tmp_path):
    res = run(SAMPLE, tmp_path / "viz", "--grid", "4x4", "--limit", "32", "--workers", "2")
    assert res.exit_code == 0, res.output
    sheets = sorted((tmp_path / "viz").glob("sheet_*.jpg"))
    assert len(sheets) == 2 and "sheet_0001.jpg" in res.output
    with Image.open(sheets[0]) as im:
        assert im.size == SheetLayout.for_tile(4, 4, 320).size
    # one file per image across two worker processes, same bytes as in-process
    res = run(SAMPLE, tmp_path / "par", "--limit", "64", "--workers", "2", "--json")
    assert res.exit_code == 0, res.output
    files = json.loads(res.output)["files"]
    assert len(files) == 64
    res = run(SAMPLE, tmp_path / "one", "--ids", Path(files[-1]).stem, "--workers", "1", "--json")
    one = json.loads(res.output)["files"]
    assert Path(one[0]).read_bytes() == Path(files[-1]).read_bytes()


@pytest.mark.realworld
def test_bccd_check_marks_the_zero_area_boxes(tmp_path, realworld):
    res = run(realworld / "bccd", tmp_path / "out", "--check", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["findings_drawn"].get("zero-area", 0) >= 1
    assert data["images_drawn"] == len(data["files"]) >= 1


@pytest.mark.parametrize("command", ["visualize", "dupes"])
def test_nothing_drawn_or_compared_because_every_image_failed_is_an_error(tmp_path, command):
    # annotations whose images are all missing: "nothing drawn (no image matched the filters)" / "0 images
    # compared", exit 0; now exit 1 with the reasons listed
    from tests.conftest import make_voc_root, voc_xml

    src = make_voc_root(tmp_path / "v", {k: voc_xml(f"{k}.jpg", (20, 20), [{"name": "x", "box": (2, 2, 9, 9)}])
                                         for k in "ab"})
    args = [command, str(src)] + ([str(tmp_path / "o")] if command == "visualize" else [])
    for extra in ([], ["--json"]):
        r = CliRunner().invoke(cli, args + extra)
        assert r.exit_code == 1 and "none of the 2" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("grid", [[], ["--grid", "1x2"]])
def test_the_counts_are_those_of_the_pictures_drawn(tmp_path, grid):
    # boxes_drawn counted the boxes of an image that could not be read and was skipped
    from tests.conftest import make_jpeg, make_voc_root, voc_xml

    boxes = [{"name": "x", "box": (2, 2, 9, 9)}, {"name": "y", "box": (3, 3, 12, 12), "difficult": 1}]
    src = make_voc_root(tmp_path / "v", {k: voc_xml(f"{k}.jpg", (20, 20), boxes) for k in "ab"})
    make_jpeg(src / "JPEGImages" / "a.jpg", 20, 20)
    (src / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    r = CliRunner().invoke(cli, ["visualize", str(src), str(tmp_path / "o"), "--json", *grid])
    d = json.loads(r.output)
    assert (d["images_drawn"], d["boxes_drawn"], d["difficult_hidden"], len(d["skipped"])) == (1, 1, 1, 1), d


def test_labels_in_any_script_are_told_apart():
    """PIL's bundled font has no é or ß: 'café' was drawn exactly as 'caf猫', every non-ASCII letter one empty box.
    Latin, Greek and Cyrillic are drawn; a character the font lacks is drawn as its escape, so 猫 and 狗 differ."""
    from PIL import ImageDraw

    from datatools.viz.draw import font, shown

    def drawn(text: str) -> np.ndarray:
        im = Image.new("L", (160, 30))
        ImageDraw.Draw(im).text((2, 2), shown(text), font=font(14), fill=255)
        return np.asarray(im)

    for a, b in (("café", "cafe"), ("Straße", "Strasse"), ("кот", "кит"), ("猫", "狗")):
        assert not np.array_equal(drawn(a), drawn(b)), (a, b)
    assert shown("café") == "café" and shown("猫 cat") == "\\u732b cat"


def test_plots_draw_class_names_literally_and_quietly(tmp_path):
    """A class named '$x$' was typeset as mathtext and a CJK one gave matplotlib 'Glyph missing' warnings on stderr."""
    import warnings

    from datatools.viz.plots import plot_text

    assert plot_text("$x$") == r"\$x\$" and plot_text("猫") == "\\u732b"
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (40, 30), [{"name": "猫", "box": (1, 1, 9, 9)},
                                                                           {"name": "$x$", "box": (2, 2, 9, 9)}])})
    make_jpeg(root / "JPEGImages" / "a.jpg", 40, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = CliRunner().invoke(cli, ["stats", str(root), "--plots", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output


def test_drawn_pixels_are_the_ones_a_model_trains_on(tmp_path):
    # 12-bit data in a 16-bit PNG was stretched by its maximum (a bright square on grey) where the datasets and stats
    # keep the top 8 bits (nearly black); transparent pixels were blended over white, where training drops alpha
    from datatools.viz.draw import to_rgb

    deep = np.full((30, 40), 1280, np.uint16)
    deep[10:20, 10:20] = 4095
    Image.fromarray(deep).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        shown = to_rgb(im)
    assert shown.getpixel((0, 0)) == (5, 5, 5) and shown.getpixel((15, 15)) == (15, 15, 15)
    rgba = Image.new("RGBA", (8, 8), (100, 50, 25, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (100, 50, 25)
    assert to_rgb(np.full((4, 4, 3), 0.5, np.float32)).getpixel((0, 0)) == (127, 127, 127)


def test_a_crowd_region_is_drawn_dashed_and_named(tmp_path):
    # COCO iscrowd regions, which evaluation and training ignore, were drawn as solid boxes of ordinary objects
    (tmp_path / "images").mkdir()
    make_jpeg(tmp_path / "images" / "a.jpg", 80, 60)
    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 60, 40], "iscrowd": 1,
                         "area": 2400}], "categories": [{"id": 1, "name": "cat"}]}))
    res = run(tmp_path / "c.json", tmp_path / "o", "--ext", "png", "--images", tmp_path / "images")
    assert res.exit_code == 0, res.output
    arr = _png(tmp_path / "o" / "a.png")
    edge = np.all(np.abs(arr[10:50, 10].astype(int) - class_colour("cat")) <= 30, axis=1)
    assert 0.2 < edge.mean() < 0.9, "a crowd region is drawn dashed"
