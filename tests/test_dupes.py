"""``dupes``, ``split --dedup`` and ``check --dupes`` on sample_data with planted copies of known kinds."""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from datatools import load
from datatools.cli import cli
from datatools.core.parallel import Mapper
from datatools.ops.dupes import DEFAULT_THRESHOLD, find_duplicates
from datatools.ops.dupes_hash import close_pairs, hamming
from datatools.ops.split import plan_split
from tests.conftest import SAMPLE

# Every 20th sample image gets one copy of each kind. "pixels" is a PNG of the JPEG's decoded pixels (the same
# pixels, other bytes); "cropped" cuts 5% of the width and of the height away, at a seeded random place.
KINDS = ("file", "pixels", "reencoded", "resized", "mirrored", "cropped")
ORIGINALS = [f"shapes_{i:04d}" for i in range(0, 200, 20)]
# A re-encoded or resized copy may also match best through the crop hash, and a cropped one through the plain hash.
EXPECTED_RELATION = {"file": {"same file"}, "pixels": {"same pixels"}, "reencoded": {"near", "cropped"},
                     "resized": {"near", "cropped"}, "mirrored": {"mirrored"}, "cropped": {"cropped", "near"}}


def _plant(root: Path) -> dict[str, tuple[str, str]]:
    """Copy sample_data to ``root`` and add the planted copies; {copy id: (original id, kind)}."""
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    planted = {}
    lists = []
    rng = random.Random(7)
    for orig in ORIGINALS:
        src = root / "JPEGImages" / f"{orig}.jpg"
        xml = (root / "Annotations" / f"{orig}.xml").read_text()
        im = Image.open(src).convert("RGB")
        w, h = im.size
        dx, dy = round(w * 0.05), round(h * 0.05)
        ox, oy = rng.randint(0, dx), rng.randint(0, dy)  # 5% of each side cut away, at a random place
        for kind in KINDS:
            cid = f"{orig}_{kind}"
            out = root / "JPEGImages" / f"{cid}.{'png' if kind == 'pixels' else 'jpg'}"
            if kind == "file":
                shutil.copyfile(src, out)
            elif kind == "pixels":
                im.save(out)
            elif kind == "reencoded":
                im.save(out, quality=60)
            elif kind == "resized":
                im.resize((w // 2, h // 2), Image.Resampling.BILINEAR).save(out, quality=90)
            elif kind == "mirrored":
                ImageOps.mirror(im).save(out, quality=90)
            else:
                im.crop((ox, oy, w - dx + ox, h - dy + oy)).save(out, quality=90)
            text = xml.replace(f"{orig}.jpg", out.name)
            if kind == "resized":  # the same objects, at half the size
                text = re.sub(r"<(xmin|ymin|xmax|ymax|width|height)>(\d+)</",
                              lambda m: f"<{m.group(1)}>{max(1, int(m.group(2)) // 2)}</", text)
            if kind == "file" and orig == ORIGINALS[0]:  # the same image, labelled differently: label noise
                text = re.sub(r"<xmin>(\d+)</xmin>", lambda m: f"<xmin>{int(m.group(1)) + 3}</xmin>", text, count=1)
            (root / "Annotations" / f"{cid}.xml").write_text(text)
            planted[cid] = (orig, kind)
            lists.append(cid)
    with open(root / "ImageSets" / "Main" / "train.txt", "a") as f:
        f.write("".join(c + "\n" for c in lists))
    return planted


@pytest.fixture(scope="module")
def planted_root(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str]]]:
    root = tmp_path_factory.mktemp("dupes") / "voc"
    return root, _plant(root)


@pytest.fixture(scope="module")
def planted_report(planted_root):
    root, _ = planted_root
    ds = load("voc", str(root), sets="all")
    return find_duplicates(ds, mapper=Mapper(workers=1))


