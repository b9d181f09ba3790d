"""Image fingerprints for ``dupes``, and the search for pairs of close fingerprints without comparing every pair.

Use :func:`signature` (through :func:`signature_chunk` on the one parallel map) for what each image contributes: a
hash of its file bytes; 64-bit perceptual hashes of small grayscale thumbnails of the image, of its mirror and of nine
crops (a pHash to find candidates, a dHash to check them); and its mean colour. :func:`pixel_digest` hashes the
decoded pixels, for the few images whose thumbnails are close enough to be exact copies in another encoding.
:func:`close_pairs` finds every pair of hashes within a Hamming distance.

The pHash (the 8x8 lowest DCT-II frequencies of a 32x32 grayscale thumbnail, as displayed, each against their
median) and the dHash that confirms it: docs/dupes.md. A horizontal mirror only flips the sign of the odd horizontal
frequencies (``C'[u, v] = (-1)^v C[u, v]``), so the mirrored image's hash comes from the same transform.

JPEG thumbnails are decoded with ``Image.draft``: libjpeg scales by 1/2, 1/4 or 1/8 inside the inverse DCT, so an
image of 500x375 is decoded at 125x94 instead of in full.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from datatools.core import fs

THUMB = 32  # the thumbnail's side, in pixels
LOW = 8  # the low-frequency block's side: LOW * LOW = 64 bits
# The crop views, as shares of the upright image (left, top, right, bottom): 5% of each side's length cut away, at a
# 3 x 3 grid of offsets (0, 2.5% and 5% on each axis), so that a copy cropped by 5% anywhere is at most 1.25% off one
# of them on each axis. With the centre and the four corners only (2.5% off), 5 of 100 copies cropped at a random
# place were no view's match (pHash up to 12 bits, dHash up to 26 apart); with the grid, all 100 were.
CROPS = tuple((x, y, x + 0.95, y + 0.95) for y in (0.0, 0.025, 0.05) for x in (0.0, 0.025, 0.05))


@dataclass(frozen=True, slots=True)
class Signature:
    """What one image contributes: ``file`` (hex digest of the bytes), ``phash``, ``phash_flip`` (the mirrored
    image's hash) and ``phash_crops`` (the hashes of the CROPS views: what a cropped copy of it would hash to); the
    same as dHashes, which check the pairs the pHashes propose; the mean colour, and ``error``
    (``""`` when the image could be read; else only ``file`` may be set)."""

    file: str = ""
    phash: int = 0
    phash_flip: int = 0
    phash_crops: tuple[int, ...] = ()
    dhash: int = 0
    dhash_flip: int = 0
    dhash_crops: tuple[int, ...] = ()
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ""


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` is the DCT of the column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(THUMB)[:LOW]  # only the rows of the frequencies kept
_FLIP_SIGN = np.tile(np.where(np.arange(LOW) % 2 == 1, -1.0, 1.0), (LOW, 1))  # (-1)^v over columns v


def _bits(low: np.ndarray) -> int:
    """Bit k (k = 8 u + v) set where coefficient (u, v) is above the block's median."""
    flat = low.ravel()
    return int(np.packbits(flat > np.median(flat), bitorder="little").view("<u8")[0])


def phash_pair(thumb: np.ndarray) -> tuple[int, int]:
    """(hash, hash of the mirrored image) of a THUMB x THUMB grayscale array."""
    low = _DCT @ np.asarray(thumb, dtype=np.float64) @ _DCT.T
    return _bits(low), _bits(low * _FLIP_SIGN)


def dhash(small: np.ndarray) -> int:
    """The 64-bit difference hash of a 8 x 9 (rows x columns) grayscale array: bit k set where a pixel is darker
    than its right neighbour. Independent of the pHash (signs of neighbour differences, not of frequencies), so
    unrelated images that the pHash finds close are far apart here."""
    return int(np.packbits((small[:, 1:] > small[:, :-1]).ravel(), bitorder="little").view("<u8")[0])


def thumbnails(im) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray], tuple[float, float, float]]:
    """Grayscale thumbnails of an open PIL image as displayed: THUMB x THUMB of the whole image and of each CROPS
    view, then 8 x 9 (rows x columns) of the same, for the dHash; and the image's mean colour (R, G, B in 0..255).
    Decoded as cheaply as the format allows (``draft`` for JPEG)."""
    from PIL import Image

    from datatools.core.images import DEEP_MODES, exif_orientation, upright

    orientation = exif_orientation(im)
    if im.format == "JPEG":
        # Decode at the smallest 1/2^k scale still at least 2 * THUMB on each side: at 1/8 (THUMB) the block means
        # differ enough from a full decode that a PNG copy of the same pixels hashed up to 12 bits away; at 2 *
        # THUMB, 4 to 8.
        im.draft(im.mode, (2 * THUMB, 2 * THUMB))
    if im.mode in DEEP_MODES:
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(arr / max(arr.max(), 1.0) * 255.0, 0, 255).astype(np.uint8), mode="L")
    rgb = im.convert("RGB")
    colour = tuple(float(v) for v in np.asarray(rgb.resize((4, 4), Image.Resampling.BOX), dtype=np.float64
                                                ).reshape(-1, 3).mean(axis=0))
    gray = rgb.convert("L")
    gray = upright(gray, orientation)  # as displayed
    w, h = gray.size
    boxes = [None] + [(w * x0, h * y0, w * x1, h * y1) for x0, y0, x1, y1 in CROPS]
    big, small = ([np.asarray(gray.resize(size, Image.Resampling.BOX, box=b), dtype=np.float64) for b in boxes]
                  for size in ((THUMB, THUMB), (9, 8)))
    return big[0], big[1:], small[0], small[1:], colour  # type: ignore[return-value]


