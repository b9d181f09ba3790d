"""``dupes``: exact and near-duplicate images, grouped into clusters, and whether the copies' labels agree.

Use :func:`find_duplicates` on a dataset (any format) before splitting it: a copy in train and its original in val
makes val measure memory. ``split --dedup`` keeps each cluster in one part; ``check --dupes`` lists the clusters as
findings; a report can call :func:`find_duplicates` and render :meth:`DupesReport.to_dict`.

The relations (same file, same pixels, near, mirrored, cropped), how a pair is proposed and confirmed, and when labels
agree: docs/dupes.md; the fingerprints: :mod:`datatools.ops.dupes_hash`. Decoding runs on the one parallel map
(:class:`~datatools.core.parallel.Mapper`); the pair search runs on the driver in numpy without comparing every pair
(:func:`~datatools.ops.dupes_hash.close_pairs`).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence, TypeVar

import numpy as np

from datatools.core.errors import UsageError
from datatools.core.model import Dataset, Finding, ImageRecord
from datatools.core.parallel import Mapper, ProgressFn
from datatools.formats.common import err, info, warn
from datatools.ops.dupes_hash import CROPS, Signature, close_pairs, pixel_chunk, signature_chunk

DEFAULT_THRESHOLD = 10  # bits of 64; see docs/dupes.md for the measured choice
EXACT_RADIUS = 8  # thumbnails of the same pixels in two encodings hashed up to 8 bits apart (measured)
MAX_THRESHOLD = 24
# A near pair the pHash proposes must also be within threshold + DHASH_MARGIN bits in dHash (for the same view:
# plain, mirrored or centre). Measured on 20,000 generated photos with 400 planted copies: copies at most 11 bits
# apart in dHash, the 44 unrelated pairs the pHash put within 10 bits at least 18.
DHASH_MARGIN = 4
# And about the same mean colour (largest channel difference, of 255): a grayscale hash cannot tell a red shape on a
# blue ground from a yellow one on a green ground of the same brightness.
COLOUR_TOLERANCE = 12.0
SAME_FILE, SAME_PIXELS, NEAR, MIRRORED, CROPPED = "same file", "same pixels", "near", "mirrored", "cropped"
EXACT = (SAME_FILE, SAME_PIXELS)


@dataclass(frozen=True, slots=True)
class Member:
    """One image of a cluster, compared with the cluster's first member: ``relation`` (``first`` for that one),
    ``distance`` (hash bits; 0 for exact copies) and whether its labels agree with the first member's."""

    image_id: str
    path: str
    relation: str
    distance: int
    labels_agree: bool
    objects: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Cluster:
    """Images that are copies of each other (connected by exact or near pairs), first member first."""

    members: tuple[Member, ...]

    @property
    def kind(self) -> str:
        """``exact`` when every member is the same file or pixels as the first, else ``near``."""
        return "exact" if all(m.relation in EXACT for m in self.members[1:]) else "near"

    @property
    def labels_agree(self) -> bool:
        return all(m.labels_agree for m in self.members)

    @property
    def max_distance(self) -> int:
        return max(m.distance for m in self.members)

    @property
    def image_ids(self) -> tuple[str, ...]:
        return tuple(m.image_id for m in self.members)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "size": len(self.members), "max_distance": self.max_distance,
                "labels_agree": self.labels_agree, "members": [m.to_dict() for m in self.members]}


