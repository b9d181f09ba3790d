"""Group keys, so that frames of one video or crops of one source never straddle parts wherever that fact is
recorded. A key comes from one of three sources:

* ``regex:PATTERN`` (or a bare PATTERN): a regex on the image id (:func:`group_keys`);
* ``attr:NAME``: an image-level field of the annotation, a COCO image dict key or a VOC tag below
  ``<annotation>`` (:func:`image_attributes`);
* a mapping file (:func:`~datatools.ops.split.group_file.read_group_file`) or a ``{image_id: group}`` mapping.

Use :func:`resolve_groups` for any of them. Images without a key are never dropped: each becomes its own group and a
finding counts them. ``split --dedup`` then joins the groups of each cluster of copies (:func:`merge_clusters`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Sequence

from datatools.core.errors import UsageError
from datatools.core.model import Dataset, Finding, ImageRecord
from datatools.formats.common import warn
from datatools.ops.split.group_file import OWN, GroupFile, first_few, mapping_keys
from datatools.formats.coco_ids import coco_documents, coco_source, id_text


def group_keys(image_ids: Sequence[str], pattern: str) -> tuple[list[str], list[str]]:
    """The group of every image id: the regex's first capture group (or whole match) found by ``re.search``.
    Returns (keys, ids that did not match, which become their own group)."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--group-by {pattern!r} is not a valid regular expression: {e}") from e
    keys, unmatched = [], []
    for iid in image_ids:
        m = rx.search(iid)
        if m is None:
            unmatched.append(iid)
            keys.append(OWN + iid)
        else:
            keys.append(m.group(1) if rx.groups and m.group(1) is not None else m.group(0))
    return keys, unmatched


def _unmatched_findings(unmatched: list[str], pattern: str, total: int) -> list[Finding]:
    if not unmatched:
        return []
    if len(unmatched) == total:  # a typo, not a grouping: as with attr:NAME or a --groups file that matches nothing
        raise UsageError(f"--group-by {pattern}: no image id matches this pattern (first ids: {first_few(unmatched)}), "
                         "so there are no groups to keep together")
    return [warn("group-unmatched", "", "group-by",
                 f"{len(unmatched)} image id(s) do not match {pattern} and are each their own group "
                 f"(first: {', '.join(unmatched[:3])})")]


def parse_group_by(text: str) -> tuple[str, str]:
    """``--group-by`` as ``(kind, value)``: ``regex:P`` and a bare ``P`` are ``("regex", P)``; ``attr:NAME`` is
    ``("attr", NAME)``. A regex that itself starts with ``attr:`` or ``regex:`` needs the ``regex:`` prefix."""
    kind, sep, rest = text.partition(":")
    if sep and kind in ("regex", "attr"):
        if not rest.strip():
            raise UsageError(f"--group-by {text!r}: give a {'pattern' if kind == 'regex' else 'field name'} after "
                             f"'{kind}:'")
        return kind, rest if kind == "regex" else rest.strip()
    return "regex", text


def _flatten(value: object, prefix: str, out: dict[str, str]) -> None:
    """Nested dicts become dotted names (``source.video``); lists and numbers become their JSON text."""
    if value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
        return
    if prefix in out:
        return
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if text.strip():
        out[prefix] = text.strip()


