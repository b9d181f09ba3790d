"""Duplicate clusters as split groups: ``split --dedup`` (or ``--group-by dupes``) keeps every cluster of copies found
by :func:`datatools.ops.dupes.find_duplicates` in one part, on top of any other grouping.

Use :func:`merge_clusters` to join the group keys of each cluster's members (a cluster that touches two videos joins
them: neither the copies nor the frames may straddle), and :func:`straddling` to count the clusters a plan cuts.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence


def merge_clusters(image_ids: Sequence[str], keys: Sequence[str], clusters: Sequence[Sequence[str]]) -> list[str]:
    """The group key of every image once each cluster's members share one group: groups joined by a cluster take
    the smallest key among them. Ids of a cluster that are not among ``image_ids`` (left out by ``--drop-empty``)
    are ignored."""
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