@dataclass
class DupesReport:
    """What :func:`find_duplicates` found: clusters (largest first), how many images were hashed, and findings for
    the images that could not be (never fatal)."""

    threshold: int
    images: int
    hashed: int
    clusters: list[Cluster]
    pairs: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def duplicate_images(self) -> int:
        """Images beyond the first of each cluster: what deduplication would remove."""
        return sum(len(c.members) - 1 for c in self.clusters)

    def cluster_ids(self) -> list[tuple[str, ...]]:
        """The image ids of every cluster: what ``split --dedup`` keeps together."""
        return [c.image_ids for c in self.clusters]

    def counts(self) -> dict[str, int]:
        return {"exact_clusters": sum(1 for c in self.clusters if c.kind == "exact"),
                "near_clusters": sum(1 for c in self.clusters if c.kind == "near"),
                "labels_disagree": sum(1 for c in self.clusters if not c.labels_agree)}

    def as_findings(self) -> list[Finding]:
        """One finding per member beyond the first (``duplicate-image`` for an exact copy, ``near-duplicate`` for a
        near one) and ``duplicate-labels-differ`` where its labels disagree with the first member's: what
        ``check --dupes`` adds."""
        out: list[Finding] = []
        for c in self.clusters:
            first = c.members[0]
            for m in c.members[1:]:
                what = f"{m.relation} as {first.image_id!r}" if m.relation in EXACT else \
                    f"a {m.relation} copy of {first.image_id!r} ({m.distance} bits of 64 apart)"
                if m.relation in EXACT:
                    out.append(warn("duplicate-image", m.path, "image", f"the {what}", image_id=m.image_id))
                else:
                    out.append(info("near-duplicate", m.path, "image", f"probably {what}", image_id=m.image_id))
                if not m.labels_agree and m.relation in EXACT:
                    out.append(warn("duplicate-labels-differ", m.path, "objects",
                                    f"other boxes than its copy {first.image_id!r} ({m.objects} objects here, "
                                    f"{first.objects} there): one of the two annotations is wrong",
                                    image_id=m.image_id))
                elif not m.labels_agree:  # a near copy: the pair itself may be a false one
                    out.append(info("duplicate-labels-differ", m.path, "objects",
                                    f"other class counts than its near copy {first.image_id!r} ({m.objects} "
                                    f"objects here, {first.objects} there): label noise, or not a copy",
                                    image_id=m.image_id))
        return out

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "images": self.images, "hashed": self.hashed, "pairs": self.pairs,
                "clusters_total": len(self.clusters), "duplicate_images": self.duplicate_images, **self.counts(),
                "clusters": [c.to_dict() for c in self.clusters], "findings": [f.to_dict() for f in self.findings]}


def find_duplicates(ds: Dataset, *, threshold: int = DEFAULT_THRESHOLD, mapper: Mapper | None = None,
                    progress: ProgressFn | None = None, on_total=None) -> DupesReport:
    """Exact and near-duplicate clusters among the images of ``ds`` (see the module docs for what counts).

    ``threshold`` is the largest pHash distance (bits of 64) for a near pair: 0 finds exact copies only (the same
    file, or the same pixels); the default 10 finds re-encoded, resized, mirrored and 5%-cropped copies. The images
    are read on ``mapper`` (default: local processes); an image that cannot be read is a finding, never fatal.
    """
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise UsageError(f"--threshold {threshold}: give 0 to {MAX_THRESHOLD} bits (of 64); above that, most pairs "
                         "of unrelated images are 'near'")
    mapper = mapper or Mapper()
    records = sorted((r for r in ds.images if r.image_path), key=lambda r: r.image_id)
    findings = [info("dupes-no-image", r.source, "image", "no image file to compare", image_id=r.image_id)
                for r in sorted(ds.images, key=lambda r: r.image_id) if not r.image_path]
    if on_total:
        on_total(len(records))
    sigs: list[Signature] = []
    chunks = mapper.chunks([r.image_path for r in records])
    for part in mapper(signature_chunk, chunks, progress=progress):
        sigs.extend(part)
    ok = [k for k, s in enumerate(sigs) if not s.error]
    for k, s in enumerate(sigs):
        if s.error:
            findings.append(err("image-unreadable", records[k].image_path or "", "image", s.error,
                                image_id=records[k].image_id))
    recs = [records[k] for k in ok]
    sigs = [sigs[k] for k in ok]
    relation, pairs = _pairs(sigs, threshold, mapper, [r.image_path or "" for r in recs])
    clusters = _clusters(recs, sigs, relation)
    clusters.sort(key=lambda c: (-len(c.members), c.members[0].image_id))
    return DupesReport(threshold=threshold, images=len(ds.images), hashed=len(recs), clusters=clusters, pairs=pairs,
                       findings=findings)