def image_attributes(ds: Dataset, records: Sequence[ImageRecord]) -> list[dict[str, str]]:
    """The image-level fields of every record, by dotted name, as ``--group-by attr:NAME`` sees them.

    COCO: every key of the image's dict in the original JSON (``video_id``, ``source.video`` for nested dicts).
    VOC: every leaf tag below ``<annotation>`` other than the objects (``folder``, ``source.database``,
    ``owner.name``). Read from the record's source file, which :func:`write_split` reads again anyway.
    YOLO has no image-level fields: :class:`UsageError`.
    """
    if ds.format == "yolo":
        raise UsageError("--group-by attr:NAME: YOLO labels have no image-level fields; use --groups FILE, or "
                         "--group-by regex:PATTERN on the image id (e.g. '^(.*)/' for the folder)")
    cache: dict[str, dict[str, dict]] = {}
    out: list[dict[str, str]] = []
    for r in records:
        fields: dict[str, str] = {}
        if ds.format == "coco" and "#" in r.source:
            path, raw = coco_source(r)
            if path not in cache:
                doc = coco_documents([path])[path]
                cache[path] = {id_text(im.get("id")): im for im in doc.get("images") or [] if isinstance(im, dict)}
            im = cache[path].get(raw) or {}
            flat: dict[str, str] = {}
            _flatten(im, "", flat)
            fields = flat
        elif ds.format == "voc" and r.source:
            from datatools.formats.voc_xml import image_fields

            fields = image_fields(r.source)
        out.append(fields)
    return out


def _attribute_keys(ds: Dataset, records: Sequence[ImageRecord], name: str) -> tuple[list[str], list[Finding]]:
    attrs = image_attributes(ds, records)
    keys: list[str] = []
    missing: list[str] = []
    for r, a in zip(records, attrs):
        if name in a:
            keys.append(a[name])
        else:
            missing.append(r.image_id)
            keys.append(OWN + r.image_id)
    if len(missing) == len(records):
        known = sorted({k for a in attrs for k in a})
        where = "image dicts" if ds.format == "coco" else "annotations" if ds.format == "voc" else "images"
        raise UsageError(f"--group-by attr:{name}: no image has a field {name!r}; the {where} here have: "
                         f"{', '.join(known[:30]) + (' ...' if len(known) > 30 else '') if known else 'none'}")
    findings = []
    if missing:
        findings.append(warn("group-attr-missing", ds.root, name,
                             f"{len(missing)} image(s) have no field {name!r} and are each their own group "
                             f"(first: {first_few(missing)})"))
    return keys, findings


def resolve_groups(ds: Dataset, records: Sequence[ImageRecord],
                   group_by: "str | GroupFile | Mapping[str, str]") -> tuple[list[str], list[Finding], str]:
    """The group key of every record, the findings about images without one, and a label for the source
    (``regex:...``, ``attr:...``, ``file:...``). Images without a key get their own group, never dropped."""
    if isinstance(group_by, GroupFile):
        keys, findings = mapping_keys(records, group_by)
        return keys, findings, f"file:{group_by.path}"
    if isinstance(group_by, Mapping):
        keys, findings = mapping_keys(records, GroupFile.from_mapping(group_by))
        return keys, findings, "mapping"
    kind, value = parse_group_by(group_by)
    if kind == "attr":
        keys, findings = _attribute_keys(ds, records, value)
        return keys, findings, f"attr:{value}"
    keys, unmatched = group_keys([r.image_id for r in records], value)
    return keys, _unmatched_findings(unmatched, value, len(records)), f"regex:{value}"


def merge_clusters(image_ids: Sequence[str], keys: Sequence[str], clusters: Sequence[Sequence[str]]) -> list[str]:
    """The group key of every image once each cluster of copies (:func:`datatools.ops.dupes.find_duplicates`) has
    its members in one group: groups joined by a cluster (a cluster that touches two videos joins them: neither the
    copies nor the frames may straddle) take the smallest key among them. Ids of a cluster that are not among
    ``image_ids`` (left out by ``--drop-empty``) are ignored."""
    from datatools.ops.dupes import smallest_roots

    key_of = dict(zip(image_ids, keys))
    pairs = []
    for members in clusters:
        ks = [key_of[i] for i in members if i in key_of]
        pairs += [(ks[0], k) for k in ks[1:]]
    root = smallest_roots(keys, pairs)
    return [root[k] for k in keys]


def straddling(parts: Mapping[str, Sequence[str]], clusters: Sequence[Sequence[str]]) -> int:
    """How many clusters have members in more than one part."""
    part_of = {iid: name for name, ids in parts.items() for iid in ids}
    return sum(1 for members in clusters if len({part_of[i] for i in members if i in part_of}) > 1)
