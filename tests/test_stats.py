"""stats: exact pixel mean/std against a float64 reference, worker independence, colour modes, corrupt images,
label statistics, plots and the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.stats import label_stats, parse_resize, pixel_stats, resized_size, stats_from_histogram
from tests.conftest import SAMPLE, make_voc_root, voc_xml


def as_rgb_array(path: Path) -> np.ndarray:
    """The documented colour rule, written the slow and obvious way."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode.startswith("I"):
            a = np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8
            return np.repeat(a[..., None], 3, axis=2).astype(np.float64)
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def reference(paths) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean/std straight over all pixels of all images, in [0, 1]."""
    allpx = np.concatenate([as_rgb_array(p).reshape(-1, 3) for p in paths]) / 255.0
    return allpx.mean(axis=0), allpx.std(axis=0)


def noise_image(path: Path, mode: str, size=(37, 23), seed=0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "RGB":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    elif mode == "L":
        im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "RGBA":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(16)
    elif mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "LA":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA")
    elif mode == "CMYK":  # saved as TIFF: PNG has no CMYK
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "CMYK")
    else:
        raise ValueError(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@pytest.fixture(scope="module")
def mixed_images(tmp_path_factory) -> list[Path]:
    """40 small images: JPEG and PNG RGB noise, grayscale, RGBA, palette and 16-bit PNGs."""
    root = tmp_path_factory.mktemp("px")
    out = []
    modes = ["RGB", "L", "RGBA", "P", "I;16"]
    for i in range(40):
        mode = modes[i % len(modes)]
        ext = ".jpg" if mode in ("RGB", "L") and i % 2 == 0 else ".png"
        out.append(noise_image(root / f"im{i:02d}{ext}", mode, size=(30 + i, 20 + i % 7), seed=i))
    return out


def test_exact_against_float64_reference_for_every_mode(mixed_images):
    px = pixel_stats([str(p) for p in mixed_images], workers=1)
    mean, std = reference(mixed_images)
    assert np.allclose(px.mean, mean, rtol=0, atol=1e-9)
    assert np.allclose(px.std, std, rtol=0, atol=1e-9)
    assert px.images == 40 and px.pixels == sum(as_rgb_array(p).shape[0] * as_rgb_array(p).shape[1] for p in mixed_images)
    assert set(px.modes) >= {"RGB", "L", "RGBA", "P"} and not px.failed


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_single_mode_matches_reference(tmp_path, mode):
    ext = ".tif" if mode == "CMYK" else ".png"
    paths = [noise_image(tmp_path / f"{i}{ext}", mode, seed=i) for i in range(3)]
    px = pixel_stats([str(p) for p in paths], workers=1)
    mean, std = reference(paths)
    assert np.abs(np.array(px.mean) - mean).max() < 1e-9 and np.abs(np.array(px.std) - std).max() < 1e-9
    if mode in ("L", "I;16", "LA"):  # grayscale is replicated: three equal channels
        assert px.mean[0] == px.mean[1] == px.mean[2]


def test_bit_identical_for_any_worker_count(mixed_images):
    paths = [str(p) for p in mixed_images]
    one = pixel_stats(paths, workers=1)
    two = pixel_stats(list(reversed(paths)), workers=2)
    assert one.mean == two.mean and one.std == two.std  # exact equality, not approximate
    assert np.array_equal(one.histogram, two.histogram)


def test_histogram_arithmetic_is_exact():
    hist = np.zeros((3, 256), dtype=np.int64)
    hist[:, 0] = 10 ** 12  # large counts: no overflow, no float drift
    hist[:, 255] = 10 ** 12
    mean, std, n = stats_from_histogram(hist)
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5) and n == 2 * 10 ** 12


def test_corrupt_and_missing_images_are_listed_and_skipped(tmp_path, mixed_images):
    good = [str(p) for p in mixed_images[:4]]
    data = Path(mixed_images[0]).read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    px = pixel_stats(good + [str(bad), str(junk), str(tmp_path / "gone.jpg")], workers=1)
    assert px.images == 4
    assert {Path(p).name for p, _ in px.failed} == {"truncated.jpg", "junk.jpg", "gone.jpg"}
    assert px.mean == pixel_stats(good, workers=1).mean


@pytest.mark.parametrize("spec,size,expected", [("64", (200, 100), (128, 64)), ("64", (100, 200), (64, 128)),
                                                ("32x48", (200, 100), (32, 48)), (None, (5, 5), None)])
def test_resize_sizes_follow_torchvision(spec, size, expected):
    r = parse_resize(spec)
    if expected is None:
        assert r is None
        return
    assert resized_size(*size, r) == expected
    if isinstance(r, int):
        import torch
        from torchvision.transforms import v2

        out = v2.Resize(r)(torch.zeros(3, size[1], size[0]))
        assert (out.shape[2], out.shape[1]) == expected


def test_resize_statistics_match_a_resized_reference(tmp_path):
    from PIL import Image

    paths = [noise_image(tmp_path / f"{i}.png", "RGB", size=(60, 40), seed=i) for i in range(3)]
    px = pixel_stats([str(p) for p in paths], resize=20, workers=1)
    arrs = [np.asarray(Image.open(p).convert("RGB").resize((30, 20), Image.Resampling.BILINEAR), dtype=np.float64)
            for p in paths]
    allpx = np.concatenate([a.reshape(-1, 3) for a in arrs]) / 255
    assert px.pixels == 3 * 600
    assert np.abs(np.array(px.mean) - allpx.mean(0)).max() < 1e-9


def test_sample_is_a_seeded_estimate(mixed_images):
    paths = [str(p) for p in mixed_images]
    a = pixel_stats(paths, sample=10, seed=1, workers=1)
    b = pixel_stats(paths, sample=10, seed=1, workers=1)
    assert a.estimate and a.images == 10 and a.population == 40 and a.mean == b.mean
    assert not pixel_stats(paths, sample=100, workers=1).estimate


def test_label_statistics():
    recs = (
        ImageRecord("a", "a.jpg", 200, 100, (Annotation("cat", (0, 0, 10, 10)), Annotation("cat", (0, 0, 40, 40)),
                                              Annotation("dog", (0, 0, 200, 100), difficult=True))),
        ImageRecord("b", "b.jpg", 200, 100, (Annotation("dog", (10, 10, 20, 30)),)),
        ImageRecord("c", "c.jpg", 60, 60, ()),
        ImageRecord("d", "d.jpg", None, None, (Annotation("cat", (0, 0, 5, 5)),)),
    )
    s = label_stats(Dataset(images=recs, classes=("cat", "dog")))
    assert (s.images, s.objects, s.empty_images, s.no_size) == (4, 5, 1, 1)
    assert s.class_objects == {"cat": 3, "dog": 2} and s.class_images == {"cat": 2, "dog": 2}
    assert s.coco_sizes == {"small": 3, "medium": 1, "large": 1}  # 100, 200, 25 < 32² <= 1600 < 96² <= 20000
    assert s.objects_per_image_counts == {0: 1, 1: 2, 3: 1}
    assert s.boxes_abs["width"]["max"] == 200 and s.boxes_rel["width"]["max"] == 1.0
    assert s.boxes_rel["area"]["max"] == 1.0 and len(s.arrays["rel_area"]) == 4  # the size-less image is left out
    assert s.boxes_abs["aspect"]["min"] == 0.5 and s.flags["difficult"] == 1
    assert s.image_sizes["most_common"][0] == {"width": 200, "height": 100, "images": 2}


# --------------------------------------------------------------------------------------------------- CLI

def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_describe_gives_the_percentiles_mean_and_nan_when_empty():
    from datatools.ops.stats import describe

    d = describe(np.array([1, 2, 3, 10]))
    assert (d["min"], d["p25"], d["median"], d["p75"], d["max"], d["mean"]) == (1, 1.75, 2.5, 4.75, 10, 4)
    assert all(math.isnan(x) for x in describe(np.array([])).values())


def test_cli_sample_data_json_matches_reference():
    r = run("stats", SAMPLE, "--json", "-j", "2")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    paths = sorted((SAMPLE / "JPEGImages").glob("*.jpg"))
    mean, std = reference(paths)
    assert np.abs(np.array(d["pixels"]["mean"]) - mean).max() < 1e-9
    assert np.abs(np.array(d["pixels"]["std"]) - std).max() < 1e-9
    assert d["labels"]["images"] == 200 and d["labels"]["objects"] == sum(d["labels"]["class_objects"].values())
    assert d["pixels"]["normalize"].startswith("transforms.v2.Normalize(mean=[")


def test_cli_table_prints_normalize_on_one_line():
    r = run("stats", SAMPLE, "--sample", "20")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "Normalize(" in ln)
    assert line.strip().endswith("])") and "ESTIMATE" in r.output


def test_cli_labels_only_reads_no_pixels(monkeypatch):
    import PIL.Image

    def boom(*a, **k):
        raise AssertionError("an image was opened")

    monkeypatch.setattr(PIL.Image, "open", boom)
    r = run("stats", SAMPLE, "--labels-only", "--json", "-j", "1")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["pixels"] is None and d["labels"]["objects"] == 591


def test_cli_reports_corrupt_image_and_writes_plots(tmp_path):
    items = {f"im{i}": voc_xml(f"im{i}.jpg", (40, 30), [{"name": "cat", "box": (2, 2, 20, 20)}]) for i in range(4)}
    root = make_voc_root(tmp_path / "voc", items, images={f"im{i}.jpg": (40, 30) for i in range(4)})
    data = (root / "JPEGImages/im3.jpg").read_bytes()
    (root / "JPEGImages/im3.jpg").write_bytes(data[:200])
    plots = tmp_path / "plots"
    r = run("stats", root, "--plots", plots)
    assert r.exit_code == 0, r.output
    assert "im3.jpg" in r.output and "exact over 3 images" in r.output
    from PIL import Image

    names = sorted(p.name for p in plots.glob("*.png"))
    assert names == sorted(["classes.png", "objects_per_image.png", "box_sizes.png", "box_shapes.png",
                            "image_sizes.png", "pixel_histogram.png"])
    for p in plots.glob("*.png"):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200


def test_cli_other_formats_and_bad_resize(tmp_path):
    assert run("voc2coco", SAMPLE, tmp_path / "c.json").exit_code == 0
    r = run("stats", "-f", "coco", tmp_path / "c.json", "--images", SAMPLE / "JPEGImages", "--json", "--resize", "64")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["pixels"]["images"] == 200 and d["pixels"]["resize"] == 64
    assert CliRunner().invoke(cli, ["stats", str(SAMPLE), "--resize", "abc"]).exit_code == 2


@pytest.mark.realworld
def test_raccoon_grayscale_images(realworld):
    src = realworld / "raccoon"
    r = run("stats", src / "annotations", "--images", src / "images", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["pixels"]["modes"].get("L", 0) >= 1 and not d["pixels"]["failed"]


def test_cli_no_readable_image_is_an_error_not_nan(tmp_path):
    """With every image unreadable there is no mean or std: exit 1, the reasons listed, no NaN Normalize line (and
    the JSON says null), while the label statistics are still given."""
    root = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (2, 2, 20, 20)}])},
                         images={"a.jpg": (40, 30)})
    (root / "JPEGImages/a.jpg").write_bytes(b"not an image")
    r = run("stats", root)
    assert r.exit_code == 1
    assert "a.jpg" in r.output and "none of the 1 image could be read" in r.output
    assert "Normalize" not in r.output and "nan" not in r.output.lower()
    r = run("stats", root, "--json")
    assert r.exit_code == 1
    d = json.loads(r.output[:r.output.rindex("}") + 1])
    assert d["pixels"]["normalize"] is None and d["pixels"]["mean"] == [None] * 3 and d["labels"]["objects"] == 1


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "0x10", "10x"])
def test_cli_bad_resize_is_one_clear_message(bad):
    r = CliRunner().invoke(cli, ["stats", str(SAMPLE), "--resize", bad])
    assert r.exit_code == 2 and r.output.count("--resize") == 1, r.output


def test_exif_orientation_leaves_the_statistics_alone_but_not_an_exact_resize(tmp_path):
    """Orientation only permutes pixels, so without a resize it changes nothing; a resize (W x H or the shorter
    side) sees the image the way training does, upright (the documented rule)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8), "RGB")
    rotated = tmp_path / "rotated.png"  # stored 40 wide, 20 high; EXIF 6: shown rotated 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels.save(rotated, exif=exif.tobytes())
    upright = tmp_path / "upright.png"
    pixels.transpose(Image.Transpose.ROTATE_270).save(upright)
    plain = tmp_path / "plain.png"
    pixels.save(plain)
    assert pixel_stats([str(rotated)], workers=1).mean == pixel_stats([str(plain)], workers=1).mean
    assert pixel_stats([str(rotated)], workers=1).std == pixel_stats([str(upright)], workers=1).std
    as_trained = pixel_stats([str(rotated)], resize=(10, 30), workers=1)
    assert np.array_equal(as_trained.histogram, pixel_stats([str(upright)], resize=(10, 30), workers=1).histogram)
    assert not np.array_equal(as_trained.histogram, pixel_stats([str(plain)], resize=(10, 30), workers=1).histogram)
    # a shorter-side resize too: the output is the same shape turned, but the two passes of PIL's resize round
    # between them, so the stored image's histogram differs from the upright one's
    for short in (7, 13):
        assert np.array_equal(pixel_stats([str(rotated)], resize=short, workers=1).histogram,
                              pixel_stats([str(upright)], resize=short, workers=1).histogram), short