def test_every_planted_copy_is_found_with_its_relation(planted_root, planted_report):
    _, planted = planted_root
    cluster_of = {m.image_id: c for c in planted_report.clusters for m in c.members}
    for cid, (orig, kind) in planted.items():
        c = cluster_of.get(cid)
        assert c is not None and orig in c.image_ids, f"{kind} copy {cid} not found with {orig}"
        first = c.members[0]
        assert first.image_id == orig  # the original sorts first, so each copy is described against it
        member = next(m for m in c.members if m.image_id == cid)
        assert member.relation in EXPECTED_RELATION[kind], (cid, member)
        assert member.distance <= DEFAULT_THRESHOLD
        if member.relation in ("same file", "same pixels"):
            assert member.distance == 0


def test_few_false_pairs_on_sample_data(planted_root, planted_report):
    """Measured: of the 200 distinct sample images, one pair comes out as near copies at the default threshold:
    shapes_0134 and shapes_0169, the same blue-grey ground and a yellow star in about the same place (pHash 4 bits
    apart through a corner crop, dHash 14). Without the dHash check and the colour gate, 24 images in 15 clusters
    came out at 10 bits with one crop view, and more with five."""
    _, planted = planted_root
    groups = {orig for orig, _ in planted.values()}
    false = [c.image_ids for c in planted_report.clusters if not (set(c.image_ids) & groups)]
    assert false == [("shapes_0134", "shapes_0169")]
    # No planted cluster swallowed an unrelated sample image either.
    for c in planted_report.clusters:
        if set(c.image_ids) & groups:
            assert len({planted.get(i, (i, ""))[0] for i in c.image_ids}) == 1, c.image_ids
    assert planted_report.hashed == 200 + len(planted)


def test_labels_that_differ_between_copies_are_label_noise(planted_report):
    bad = [f for f in planted_report.as_findings() if f.code == "duplicate-labels-differ"]
    assert [f.image_id for f in bad if f.severity.value == "warning"] == [f"{ORIGINALS[0]}_file"]
    agree = {m.image_id: m.labels_agree for c in planted_report.clusters for m in c.members}
    assert agree[f"{ORIGINALS[1]}_file"] and agree[f"{ORIGINALS[1]}_pixels"]


def test_threshold_zero_keeps_exact_copies_only(planted_root):
    root, planted = planted_root
    ds = load("voc", str(root), sets="all")
    rep = find_duplicates(ds, threshold=0, mapper=Mapper(workers=1))
    found = {m.image_id for c in rep.clusters for m in c.members[1:]}
    exact = {cid for cid, (_, kind) in planted.items() if kind in ("file", "pixels")}
    assert found == exact  # the same file or pixels only (near copies at distance 0 were kept too)
    assert {m.relation for c in rep.clusters for m in c.members[1:]} == {"same file", "same pixels"}


def test_close_pairs_finds_every_planted_pair_within_the_threshold():
    rng = np.random.default_rng(5)
    bits = np.argsort(rng.random((4000, 64)), axis=1)[:, :32]  # real hashes have 32 of 64 bits set
    base = np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64), axis=1)
    flips = [rng.choice(64, size=d, replace=False) for d in (0, 2, 5, 8, 10, 11, 14)]
    copies = np.array([base[k] ^ np.bitwise_or.reduce(np.uint64(1) << f.astype(np.uint64), initial=np.uint64(0))
                       for k, f in enumerate(flips)], dtype=np.uint64)
    hashes = np.concatenate([base, copies])
    i, j, d = close_pairs(hashes, 10)
    found = set(zip(i.tolist(), j.tolist()))
    for k, f in enumerate(flips):
        assert ((k, 4000 + k) in found) == (len(f) <= 10), len(f)
    assert (d <= 10).all() and (i < j).all()
    assert (hamming(hashes[i], hashes[j]) == d).all()
    # Queries (say, the mirrored hashes: query i is image i's) against the set: query k + 1 finds base k; a query
    # never pairs with its own image.
    qi, hj, _ = close_pairs(base, 10, queries=np.concatenate([base[:1], copies]))
    assert {(a, b) for a, b in zip(qi.tolist(), hj.tolist())} == {(k + 1, k) for k, f in enumerate(flips)
                                                                  if len(f) <= 10}


