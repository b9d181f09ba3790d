"""Images as people have them: EXIF blocks where torchvision does not look for them, float TIFFs, orientations
that are no orientation, images past PIL's pixel limit, small objects on aerial-sized pictures."""
from __future__ import annotations

import io
import json
import struct
import warnings
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datatools.cli import cli
from datatools.datasets import decode
from datatools.viz.draw import DrawItem, draw_items
from tests.conftest import make_voc_root, voc_xml

W, H = 40, 30


def displayed() -> np.ndarray:
    """A picture 40 wide, 30 high, as it is displayed: a ramp, so every turn of it is another picture."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 6, y * 8, np.full_like(x, 90)], -1).astype(np.uint8)


def exif(orientation: int) -> bytes:
    """A TIFF block (big-endian) holding one Orientation entry."""
    return b"MM" + struct.pack(">HI", 42, 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1,
                                                                                    orientation, 0) + b"\0" * 4


def jpeg(segments: list[tuple[int, bytes]], picture: np.ndarray) -> bytes:
    """A JPEG of ``picture`` with APP segments inserted right after its start marker."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "JPEG", quality=100, subsampling=0)
    data = buf.getvalue()
    inserted = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return data[:2] + inserted + data[2:]


def stored_for_orientation_6() -> np.ndarray:
    """The pixels a camera stores for ``displayed()`` when it writes orientation 6 (turn 90 clockwise to show)."""
    return np.ascontiguousarray(np.rot90(displayed(), 1))


def test_the_orientation_is_read_where_every_command_reads_it(tmp_path):
    """An XMP APP1 segment before the EXIF one (torchvision reads the first APP1 only) and a PNG whose eXIf chunk
    follows its pixels (torchvision misses it): the datasets returned the stored pixels, turned against their boxes,
    while check, stats and visualize saw the displayed picture."""
    xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    (tmp_path / "xmp.jpg").write_bytes(jpeg([(0xE1, xmp), (0xE1, b"Exif\0\0" + exif(6))], stored_for_orientation_6()))
    buf = io.BytesIO()
    Image.fromarray(stored_for_orientation_6()).save(buf, "PNG")
    png = buf.getvalue()
    chunk = struct.pack(">I", len(exif(6))) + b"eXIf" + exif(6)
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + exif(6)) & 0xFFFFFFFF)
    end = png.rfind(b"IEND") - 4
    (tmp_path / "after.png").write_bytes(png[:end] + chunk + png[end:])
    for name, tolerance in (("xmp.jpg", 12), ("after.png", 0)):
        image = decode(str(tmp_path / name))
        assert tuple(image.shape) == (3, H, W), name
        diff = np.abs(image.permute(1, 2, 0).numpy().astype(int) - displayed().astype(int)).max()
        assert diff <= tolerance, (name, diff)


def test_a_png_turned_by_xmp_or_a_raw_profile_is_turned(tmp_path):
    """A PNG without an eXIf chunk may hold its orientation in XMP or in ImageMagick's raw EXIF profile, as PIL reads
    it for every command: the datasets must turn it too (looking only for eXIf left it unturned)."""
    from PIL import PngImagePlugin

    stored = Image.fromarray(stored_for_orientation_6())
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
                 '1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
                 'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    stored.save(tmp_path / "xmp.png", pnginfo=xmp)
    block = Image.Exif()
    block[0x0112] = 6
    profile = PngImagePlugin.PngInfo()
    profile.add_text("Raw profile type exif", f"\nexif\n{len(block.tobytes()):8d}\n{block.tobytes().hex()}\n")
    stored.save(tmp_path / "profile.png", pnginfo=profile)
    for name in ("xmp.png", "profile.png"):
        assert np.array_equal(decode(str(tmp_path / name)).permute(1, 2, 0).numpy(), displayed()), name


