"""Group keys from a table kept outside the annotations: a CSV/TSV file (:func:`read_group_file`) or a mapping.

Use it when the grouping of a dataset (which video, patient or source each image comes from) lives in a
spreadsheet rather than in the image ids or the annotation files. :func:`mapping_keys` turns the table into a key per
image; images the table does not name become their own group, counted in a finding.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Sequence

from datatools.core.errors import FormatError, UsageError
from datatools.core.fs import read_text
from datatools.core.model import Finding, ImageRecord
from datatools.formats.common import warn

OWN = "\0"  # prefix of an image's own group: never equal to a real group key


@dataclass(frozen=True)
class GroupFile:
    """A ``image -> group`` table read by :func:`read_group_file`; pass it to :func:`plan_split` as ``group_by``.

    ``rows`` are ``(line number, image, group)``; the image cell may be the image id, the annotation's file name or
    the id with an extension. ``maybe_header``: the first row may be a header; it is ignored when its image cell names
    no image of the dataset (a data row for an image that is not there would be ignored anyway).
    """

    path: str
    rows: tuple[tuple[int, str, str], ...]
    image_column: str
    group_column: str
    maybe_header: bool = False

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> GroupFile:
        """A ``{image: group}`` mapping given in Python, as a table read from a file would be."""
        rows = tuple((0, norm_image(str(k)), str(v)) for k, v in mapping.items())
        return cls(path="<mapping>", rows=rows, image_column="image", group_column="group")


def read_group_file(path: str | os.PathLike, *, group_column: str | None = None,
                    image_column: str | None = None) -> GroupFile:
    """Read a CSV/TSV that maps images to groups, for datasets whose grouping lives outside the annotations.

    Without column names the first column is the image and the second the group, and a header row is optional.
    With ``group_column`` (and/or ``image_column``) the first row must be a header naming them; the image column is
    then the first one that is not the group column unless named. The delimiter is a tab when the first row has one,
    else a comma, else a semicolon. Blank lines and lines starting with ``#`` are skipped. An image given two
    different groups, a short row or an unreadable file raise :class:`FormatError` (file, line, problem); a column
    name the header lacks raises :class:`UsageError`.
    """
    p = str(path)
    try:
        text = read_text(p)
    except OSError as e:
        raise FormatError(p, "", f"cannot read the group file: {e.strerror or e}") from e
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise FormatError(p, "", "the file has no rows; expected lines of 'image_id,group'")
    first = lines[0][1]
    delim = "\t" if "\t" in first else "," if "," in first else ";" if ";" in first else None
    if delim is None:
        raise FormatError(p, f"line {lines[0][0]}", f"expected two columns (image, group) separated by a tab or a "
                                                    f"comma, found {first.strip()!r}")
    parsed = [(n, [c.strip() for c in row]) for (n, _), row in
              zip(lines, csv.reader([ln for _, ln in lines], delimiter=delim))]
    maybe_header = False
    if group_column is None and image_column is None:
        gi, ii, names = 1, 0, ("column 1", "column 2")
        maybe_header = True
    else:
        header = parsed[0][1]
        for opt, name in (("--group-column", group_column), ("--image-column", image_column)):
            if name is not None and name not in header:
                raise UsageError(f"{p}: {opt} {name!r} is not in the header row (line {parsed[0][0]}: columns "
                                 f"{', '.join(repr(h) for h in header)})")
        if group_column is None:
            gi = 1 if header.index(image_column) == 0 else 0  # type: ignore[arg-type]
        else:
            gi = header.index(group_column)
        if image_column is None:
            ii = next((k for k in range(len(header)) if k != gi), -1)
            if ii < 0:
                raise UsageError(f"{p}: the header row has only the group column {group_column!r}; the images need "
                                 "a column too")
        else:
            ii = header.index(image_column)
        if ii == gi:
            raise UsageError(f"{p}: --image-column and --group-column are the same column {header[ii]!r}")
        names = (header[ii], header[gi])
        parsed = parsed[1:]
    need = max(gi, ii) + 1
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, tuple[int, str]] = {}
    for n, cells in parsed:
        if len(cells) < need:
            raise FormatError(p, f"line {n}", f"expected at least {need} columns ({names[0]}, {names[1]}) separated "
                                              f"by {'a tab' if delim == chr(9) else repr(delim)}, found {len(cells)}: "
                                              f"{delim.join(cells)!r}")
        image, group = norm_image(cells[ii]), cells[gi]
        if not image:
            raise FormatError(p, f"line {n}", f"the {names[0]} cell is empty")
        if group and image in seen and seen[image][1] != group:
            raise FormatError(p, f"line {n}", f"image {image!r} is given group {group!r} here but "
                                              f"{seen[image][1]!r} on line {seen[image][0]}")
        if group:
            seen.setdefault(image, (n, group))
        rows.append((n, image, group))
    return GroupFile(path=p, rows=tuple(rows), image_column=names[0], group_column=names[1], maybe_header=maybe_header)


def norm_image(cell: str) -> str:
    """An image cell or file name as the table lookups compare it: ``/`` separators, no leading ``./``."""
    s = cell.strip().replace("\\", "/")
    while s.startswith("./"):
        s = s[2:]
    return s


def first_few(items: Sequence[str], k: int = 3) -> str:
    """The first ``k`` items for a message, with ``...`` when there are more."""
    return ", ".join(items[:k]) + (", ..." if len(items) > k else "")


def _tables(rows: Sequence[tuple[int, str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Lookups by the image cell as written and by it without its extension (``frame1.jpg`` finds id ``frame1``)."""
    by_name: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for _, image, group in rows:
        if group:  # an empty group cell: the image has no group
            by_name.setdefault(image, group)
            by_stem.setdefault(os.path.splitext(image)[0], group)
    return by_name, by_stem