def _pairs(sigs: Sequence[Signature], threshold: int, mapper: Mapper, paths: Sequence[str]
           ) -> tuple[dict[tuple[int, int], tuple[str, int]], int]:
    """Every related pair (i < j) of images: {(i, j): (relation, distance)}, and how many there were."""
    n = len(sigs)
    rel: dict[tuple[int, int], tuple[str, int]] = {}
    if n < 2:
        return rel, 0
    by_file: dict[str, list[int]] = defaultdict(list)
    for k, s in enumerate(sigs):
        by_file[s.file].append(k)
    for ks in by_file.values():
        for k in ks[1:]:
            rel[(ks[0], k)] = (SAME_FILE, 0)
    # Equal hashes are collapsed first: a thousand copies of one image are one entry of the search, not a million
    # candidate pairs.
    h = np.array([s.phash for s in sigs], dtype=np.uint64)
    uniq, first_of, inverse = np.unique(h, return_index=True, return_inverse=True)  # first_of: first occurrences
    views = [(MIRRORED, np.array([sigs[k].phash_flip for k in first_of], dtype=np.uint64))] + [
        (CROPPED, np.array([sigs[k].phash_crops[v] for k in first_of], dtype=np.uint64)) for v in range(len(CROPS))
    ] if threshold else []  # threshold 0 (exact copies only) reads the plain hash's neighbours only
    radius = max(threshold, EXACT_RADIUS)
    candidates: set[tuple[int, int]] = set()  # unique-hash pairs (a < b) that some view puts close
    plain: set[tuple[int, int]] = set()  # those within the radius by the plain hash: maybe the same pixels
    for kind, queries in [(NEAR, None), *views]:
        qi, hj, _ = close_pairs(uniq, radius if kind == NEAR else threshold, queries=queries)
        keys = {(min(a, b), max(a, b)) for a, b in zip(qi.tolist(), hj.tolist())}
        candidates |= keys
        if kind == NEAR:
            plain |= keys
    members: dict[int, list[int]] = defaultdict(list)
    for k in range(n):
        members[int(inverse[k])].append(k)
    # Which images might be the same pixels in another encoding: those whose hash is shared, or within the radius.
    suspects: set[int] = set()
    for ks in members.values():
        if len({sigs[k].file for k in ks}) > 1:
            suspects.update(ks)
    for a, b in plain:
        suspects.update(members[a])
        suspects.update(members[b])
    todo = sorted(suspects)
    digests: dict[int, str] = {}
    if todo:
        chunks = mapper.chunks([paths[k] for k in todo])
        flat = [d for part in mapper(pixel_chunk, chunks) for d in part]
        digests = dict(zip(todo, flat))

    def relate(i: int, j: int) -> bool:
        """Record how images i and j are related, if they are; whether they are."""
        key = (min(i, j), max(i, j))
        if key in rel:  # the same file
            return True
        if digests.get(i) and digests.get(i) == digests.get(j):
            rel[key] = (SAME_PIXELS, 0)
        elif _colour_gap(sigs[i], sigs[j]) <= COLOUR_TOLERANCE:
            view = best_view(sigs[i], sigs[j], threshold=threshold)
            if view is not None:
                rel[key] = view
        return key in rel

    if not threshold:  # exact copies only: the same file (above) or the same pixels, wherever their hashes fall
        first: dict[str, int] = {}
        for k, d in sorted(digests.items()):
            if d in first:
                relate(first[d], k)
            elif d:
                first[d] = k
        return rel, len(rel)
    # Within a hash, each image joins the first of the group's representatives it relates to (at once when it has
    # one's pixels or file), else becomes one: the first image alone would stand for all, and one that relates to no
    # other (a grayscale copy, gated out by colour) hid every copy behind it. Between two close hashes, their
    # representatives are paired.
    reps: dict[int, list[int]] = {}
    for u, ks in members.items():
        reps[u] = [ks[0]]
        twins = {digests.get(ks[0]) or sigs[ks[0]].file: ks[0]}
        for k in ks[1:]:
            twin = twins.get(digests.get(k) or sigs[k].file)
            if twin is not None:
                relate(twin, k)
            elif not any(relate(r, k) for r in reps[u]):
                reps[u].append(k)
                twins[digests.get(k) or sigs[k].file] = k
    for a, b in sorted(candidates):
        for i in reps[a]:
            for j in reps[b]:
                relate(i, j)
    return rel, len(rel)


def _colour_gap(a: Signature, b: Signature) -> float:
    return max(abs(x - y) for x, y in zip(a.colour, b.colour))


def _bits_apart(x: int, y: int) -> int:
    return (x ^ y).bit_count()