def test_an_image_past_pils_pixel_limit_is_refused_by_the_datasets_too(tmp_path, monkeypatch):
    """Every command refuses an image PIL calls a decompression bomb; the datasets decoded any size, so predict on a
    stranger's folder could be made to take any amount of memory."""
    from datatools.datasets.decode import ImageDecodeError

    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg([], displayed()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,200 pixels: past twice the limit, as PIL refuses
    with pytest.raises(ImageDecodeError, match="a.jpg: cannot decode the image: .*decompression bomb|exceeds limit"):
        decode(str(path))


def test_check_names_what_the_other_commands_refuse(tmp_path):
    """A float32 TIFF (thermal, elevation) passed check with 0 errors, then stopped train; an orientation of 9 (no
    orientation: every command shows the image upright) was reported as a rotated image."""
    voc = make_voc_root(tmp_path / "voc", {name.split(".")[0]: voc_xml(name, (W, H), [
        {"name": "cat", "box": (1, 1, 10, 10)}]) for name in ("f.tif", "nine.jpg")})
    (voc / "JPEGImages").mkdir()
    Image.fromarray(displayed()[..., 0].astype(np.float32), mode="F").save(voc / "JPEGImages" / "f.tif")
    (voc / "JPEGImages" / "nine.jpg").write_bytes(jpeg([(0xE1, b"Exif\0\0" + exif(9))], displayed()))
    res = CliRunner().invoke(cli, ["check", str(voc), "--json"])
    found = {(f["image_id"], f["code"], f["severity"]) for f in json.loads(res.stdout)["findings"]}
    assert found == {("f", "image-unreadable", "error")}, found


def test_commands_print_none_of_pils_warnings(tmp_path):
    """A corrupt EXIF block made every command print PIL's UserWarning with its source line (report twice); it reads
    as orientation 1, the image is fine. The command filters it (the library leaves the warning filters alone)."""
    import subprocess
    import sys

    from datatools.core.images import read_image_header

    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (W, H), [{"name": "cat", "box": (1, 1, 10, 10)}])})
    (voc / "JPEGImages").mkdir()
    path = voc / "JPEGImages" / "a.jpg"
    path.write_bytes(jpeg([(0xE1, b"Exif\0\0II*\0" + struct.pack("<I", 99999) + b"\0" * 20)], displayed()))
    header = read_image_header(path)
    assert (header.width, header.height, header.orientation, header.error) == (W, H, 1, "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(decode(str(path)).shape) == (3, H, W)  # and no warning per image per epoch
    proc = subprocess.run([sys.executable, "-m", "datatools", "check", str(voc)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr


def test_a_small_object_on_an_aerial_picture_stays_visible():
    """The outline of an 8000 x 6000 picture is 28 px wide, drawn inside the box: a 20 px car became a solid block
    of its class colour, none of its pixels left to see."""
    image = Image.new("RGB", (8000, 6000), (255, 255, 255))
    draw_items(image, [DrawItem((100, 100, 120, 120), (0, 0, 255))])
    car = np.asarray(image.crop((100, 100, 120, 120)))
    assert (car == 255).all(axis=-1).mean() > 0.4  # the inside of the box is still the picture


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_that_does_not_decode_is_one_line_through_a_loader(tmp_path, workers):
    """With DataLoader workers torch raises the worker's exception again with its traceback inside the message:
    the error keeps one line, naming the file, without torchvision's C++ source."""
    from datatools.datasets import VOCDetection, make_loader
    from datatools.datasets.decode import ImageDecodeError

    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (W, H), [{"name": "cat", "box": (1, 1, 10, 10)}])})
    (voc / "JPEGImages").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    (voc / "JPEGImages" / "a.jpg").write_bytes(jpeg([], noise)[:-300])  # the header whole, the pixels cut
    loader = make_loader(VOCDetection(voc), batch_size=1, num_workers=workers, persistent_workers=False)
    with pytest.raises(ImageDecodeError) as caught:
        next(iter(loader))
    text = str(caught.value)
    assert text.startswith(f"{voc / 'JPEGImages' / 'a.jpg'}: cannot decode the image: ") and "\n" not in text
    assert ".cpp" not in text