def signature(path: str) -> Signature:
    """The fingerprints of one image; never raises for a bad image (``error`` says what went wrong)."""
    import warnings

    from datatools.core.images import image_error, opened_image

    try:
        fs.require_regular_file(path)  # a FIFO named x.jpg would block the read forever
        data = fs.read_small_file(path)
    except OSError as e:
        return Signature(error=image_error(e))
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's decoding warnings: `stats` and `check` report them
            with opened_image(path, data) as im:
                thumb, crops, small, small_crops, colour = thumbnails(im)
    except Exception as e:  # noqa: BLE001 - see image_error
        return Signature(file=digest, error=image_error(e))
    h1, h2 = phash_pair(thumb)
    return Signature(file=digest, phash=h1, phash_flip=h2, phash_crops=tuple(phash_pair(c)[0] for c in crops),
                     dhash=dhash(small), dhash_flip=dhash(small[:, ::-1]),
                     dhash_crops=tuple(dhash(c) for c in small_crops), colour=colour)


def signature_chunk(paths: Sequence[str]) -> list[Signature]:
    """:func:`signature` of each path: what the parallel map runs."""
    return [signature(p) for p in paths]


def pixel_digest(path: str) -> str:
    """A hash of the decoded pixels as displayed, in RGB (with the size): a PNG and a JPEG whose pixels decode the
    same hash the same. ``""`` when the image cannot be decoded."""
    import warnings

    from PIL import ImageOps

    from datatools.core.images import DEEP_MODES, opened_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with opened_image(path) as im:
                im = ImageOps.exif_transpose(im)
                # 8-bit pictures as RGB, so that a PNG and a JPEG that decode alike hash alike; deeper ones (whose
                # RGB is clipped to white) and ones with an alpha channel as they are, values and alpha included
                keep = im.mode in DEEP_MODES or "A" in im.mode or "transparency" in im.info
                pixels = im if keep or im.mode == "RGB" else im.convert("RGB")
                pixels.load()
                h = hashlib.blake2b(f"{pixels.mode if keep else 'RGB'} {pixels.width}x{pixels.height}".encode(),
                                    digest_size=16)
                h.update(pixels.tobytes())
                return h.hexdigest()
    except Exception:  # unreadable here means "not provably the same pixels"; reading reported it already
        return ""


def pixel_chunk(paths: Sequence[str]) -> list[str]:
    """:func:`pixel_digest` of each path: what the parallel map runs."""
    return [pixel_digest(p) for p in paths]


# ------------------------------------------------------------------------------------------------ candidate search