def mapping_keys(records: Sequence[ImageRecord], gf: GroupFile) -> tuple[list[str], list[Finding]]:
    """The group key of every record from the table (by image id, then file name, then the cell without its
    extension), and findings for images without a row and rows without an image. A table that names none of the
    images is a :class:`FormatError`: the wrong column or the wrong file, not a grouping."""
    rows = list(gf.rows)
    ids = {r.image_id for r in records}
    names = {norm_image(r.file_name) for r in records if r.file_name}

    def names_no_image(image: str) -> bool:
        return image not in ids and image not in names and os.path.splitext(image)[0] not in ids

    if gf.maybe_header and rows and names_no_image(rows[0][1]):  # a header row: leave it out of the counts below
        rows = rows[1:]
    by_name, by_stem = _tables(rows)
    keys: list[str] = []
    missing: list[str] = []
    for r in records:
        fname = norm_image(r.file_name) if r.file_name else ""
        for cand, table in ((r.image_id, by_name), (fname, by_name), (r.image_id, by_stem)):
            if cand and cand in table:
                keys.append(table[cand])
                break
        else:
            missing.append(r.image_id)
            keys.append(OWN + r.image_id)
    if len(missing) == len(records):
        sample = first_few([im for _, im, _ in rows]) or "nothing"
        raise FormatError(gf.path, gf.image_column,
                          f"none of the {len(records)} images is in the file: its {gf.image_column} holds e.g. "
                          f"{sample}, while the image ids are e.g. {first_few([r.image_id for r in records])} (give "
                          "the image id or the file name the annotation names)")
    findings: list[Finding] = []
    if missing:
        findings.append(warn("group-missing", gf.path, gf.image_column,
                             f"{len(missing)} image(s) have no group in {gf.path} and are each their own group "
                             f"(first: {first_few(missing)})"))
    unknown = sorted({im for _, im, _ in rows if names_no_image(im)})
    if unknown:
        findings.append(warn("group-unknown-image", gf.path, gf.image_column,
                             f"{len(unknown)} row(s) name images that are not in the dataset and are ignored "
                             f"(first: {first_few(unknown)})"))
    return keys, findings
