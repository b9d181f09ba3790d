"""Image files to the uint8 ``(3, H, W)`` tensors the datasets return: RGB, turned as EXIF says the image is
displayed (the frame the boxes are in), within PIL's decompression-bomb limit."""
from __future__ import annotations

import re
import warnings

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file

from datatools.core.errors import DatatoolsError
from datatools.core.fs import is_url, read_small_file, require_regular_file

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec and warns on EVERY decode call. The decoders
# still work and are what this package measures and uses: decode() silences only that message, only around its own
# call (importing this package leaves the process's warning filters as they were).
_CODEC_DEPRECATION = "The image decoding and encoding capabilities of TorchVision are deprecated"


class ImageDecodeError(DatatoolsError, RuntimeError):
    """An image the datasets cannot read or decode, named with the reason (a ``RuntimeError``, as torchvision's
    decoders raise). Raised in a DataLoader worker, torch raises it again in the main process with the worker's
    traceback in its message: ``str()`` keeps the error's own line, so the CLI prints one line."""

    def __str__(self) -> str:
        text = super().__str__()
        last = text.rstrip().rsplit("\n", 1)[-1]
        if "Traceback" in text and last.startswith(f"{__name__}.ImageDecodeError: "):
            return last.split(": ", 1)[1]
        return text


def decode(path: str) -> tv_tensors.Image:
    """Decode an image file to a uint8 ``(3, H, W)`` RGB image with its EXIF orientation applied; a file that cannot
    be read or decoded raises :class:`ImageDecodeError` (a ``RuntimeError``) naming it.

    JPEG and PNG go through ``read_file`` + ``decode_image`` (libjpeg-turbo / libpng), faster than PIL followed by a
    tensor conversion. Their orientation is the one PIL reads from the header, as every command reads it:
    torchvision's own looks at the first APP1 segment only (an XMP block before the EXIF one hid it) and misses a
    PNG's eXIf chunk after the pixels, which left those pixels in another frame than their boxes. That header read
    also holds the image to PIL's decompression-bomb limit, as the commands are. Every other format the readers list
    (WebP, BMP, TIFF, GIF's first frame) goes through PIL. Either way the pixels are those of
    :func:`~datatools.core.images.to_rgb`: 3 channels, 16-bit images their top 8 bits (a uint16 tensor broke the
    photometric ops, the 0-1 conversion and collate).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CODEC_DEPRECATION, category=DeprecationWarning)
            if is_url(path):  # a dataset read from a URL (s3://, memory://): the bytes through fsspec
                data = torch.frombuffer(bytearray(read_small_file(path)), dtype=torch.uint8)
            else:
                require_regular_file(path)  # a FIFO would block read_file forever
                data = read_file(path)
            image = None
            if data[:4].numpy().tobytes().startswith((b"\xff\xd8", b"\x89PNG")):
                image = upright(decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=False),
                                _orientation(data, path))
        if image is None:
            image = _decode_with_pil(data, path)
        elif image.dtype != torch.uint8:  # a 16-bit PNG: scaling to uint8 keeps the top 8 bits
            from torchvision.transforms.v2.functional import to_dtype

            image = to_dtype(image, torch.uint8, scale=True)
    except Exception as e:  # noqa: BLE001 - the codecs and PIL's plugins raise many kinds for a bad file
        # torchvision's codecs start with where in their C++ the check is ("decode_jpeg, /__w/.../decode_jpeg.cpp:171,")
        why = re.sub(r"^\w+, \S+\.cpp:\d+, ", "", str(e))
        raise ImageDecodeError(f"{path}: cannot decode the image: {why}") from e
    return image.as_subclass(tv_tensors.Image)


def _orientation(data: torch.Tensor, path: str) -> int:
    """The EXIF orientation PIL reads from the header of the bytes ``read_file`` read (PIL's open refuses an image
    past its decompression-bomb limit, as every command opens one)."""
    from datatools.core.images import exif_orientation, opened_image

    raw = data.numpy().tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a corrupt EXIF block is orientation 1, said once by check, not per epoch
        with opened_image(path, raw) as im:
            # PIL decodes a whole PNG to look for an eXIf chunk after the pixels: only where there is one
            return exif_orientation(im, load=im.format != "PNG" or b"eXIf" in raw)


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """A ``(C, H, W)`` image turned as an image of EXIF ``orientation`` is displayed (the operations of
    :func:`datatools.core.images.upright`, on a tensor)."""
    if orientation in (5, 6, 7, 8):
        image = image.transpose(-1, -2)
    flips = {2: (-1,), 3: (-2, -1), 4: (-2,), 6: (-1,), 7: (-2, -1), 8: (-2,)}.get(orientation)
    return image.flip(flips).contiguous() if flips else image


def _decode_with_pil(data: torch.Tensor, path: str) -> torch.Tensor:
    """The bytes ``read_file`` already read, decoded by PIL (not read again by path)."""
    from datatools.core.images import exif_orientation, opened_image, to_rgb
    from datatools.core.images import upright as turned

    with opened_image(path, data.numpy().tobytes()) as im:
        rgb = turned(to_rgb(im), exif_orientation(im))
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()
