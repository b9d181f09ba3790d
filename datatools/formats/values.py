"""Numbers, flags and sizes as annotations write them, read by one rule in every reader: a coordinate or size from
an XML text (:func:`text_number`) or a JSON value (:func:`json_number`), a flag written as text (:func:`read_flag`),
and the size an annotation gives its image (:func:`annotation_size`: ``bad-size``, ``missing-size``). See
docs/check.md.
"""
from __future__ import annotations

from datatools.core.model import Finding
from datatools.formats.common import warn


def text_number(raw) -> float | None:
    """A finite float from a text field (an XML element or attribute, a CSV cell), or None: NaN, inf, empty, absent
    and words are not numbers. ``float`` already accepts surrounding whitespace (`` 12 ``, ``\\n12\\n``)."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if v - v == 0.0 else None  # NaN and inf fail this


# Flag texts read quietly unless a format says otherwise: 0/1, true/false, yes/no (any case), empty.
FLAG_WORDS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True, "": False}


def read_flag(text: str | None, path: str, fld: str, image_id: str, findings: list[Finding], *,
              quiet: dict[str, bool] = FLAG_WORDS, expected: str = "0 or 1") -> bool:
    """A flag written as text (VOC's difficult, CVAT's occluded, an Open Images Is* column): absent, or a value of
    ``quiet`` (stripped, lower-cased), is read as it says; anything else is read as a true/false/yes/no word, else as
    a number (non-zero: set; not a number: 0), with a ``bad-flag`` warning that says what was expected."""
    key = (text or "").strip().lower()
    val = quiet.get(key)
    if val is not None:
        return val
    val = FLAG_WORDS.get(key)
    if val is None:
        num = text_number(text)
        val = bool(num) if num is not None else False
    findings.append(warn("bad-flag", path, fld, f"expected {expected}, found {text!r}; read as {int(val)}",
                         image_id=image_id))
    return val


def json_flag(v, path: str, fld: str, image_id: str, findings: list[Finding]) -> bool:
    """A flag in JSON (COCO's ``iscrowd`` and ``attributes``, LabelMe's shape ``flags``): absent, a bool, 0 or 1 as it
    is; anything else (``"0"``, ``"false"``) read as text by :func:`read_flag` (``bool("0")`` is True)."""
    if v is None or (v in (0, 1) and isinstance(v, (bool, int, float))):
        return bool(v)
    return read_flag(str(v), path, fld, image_id, findings)


def json_number(v) -> float | None:
    """A finite JSON number (not a bool, not a string), or None: for the JSON formats' coordinates and sizes."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if v == v and abs(v) != float("inf") else None


# A size is a whole number of pixels in this range: 1e19 would overflow 64 bits downstream and 0.4 would become 0.
MAX_SIDE = 1_000_000


def size_side(raw, *, text: bool = False) -> int | str | None:
    """One width or height as an annotation writes it: a whole number of pixels in 1..MAX_SIDE; None when it is
    absent, empty or 0 (a size left unknown); else why it is unusable. Every reader judges sizes by this rule.
    ``text``: ``raw`` is the text of an XML element or attribute (``" 640.0 "`` is 640); else a JSON value (or a
    number already read), where a string or a bool is no size."""
    if raw is None or (text and not raw.strip()):
        return None
    if text:
        v = text_number(raw)
    elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return "not a JSON number"
    else:
        v = json_number(raw)
    if v is None:
        return "not a number"
    if v == 0:
        return None
    if v != int(v):
        return "not a whole number of pixels"
    return int(v) if 1 <= v <= MAX_SIDE else f"outside 1..{MAX_SIDE:_}"


def annotation_size(width, height, *, path: str, image_id: str, findings: list[Finding], fields: tuple[str, str],
                    names: tuple[str, str], text: bool = False, size_field: str | None = None, holder: str = ""
                    ) -> tuple[int | None, int | None]:
    """``(width, height)`` of the image as its annotation gives them (VOC ``<size>``, a COCO image, a CVAT
    ``<image>``, LabelMe ``imageWidth``/``imageHeight``, Label Studio ``original_width``/``original_height``), both
    None unless both are usable (:func:`size_side`), with the one verdict every reader gives: a side that is there
    but unusable is a ``bad-size`` warning at its field (``fields``) that says why; a width or height absent, empty
    or 0 is a ``missing-size`` warning (at ``size_field``, default the width's). Either way the size is then read
    from the image header (without an image the image is dropped later, with a ``missing-size`` error). ``names``
    are the sides as the format writes them; ``holder`` the element holding both, named when neither is there."""
    got = (size_side(width, text=text), size_side(height, text=text))
    raws = (width, height)
    for fld, name, raw, v in zip(fields, names, raws, got):
        if isinstance(v, str):
            findings.append(warn("bad-size", path, fld, f"{name} is {raw.strip() if text else raw!r}: {v}; the size "
                                 "is read from the image header, if there is an image", image_id=image_id))
    if isinstance(got[0], int) and isinstance(got[1], int):
        return got[0], got[1]
    if not any(isinstance(v, str) for v in got):
        if width is None and height is None:
            what = f"no {holder or '/'.join(names)}"
        else:
            what = " and ".join(f"{n} is " + ("absent" if r is None else repr(r.strip() if text else r))
                                for n, r in zip(names, raws))
        findings.append(warn("missing-size", path, fields[0] if size_field is None else size_field,
                             f"{what}; the size is read from the image header, if there is an image",
                             image_id=image_id))
    return None, None
