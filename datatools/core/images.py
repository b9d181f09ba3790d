"""Image headers (size, EXIF orientation, mode) read without decoding pixels, and image listings.

A local path or an fsspec URL, the same rules: files are reached through :mod:`datatools.core.fs`.
"""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass

from datatools.core import fs
from datatools.core.paths import IMAGE_EXTENSIONS

# PIL modes with more than 8 bits a channel (16-bit PNG/TIFF, 32-bit integer or float), which convert("RGB") clips
# to 255: white where the values are above 255.
DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an image header says, read without decoding pixels. ``width``/``height`` are as displayed (EXIF applied);
    ``raw_width``/``raw_height`` as stored."""

    width: int
    height: int
    raw_width: int
    raw_height: int
    orientation: int
    mode: str
    error: str = ""

    @property
    def depth(self) -> int | None:
        """Channels, as VOC's ``<depth>`` says them (None for a mode without a usual count)."""
        return {"L": 1, "P": 3, "RGB": 3, "RGBA": 4, "I;16": 1, "I": 1, "LA": 2, "CMYK": 4}.get(self.mode)

    def __reduce__(self):
        # Headers cross from worker processes by the thousand: a tuple of fields pickles about 20 times faster than
        # the default state of a frozen slotted dataclass (as core.model's records do).
        return (ImageHeader, (self.width, self.height, self.raw_width, self.raw_height, self.orientation, self.mode,
                              self.error))


def exif_orientation(im, *, load: bool = True) -> int:
    """The EXIF orientation (1-8) an open PIL image still needs to be displayed; 1 when absent, when the EXIF block is
    broken (a broken EXIF block is not a broken image), and for a TIFF, which Pillow turns itself (its size is the
    turned one from the start, and its pixels are turned as they load: turning it again swapped its size twice).
    Reading it touches the header only, but for a PNG whose header holds none, which Pillow decodes whole to look
    for an eXIf chunk after the pixels; ``load=False`` reads only what the header holds (EXIF, XMP, a raw profile)."""
    from PIL import Image

    if getattr(im, "format", None) == "TIFF":
        return 1
    try:
        return int((im.getexif() if load else Image.Image.getexif(im)).get(0x0112, 1) or 1)
    except Exception:
        return 1


def upright(im, orientation: int):
    """``im`` turned as an image of EXIF ``orientation`` is displayed: the operations of ``ImageOps.exif_transpose``,
    for an image already converted or reduced (which has lost its EXIF block; read it first with
    :func:`exif_orientation`)."""
    from PIL import Image

    t = Image.Transpose
    op = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270,
          7: t.TRANSVERSE, 8: t.ROTATE_90}.get(orientation)
    return im if op is None else im.transpose(op)


FLOAT_IMAGES = "32-bit float images (mode F) are not supported"