def test_large_image_is_counted_exactly(tmp_path):
    """An image over 16 MB (Pillow keeps it in several memory blocks) is counted pixel for pixel."""
    from PIL import Image

    from datatools.ops.stats import image_histogram

    path = tmp_path / "big.png"
    arr = np.random.default_rng(1).integers(0, 256, (1500, 3000, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, compress_level=0)
    hist, mode, error = image_histogram(str(path))
    assert not error and mode == "RGB"
    for ch in range(3):
        assert np.array_equal(hist[ch], np.bincount(arr[..., ch].ravel(), minlength=256))


def test_pil_warnings_are_reported_once_as_findings(tmp_path):
    """A palette PNG with byte transparency makes PIL warn; the warning is one image-warning finding (how every
    command reports problems), not also a list under pixels; the table says the same once."""
    from PIL import Image

    root = make_voc_root(tmp_path / "voc", {"p": voc_xml("p.png", (8, 8), [{"name": "a", "box": (1, 1, 5, 5)}])})
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    (root / "JPEGImages").mkdir()
    im.save(root / "JPEGImages/p.png", transparency=bytes([0, 128, 255]))
    r = run("stats", root, "-j", "1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert [(f["code"], Path(f["path"]).name) for f in d["findings"]] == [("image-warning", "p.png")]
    assert d["pixels"]["images"] == 1 and "warnings" not in d["pixels"]
    assert r.output.count("PIL warned") == 1
    r = run("stats", root, "-j", "1")
    assert r.exit_code == 0 and r.output.count("PIL warned") == 1, r.output
    assert "1 warning from PIL (images counted):" in r.output


def test_stats_count_the_boxes_a_conversion_keeps(tmp_path):
    """An inverted box was counted as a zero-width one and a box outside the image as a small one, with no finding,
    while check, convert and the training datasets drop both: stats and report describe what those keep."""
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": k, "image_id": 1, "category_id": 1, "bbox": b} for k, b in enumerate(
                ([10, 10, 20, 20], [60, 60, -20, 10], [300, 300, 10, 10], [90, 0, 20, 10]), 1)],
            "categories": [{"id": 1, "name": "c"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    r = run("stats", tmp_path / "a.json", "--labels-only", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["labels"]["objects"] == 2 and d["labels"]["boxes_absolute"]["width"]["min"] == 10.0  # the clipped one
    assert d["read_errors"] == 2  # the inverted box and the one outside the image
    r = run("report", tmp_path / "a.json", tmp_path / "r.html", "--no-pixels", "--no-dupes", "--json")
    assert r.exit_code == 0, r.output
    assert (json.loads(r.output)["objects"], json.loads(r.output)["objects_read"]) == (2, 4)


def test_report_classes_on_yolo_counts_what_it_counts_on_voc(tmp_path):
    """report --classes cat on a YOLO dataset counted only cats (its reader holds the list as its classes), the same
    data as VOC every class."""
    from PIL import Image

    root = tmp_path / "yo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for n in "ab":
        Image.new("RGB", (100, 80)).save(root / "images" / "train" / f"{n}.jpg")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
    (root / "labels" / "train" / "b.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nnames: {0: cat, 1: dog}\n")
    assert run("convert", root, tmp_path / "voc", "--to", "voc").exit_code == 0
    for src in (root, tmp_path / "voc"):
        r = run("report", src, tmp_path / f"{src.name}.html", "--classes", "cat", "--no-pixels", "--no-dupes",
                "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["class_objects"] == {"cat": 1, "dog": 2}, src


def test_the_class_plot_of_a_thousand_classes_stays_a_picture(tmp_path):
    """LVIS' 1,203 classes drew a classes.png 42,305 px wide: the bars are the classes with most objects, and the
    title says how many there are."""
    from PIL import Image

    objects = [{"name": f"c{k:03d}", "box": (1, 1, 10 + k % 20, 10)} for k in range(200)]
    objects += [{"name": "c007", "box": (2, 2, 12, 12)}] * 5  # the one with most objects
    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (64, 48), objects)})
    res = CliRunner().invoke(cli, ["stats", str(voc), "--labels-only", "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "plots" / "classes.png") as im:
        assert im.width < 3000, im.size


def test_a_thousand_classes_print_a_hundred_rows_and_say_so(tmp_path):
    """LVIS' classes printed a row each (89 KB of table for a split); --json keeps them all."""
    objects = [{"name": f"c{k:03d}", "box": (1, 1, 10, 10)} for k in range(150)]
    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (64, 48), objects)})
    res = CliRunner().invoke(cli, ["stats", str(voc), "--labels-only"])
    assert res.exit_code == 0, res.output
    assert "c099" in res.output and "c100" not in res.output and "50 more classes (all with --json)" in res.output
    res = CliRunner().invoke(cli, ["stats", str(voc), "--labels-only", "--json"])
    assert len(json.loads(res.output)["labels"]["class_objects"]) == 150
