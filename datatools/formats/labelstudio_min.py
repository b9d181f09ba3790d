"""Label Studio's JSON-MIN export (one flat item per completed annotation, label-studio-converter's
``convert_to_json_min``) turned into the full JSON export's tasks, so that one code path
(:func:`datatools.formats.labelstudio.parse_result`) parses the regions of both. A control with one choice or one
text is a bare string there, which cannot be told from a data value: such keys are task data, never regions. Items
with the same task ``id`` become one task with several annotations again. See docs/format-labelstudio.md.
"""
from __future__ import annotations

from typing import NamedTuple

# Keys JSON-MIN adds beside the task's data; neither data nor regions.
META = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement",
                  "history", "was_cancelled"})
# The result type of a value without a ``*labels`` key (a control without labels), by the key it holds instead.
_TYPE_BY_KEY = (("width", "rectangle"), ("points", "polygon"), ("choices", "choices"), ("text", "textarea"))


class Located(NamedTuple):
    """A task and the fields that findings about it name: the full export's ``[3]``, ``[3]/data`` and
    ``[3]/annotations``; a JSON-MIN item's ``[3]`` for all three (its data and regions sit in the item itself)."""

    task: object
    where: str
    data_at: str
    annotations_at: str


def is_task(item) -> bool:
    """Whether an export item is a task of the full JSON export (or of the pre-1.0 ``completions`` one)."""
    return isinstance(item, dict) and any(k in item for k in ("data", "annotations", "completions"))


def is_region_list(value) -> bool:
    """Whether a JSON-MIN item's value is a control's regions: a non-empty list of objects."""
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _result(region: dict, control: str) -> dict:
    """A JSON-MIN region as the full export's result: its type is the ``*labels`` key its value holds
    (``rectanglelabels``, ``polygonlabels``, ``keypointlabels``...), else that of a control without labels."""
    value = {k: v for k, v in region.items() if k not in ("original_width", "original_height")}
    kind = next((k for k, v in value.items() if k.endswith("labels") and isinstance(v, list)), None)
    if kind is None:
        kind = next((t for key, t in _TYPE_BY_KEY if key in value), "unknown")
    out = {"type": kind, "from_name": control, "value": value}
    out.update({k: region[k] for k in ("original_width", "original_height") if k in region})
    return out


def to_tasks(items: list) -> list[Located]:
    """Each task of one export file, in file order: a full export's task as it is, JSON-MIN items as tasks whose
    annotations carry ``_where`` (the item) and ``_at`` (each region's field: ``[3]/label[0]``) so that findings name
    the JSON-MIN fields. Items with the same ``id`` are one task."""
    out: list[Located] = []
    by_id: dict[object, dict] = {}
    for t, item in enumerate(items):
        where = f"[{t}]"
        if not isinstance(item, dict) or is_task(item):
            out.append(Located(item, where, f"{where}/data", f"{where}/annotations"))
            continue
        data, results, at = {}, [], []
        for key, value in item.items():
            if key in META:
                continue
            if is_region_list(value):
                for k, region in enumerate(value):
                    results.append(_result(region, key))
                    at.append(f"{where}/{key}[{k}]")
            else:
                data[key] = value
        # An item without regions is an annotation that drew none, or (no annotation_id) a task nobody annotated.
        annotated = bool(results) or item.get("annotation_id") is not None
        ann = {"id": item.get("annotation_id"), "result": results, "_where": where, "_at": at}
        tid = item.get("id")
        key = tid if isinstance(tid, (int, str)) and not isinstance(tid, bool) else None
        if key is not None and key in by_id:
            if annotated:
                by_id[key]["annotations"].append(ann)
            continue
        task: dict = {"data": data, "annotations": [ann] if annotated else []}
        if key is not None:
            task["id"] = tid
            by_id[key] = task
        out.append(Located(task, where, where, where))
    return out