def to_rgb(im):
    """An open PIL image as 8-bit RGB, by the rule the pixel statistics count and the datasets train on: grayscale
    replicated, palette and alpha converted, 16-bit images their top 8 bits (PIL's own conversion clips them at
    255); 32-bit float images (mode F) are refused (``ValueError``)."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        im.load()
        return im
    if mode == "F":
        raise ValueError(FLOAT_IMAGES)
    if mode in DEEP_MODES:  # the top 8 bits, as 8-bit pixels
        import numpy as np

        arr8 = (np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    return im.convert("RGB")


def pil_open(fp, *args, **kwargs):
    """``PIL.Image.open`` (imported on first use, so commands that never open an image never import PIL)."""
    from PIL import Image

    return Image.open(fp, *args, **kwargs)


@contextmanager
def opened_image(path: str, data: bytes | None = None):
    """``PIL.Image.open`` of the image at ``path``, a local path or an fsspec URL (read through
    :mod:`datatools.core.fs`), or of ``data`` when its bytes are already read (a file hashed first, a decoder that
    tried first): how every reader of pixels and headers opens an image. Errors are PIL's and the file system's
    (word them with :func:`image_error`); an image PIL cannot identify is named by ``path``, not by the file object
    it was handed ("<LocalFileOpener object at 0x7f...>"), so messages name the file and are the same in every run."""
    from PIL import UnidentifiedImageError

    if data is None and not fs.is_url(path):
        fs.require_regular_file(path)  # a FIFO named x.jpg would block the open forever
        with pil_open(path) as im:  # PIL opens the path itself: its messages name the file
            yield im
        return
    with (io.BytesIO(data) if data is not None else fs.open_binary(path)) as f:
        try:
            im = pil_open(f)
        except UnidentifiedImageError as e:
            raise UnidentifiedImageError(str(e).replace(repr(f), repr(path))) from e
        with im:
            yield im


def image_error(e: BaseException) -> str:
    """Why an image could not be opened or decoded, as every reader of images reports it: ``missing``,
    ``decompression bomb: ...`` (larger than PIL's limit) or ``unreadable image: ...``. PIL and its plugins (or a
    library that patches ``Image.open``, as ultralytics does) may raise anything for a bad file: an unexpected kind
    is named."""
    from PIL import Image

    if isinstance(e, FileNotFoundError):
        return "missing"
    if isinstance(e, Image.DecompressionBombError):
        return f"decompression bomb: {e}"
    if isinstance(e, (OSError, SyntaxError, ValueError)):  # UnidentifiedImageError is an OSError
        return f"unreadable image: {e}"
    return f"unreadable image: {type(e).__name__}: {e}"


def read_image_header(path: str | os.PathLike) -> ImageHeader:
    """Image size from the header only (PIL opens lazily), with EXIF orientations 5-8 swapping width and height.

    ``path`` is a local path or an fsspec URL. Never raises for a bad image: the problem is returned in ``error`` so
    callers can count it.
    """
    try:
        with opened_image(os.fspath(path)) as im:
            w, h = im.size
            orientation = exif_orientation(im)
            mode = im.mode
    except Exception as e:  # noqa: BLE001 - see image_error
        return ImageHeader(0, 0, 0, 0, 1, "", image_error(e))
    if orientation in (5, 6, 7, 8):
        return ImageHeader(h, w, w, h, orientation, mode)
    return ImageHeader(w, h, w, h, orientation, mode)


def pixels_error(path: str) -> str | None:
    """Why no command can use the pixels of the image at ``path``: its header (missing, unreadable, past PIL's
    decompression-bomb limit), a float image (mode F), or pixels that do not decode (:func:`decode_error`); None when
    they can. The test ``train`` leaves images out by; ``check`` reports the same three."""
    return header_error(read_image_header(path)) or decode_error(path)


def header_error(h: ImageHeader) -> str:
    """Why the image of header ``h`` is of no use, as far as its header tells: ``h.error``, or a float image (mode
    F: thermal, elevation), which decodes but which stats, visualize and the datasets refuse; "" when none."""
    return h.error or (f"unreadable image: {FLOAT_IMAGES}" if h.mode == "F" else "")


def decode_error(path: str) -> str | None:
    """Why the pixels of the image at ``path`` (local or a URL) cannot be decoded, worded as :func:`image_error`, or
    None. A header reads well from a file cut short (an interrupted download): a JPEG that ends with its end-of-image
    marker, or a PNG with its ``IEND`` chunk, is taken as whole, as ultralytics takes it; any other file (cut short,
    data after the image as a motion photo's video, another format) is decoded to tell."""
    try:
        with (fs.open_binary(path) if fs.is_url(path) else open(path, "rb")) as f:
            head = f.read(8)
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8))
            tail = f.read()
        if (head.startswith(b"\xff\xd8") and tail.endswith(b"\xff\xd9")
                or head.startswith(b"\x89PNG") and tail.endswith(b"IEND\xaeB`\x82")):
            return None
        with opened_image(path) as im:
            im.load()
    except Exception as e:  # noqa: BLE001 - see image_error
        return image_error(e)
    return None


def list_images(folder: str | os.PathLike, *, recursive: bool = True, hidden: bool = False) -> dict[str, str]:
    """Map image path (relative, posix, with extension) -> full path (a URL under a URL ``folder``) for every image
    under ``folder``, sorted; empty when there is no such folder. A folder listed as the images (YOLO's, predict's)
    holds no hidden ones, as for ultralytics: Jupyter's ``.ipynb_checkpoints/a-checkpoint.jpg`` (a copy of a
    labelled picture) and macOS' ``._a.jpg`` (not a picture) were read as images; ``hidden`` lists them too, for
    looking up a name an annotation gives (``.a.jpg``)."""
    folder = os.fspath(folder)
    files = fs.files_for(folder)  # find() is empty for a folder that is not there
    prefix = fs.folder_prefix(folder)
    return {rel: prefix + rel for rel in files.find(folder, suffixes=IMAGE_EXTENSIONS, recursive=recursive,
                                                    hidden=hidden)}