def _views(a: Signature, b: Signature) -> list[tuple[str, int, int]]:
    """(relation, pHash distance, dHash distance) of each view that can match b to a, or a to b: the plain images,
    one mirrored, one's crop views against the other whole."""
    out = [(NEAR, _bits_apart(a.phash, b.phash), _bits_apart(a.dhash, b.dhash)),
           (MIRRORED, _bits_apart(a.phash_flip, b.phash), _bits_apart(a.dhash_flip, b.dhash)),
           (MIRRORED, _bits_apart(b.phash_flip, a.phash), _bits_apart(b.dhash_flip, a.dhash))]
    for x, y in ((a, b), (b, a)):
        out += [(CROPPED, _bits_apart(p, y.phash), _bits_apart(d, y.dhash))
                for p, d in zip(x.phash_crops, x.dhash_crops)]
    return out


def best_view(a: Signature, b: Signature, *, threshold: int) -> tuple[str, int] | None:
    """(relation, pHash distance) of the closest view in which both hashes match; ties go to near, then mirrored,
    then cropped. None when no view matches: the pHash alone proposed the pair by chance.

    A view matches when its pHash distance is within ``threshold`` and the dHash of the same view within threshold +
    DHASH_MARGIN, or, for a pHash within half the threshold, within threshold + 2 DHASH_MARGIN: the dHash moves more
    than the pHash under a crop (copies cropped at a random place measured pHash 4 with dHash 15 or 16), and
    unrelated images are that close in pHash far more rarely than within the whole threshold."""
    order = {NEAR: 0, MIRRORED: 1, CROPPED: 2}
    near_d, far_d = threshold + DHASH_MARGIN, threshold + 2 * DHASH_MARGIN
    ok = [(p, order[kind], kind) for kind, p, d in _views(a, b)
          if p <= threshold and (d <= near_d or (2 * p <= threshold and d <= far_d))]
    if not ok:
        return None
    p, _, kind = min(ok)
    return kind, p


T = TypeVar("T", int, str)


def smallest_roots(nodes: Iterable[T], pairs: Iterable[tuple[T, T]]) -> dict[T, T]:
    """Each node's connected component under ``pairs``, named by its smallest node (union-find): the clusters here
    and the groups that ``split --dedup`` merges."""
    parent = {n: n for n in nodes}

    def find(x: T) -> T:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # type: ignore[type-var]
    return {n: find(n) for n in parent}


def _clusters(recs: Sequence[ImageRecord], sigs: Sequence[Signature],
              rel: dict[tuple[int, int], tuple[str, int]]) -> list[Cluster]:
    """Connected components of the pairs, each member described against the component's first image."""
    root = smallest_roots(range(len(recs)), rel)
    groups: dict[int, list[int]] = defaultdict(list)
    for k in range(len(recs)):
        groups[root[k]].append(k)
    out = []
    for ks in groups.values():
        if len(ks) < 2:
            continue
        first = ks[0]  # records are sorted by image id, so the first member has the smallest id
        members = [Member(recs[first].image_id, recs[first].image_path or "", "first", 0, True,
                          len(recs[first].annotations))]
        for k in ks[1:]:
            kind, d = rel.get((first, k)) or _relation_to_first(sigs[first], sigs[k])
            agree = _labels_agree(recs[first], recs[k], exact=kind in EXACT)
            members.append(Member(recs[k].image_id, recs[k].image_path or "", kind, d, agree,
                                  len(recs[k].annotations)))
        out.append(Cluster(tuple(members)))
    return out


def _relation_to_first(a: Signature, b: Signature) -> tuple[str, int]:
    """How image j relates to the first member i when no pair joins them directly (a chain): the closest view by
    the pHash; ``same file`` when the bytes match."""
    if a.file == b.file:
        return SAME_FILE, 0
    p, _, kind = min((p, {NEAR: 0, MIRRORED: 1, CROPPED: 2}[kind], kind) for kind, p, _ in _views(a, b))
    return kind, p


def _labels_agree(a: ImageRecord, b: ImageRecord, *, exact: bool) -> bool:
    """Exact copies: the same labelled boxes (to 0.5 px); near copies: the same objects per class."""
    if exact:
        def boxes(r: ImageRecord) -> Counter:
            # a coordinate of 1e308 doubles to inf, which round() refuses (an OverflowError): kept as it is
            return Counter((x.label, tuple(round(v * 2) if math.isfinite(v * 2) else v for v in x.box))
                           for x in r.annotations)

        return boxes(a) == boxes(b)
    return Counter(x.label for x in a.annotations) == Counter(x.label for x in b.annotations)