def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of two uint64 arrays (broadcast)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``radius`` bits set: the XOR masks that reach a band's neighbours."""
    from itertools import combinations

    out = [0]
    for r in range(1, radius + 1):
        out += [sum(1 << b for b in c) for c in combinations(range(bits), r)]
    return np.array(out, dtype=np.uint64)


def bands_for(threshold: int) -> int:
    """How many bands the 64 bits are cut into for ``threshold``: two hashes within ``threshold`` agree within
    ``threshold // bands`` bits on at least one band (pigeonhole). 4 bands of 16 bits while that radius stays at
    most 2 (137 probes per band), more (narrower) bands above."""
    return max(4, -(-(threshold + 1) // 3))


_MAX_CANDIDATES = 4_000_000  # candidate pairs expanded at once (about 100 MB of index arrays)


def close_pairs(hashes: np.ndarray, threshold: int, *, queries: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j) with ``hamming(queries[i], hashes[j]) <= threshold``, as arrays (i, j, distance) sorted by
    (i, j), i != j, without comparing all pairs: multi-index hashing.

    The 64 bits are cut into B bands (:func:`bands_for`); two hashes within distance T agree within ``T // B`` bits
    on at least one band. Each band of at most 16 bits is a direct-addressed table (a count and a start per value,
    the members sorted by value); each query looks up its band value XOR every mask of at most ``T // B`` bits, and
    only those candidates get their full distance computed, all in numpy. The work grows with the candidates, not
    with n squared. ``queries`` defaults to ``hashes`` (then only i < j is returned); give the mirrored or cropped
    hashes to find mirrored or cropped copies. Collapse equal hashes first (see ``dupes``): a thousand copies of one
    blank image would otherwise be a million candidates.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    same = queries is None
    q = hashes if same else np.asarray(queries, dtype=np.uint64)
    n = len(hashes)
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    nb = bands_for(threshold)
    edges = np.linspace(0, 64, nb + 1).astype(int)
    for b in range(nb if n and len(q) else 0):
        lo_bit, width = int(edges[b]), int(edges[b + 1] - edges[b])
        mask = np.uint64((1 << width) - 1)
        keys = ((hashes >> np.uint64(lo_bit)) & mask).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << width)
        starts = np.cumsum(counts) - counts
        qkeys = ((q >> np.uint64(lo_bit)) & mask).astype(np.int64)
        for m in _masks(width, threshold // nb).astype(np.int64):
            probe = qkeys ^ m
            cnt = counts[probe]
            _expand(cnt, starts[probe], order, q, hashes, threshold, same, found_i, found_j)
    if not found_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pair = np.unique(np.concatenate(found_i) * n + np.concatenate(found_j))
    i, j = pair // n, pair % n
    return i, j, hamming(q[i], hashes[j])


def _expand(cnt: np.ndarray, lo: np.ndarray, order: np.ndarray, q: np.ndarray, hashes: np.ndarray, threshold: int,
            same: bool, found_i: list, found_j: list) -> None:
    """Query k's candidates are ``order[lo[k]:lo[k] + cnt[k]]``: expand them in pieces of at most _MAX_CANDIDATES,
    keep those within ``threshold``."""
    hit = np.flatnonzero(cnt)
    if not hit.size:
        return
    cnt, lo = cnt[hit], lo[hit]
    ends = np.cumsum(cnt)
    cut = 0
    while cut < hit.size:
        base = int(ends[cut - 1]) if cut else 0
        stop = max(cut + 1, int(np.searchsorted(ends, base + _MAX_CANDIDATES, side="right")))
        c, l, k = cnt[cut:stop], lo[cut:stop], hit[cut:stop]
        total = int(c.sum())
        qi = np.repeat(k, c)
        hj = order[np.repeat(l - (np.cumsum(c) - c), c) + np.arange(total)]
        keep = (qi < hj) if same else (qi != hj)
        qi, hj = qi[keep], hj[keep]
        close = hamming(q[qi], hashes[hj]) <= threshold
        found_i.append(qi[close].astype(np.int64))
        found_j.append(hj[close].astype(np.int64))
        cut = stop