def test_unreadable_image_is_a_finding_not_a_failure(tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.py"))
    (root / "JPEGImages" / "shapes_0005.jpg").write_bytes(b"not a jpeg")
    shutil.copyfile(root / "JPEGImages" / "shapes_0001.jpg", root / "JPEGImages" / "shapes_0002.jpg")
    r = CliRunner().invoke(cli, ["dupes", str(root), "--json", "-j", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [f["image_id"] for f in out["findings"] if f["code"] == "image-unreadable"] == ["shapes_0005"]
    (message,) = [f["message"] for f in out["findings"] if f["code"] == "image-unreadable"]
    assert "shapes_0005.jpg" in message and " at 0x" not in message  # the file, not a buffer's address
    pairs = [[m["image_id"] for m in c["members"]] for c in out["clusters"] if c["kind"] == "exact"]
    assert ["shapes_0001", "shapes_0002"] in pairs


def test_dupes_cli_table_json_and_bad_threshold(planted_root):
    root, planted = planted_root
    r = CliRunner().invoke(cli, ["dupes", str(root), "--sets", "all", "-j", "1", "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert "Duplicate clusters" in r.output and "more (use --limit" in r.output and "DIFFER" in r.output
    r = CliRunner().invoke(cli, ["dupes", str(root), "--sets", "all", "-j", "1", "--json"])
    out = json.loads(r.output)
    assert out["clusters_total"] >= len(ORIGINALS) and out["duplicate_images"] >= len(planted)
    r = CliRunner().invoke(cli, ["dupes", str(root), "--threshold", "40"])
    assert r.exit_code == 2 and "40" in r.output


@pytest.mark.parametrize("args", [["--dedup"], ["--group-by", "dupes", "--method", "hash"],
                                  ["--dedup", "--kfold", "3"]])
def test_split_dedup_keeps_every_cluster_in_one_part(planted_root, planted_report, tmp_path, args):
    root, _ = planted_root
    out = tmp_path / "split"
    r = CliRunner().invoke(cli, ["split", str(root), str(out), "--sets", "all", "-j", "1", "--json", *args])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["dedup"]["clusters"] == len(planted_report.clusters)
    part_of = {iid: name for name, ids in d["assignment"].items() for iid in ids}
    for c in planted_report.clusters:
        assert len({part_of[i] for i in c.image_ids}) == 1, c.image_ids
    if "--dedup" in args and "--kfold" not in args:
        # Written lists agree with the plan: no cluster has members in two ImageSets lists.
        lists = {s: set((out / "ImageSets" / "Main" / f"{s}.txt").read_text().split()) for s in ("train", "val")}
        for c in planted_report.clusters:
            assert sum(1 for ids in lists.values() if set(c.image_ids) & ids) == 1


def test_split_reports_clusters_that_straddled_before(planted_root, planted_report):
    root, _ = planted_root
    ds = load("voc", str(root), sets="all")
    clusters = planted_report.cluster_ids()
    plain = plan_split(ds, val=0.2, seed=0)
    cut = sum(1 for c in clusters if len({plain.part_of()[i] for i in c}) > 1)
    assert cut > 0  # 7-image clusters in an 80/20 stratified split: most are cut
    plan = plan_split(ds, val=0.2, seed=0, dedup=clusters)
    assert plan.straddled_before == cut and plan.dedup_clusters == len(clusters)
    assert all(len({plan.part_of()[i] for i in c}) == 1 for c in clusters)
    assert abs(len(plan.parts["val"]) / len(ds.images) - 0.2) < 0.05
    r = CliRunner().invoke(cli, ["split", str(root), "/nonexistent-never-written", "--sets", "all", "--dedup",
                                 "--dry-run", "-j", "1"])
    assert r.exit_code == 0 and f"without --dedup {cut} cluster" in " ".join(r.output.split())
    r = CliRunner().invoke(cli, ["split", str(root), "/x", "--dedup", "--method", "random", "--dry-run"])
    assert r.exit_code == 2 and "random" in r.output


def test_check_dupes_adds_findings(planted_root):
    root, planted = planted_root
    r = CliRunner().invoke(cli, ["check", str(root), "--sets", "all", "--dupes", "--no-headers", "-j", "1", "--json"])
    assert r.exit_code == 0, r.output
    counts = json.loads(r.output)["counts"]
    exact = sum(1 for _, kind in planted.values() if kind in ("file", "pixels"))
    assert counts["duplicate-image"] == exact
    assert counts["near-duplicate"] >= len(planted) - exact
    assert counts["duplicate-labels-differ"] >= 1
    r = CliRunner().invoke(cli, ["check", str(root), "--sets", "all", "--no-headers", "-j", "1", "--json"])
    assert "near-duplicate" not in json.loads(r.output)["counts"]


@pytest.mark.slow
def test_ray_engine_finds_the_same_clusters(planted_root, planted_report, ray_cluster):
    """The hashing runs on the one parallel map: as Ray tasks it gives the same clusters, members and distances."""
    root, _ = planted_root
    ds = load("voc", str(root), sets="all")
    on_ray = find_duplicates(ds, mapper=Mapper("ray"))
    assert on_ray.to_dict() == planted_report.to_dict()


def test_bccd_near_copies_are_found(realworld):
    """Real photos: BCCD holds two pairs of frames of one field of a blood smear (00037/00038 refocused, 00386/00391
    shifted by about a tenth of the frame), each pair annotated separately; looked at, both are copies. Nothing else
    is close."""
    ds = load("voc", str(realworld / "bccd"))
    rep = find_duplicates(ds, mapper=Mapper(workers=1))
    assert rep.hashed == 364
    assert sorted(rep.cluster_ids()) == [("BloodImage_00037", "BloodImage_00038"),
                                         ("BloodImage_00386", "BloodImage_00391")]
    relations = {c.members[1].image_id: c.members[1].relation for c in rep.clusters}
    assert relations == {"BloodImage_00038": "near", "BloodImage_00391": "cropped"}
    agree = {c.members[1].image_id: c.labels_agree for c in rep.clusters}
    assert agree == {"BloodImage_00038": False, "BloodImage_00391": True}  # same class counts in the shifted pair


def test_same_pixels_means_the_same_values_for_16_bit_and_alpha_images(tmp_path):
    """pixel_digest judges "same pixels": two 16-bit PNGs that differ only above 255 are different pictures (RGB
    conversion made both white), as are two PNGs that differ only in alpha; the same 16-bit values written twice,
    and an 8-bit PNG beside its RGB copy, are the same pixels."""
    from datatools.ops.dupes_hash import pixel_digest

    ramp = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20
    Image.fromarray(ramp).save(tmp_path / "a16.png")
    Image.fromarray(ramp).save(tmp_path / "a16_again.png", compress_level=1)
    Image.fromarray(ramp + 300).save(tmp_path / "b16.png")
    assert Image.open(tmp_path / "a16.png").mode.startswith("I")
    rgba = np.zeros((48, 64, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    rgba[:24, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "half_clear.png")
    Image.fromarray(rgba[..., :3]).convert("L").save(tmp_path / "grey.png")
    Image.open(tmp_path / "grey.png").convert("RGB").save(tmp_path / "grey_rgb.png")
    d = {p.stem: pixel_digest(str(p)) for p in tmp_path.glob("*.png")}
    assert all(d.values())
    assert d["a16"] == d["a16_again"] != d["b16"]
    assert d["opaque"] != d["half_clear"]
    assert d["grey"] == d["grey_rgb"]


def test_an_image_stored_turned_with_its_exif_orientation_hashes_as_displayed(tmp_path):
    """A JPEG stored on its side with EXIF orientation 6 (as phones write them) is the same picture as the upright
    one: its perceptual hash is taken as displayed; without the tag it is a different picture."""
    from datatools.ops.dupes_hash import hamming, signature

    src = Image.open(SAMPLE / "JPEGImages" / f"{ORIGINALS[0]}.jpg").convert("RGB")
    src.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise: stored turned counter-clockwise
    src.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "tagged.jpg", quality=95, exif=exif.tobytes())
    src.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "untagged.jpg", quality=95)
    sig = {p.stem: signature(str(p)) for p in tmp_path.glob("*.jpg")}
    bits = {k: int(hamming(np.array([s.phash], dtype=np.uint64), np.array([sig["upright"].phash], dtype=np.uint64))[0])
            for k, s in sig.items()}
    assert bits["tagged"] <= 4 < DEFAULT_THRESHOLD < bits["untagged"], bits


def test_a_grayscale_copy_hides_no_other_copy_of_its_hash(tmp_path):
    """Images of one hash were all compared with the first by id only: when that one was a grayscale copy (gated
    out by colour), the colour copies behind it were never compared, so split --dedup put them in two parts. The
    same pixels, a half-size copy and the grayscale one itself are each found now; at -t 0 only the same pixels."""
    from datatools.core.model import Dataset, ImageRecord
    from PIL import PngImagePlugin

    im = Image.open(SAMPLE / "JPEGImages" / "shapes_0010.jpg").convert("RGB")
    im.convert("L").convert("RGB").save(tmp_path / "a_gray.png")
    im.save(tmp_path / "b_photo.png")
    meta = PngImagePlugin.PngInfo()
    meta.add_text("note", "other bytes")
    im.save(tmp_path / "c_photo_meta.png", pnginfo=meta)  # the same pixels
    im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR).save(tmp_path / "d_small.jpg", quality=90)
    for k in (1, 2, 3):
        shutil.copyfile(SAMPLE / "JPEGImages" / f"shapes_{k:04d}.jpg", tmp_path / f"other_{k}.jpg")
    ds = Dataset(images=tuple(ImageRecord(image_id=p.stem, file_name=p.name, width=None, height=None,
                                          image_path=str(p)) for p in sorted(tmp_path.iterdir())),
                 classes=(), format="voc")

    def pairs(threshold):
        rep = find_duplicates(ds, threshold=threshold, mapper=Mapper(workers=1))
        return {m.image_id: m.relation for c in rep.clusters for m in c.members[1:]} | {
            c.members[0].image_id: "first" for c in rep.clusters}
    found = pairs(DEFAULT_THRESHOLD)
    assert {"b_photo", "c_photo_meta", "d_small"} <= set(found) and not any(k.startswith("other") for k in found)
    assert pairs(0) == {"b_photo": "first", "c_photo_meta": "same pixels"}  # exact copies only, as documented


def test_a_copy_stretched_to_a_square_is_found(tmp_path):
    """An export that resizes every image to a square without keeping its aspect ratio (640 x 640) makes copies of
    another shape: the square hash finds them (a shape gate tried for one false pair on sample_data lost them)."""
    from datatools.core.model import Dataset, ImageRecord

    im = Image.open(SAMPLE / "JPEGImages" / "shapes_0002.jpg").convert("RGB")
    assert im.width != im.height
    im.save(tmp_path / "a.png")
    im.resize((320, 320), Image.Resampling.BILINEAR).save(tmp_path / "b_square.jpg", quality=90)
    for k in (1, 3, 4):
        shutil.copyfile(SAMPLE / "JPEGImages" / f"shapes_{k:04d}.jpg", tmp_path / f"other_{k}.jpg")
    ds = Dataset(images=tuple(ImageRecord(image_id=p.stem, file_name=p.name, width=None, height=None,
                                          image_path=str(p)) for p in sorted(tmp_path.iterdir())),
                 classes=(), format="voc")
    rep = find_duplicates(ds, mapper=Mapper(workers=1))
    assert [c.image_ids for c in rep.clusters] == [("a", "b_square")]


def test_copies_whose_boxes_hold_a_huge_coordinate_are_compared(tmp_path):
    # labels of exact copies are compared to 0.5 px: round(1e308 * 2) raised an OverflowError (a traceback)
    from datatools.core.model import Annotation, Dataset, ImageRecord

    Image.new("RGB", (40, 30), (120, 30, 200)).save(tmp_path / "a.png")
    shutil.copy(tmp_path / "a.png", tmp_path / "b.png")
    recs = tuple(ImageRecord(k, f"{k}.png", 40, 30, (Annotation("x", (1.0, 1.0, x2, 9.0)),),
                             image_path=str(tmp_path / f"{k}.png")) for k, x2 in (("a", 1e308), ("b", 9.0)))
    report = find_duplicates(Dataset(images=recs, classes=("x",)), mapper=Mapper(workers=1))
    [cluster] = report.clusters
    assert [m.image_id for m in cluster.members] == ["a", "b"] and not cluster.labels_agree
