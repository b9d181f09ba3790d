"""Collate functions, grouped batch samplers and make_loader."""
from __future__ import annotations

import functools
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
from torchvision import tv_tensors  # noqa: E402

from datatools.datasets import (DistributedGroupedBatchSampler, GroupedBatchSampler, VOCDetection,  # noqa: E402
                                aspect_ratio_groups, default_num_workers, detection_collate, make_loader,
                                make_target, padded_collate)
from datatools.datasets.transforms import eval_preset, train_preset  # noqa: E402
from tests.conftest import SAMPLE  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def sample(h: int, w: int, boxes, labels, image_id: int = 0, value: int = 7):
    img = tv_tensors.Image(torch.full((3, h, w), value, dtype=torch.uint8))
    return img, make_target(boxes, labels, canvas_size=(h, w), image_id=image_id)


def test_detection_collate_stacks_same_sizes_and_lists_others():
    same = [sample(8, 10, [[0, 0, 4, 4]], [1]), sample(8, 10, [], [])]
    images, targets = detection_collate(same)
    assert isinstance(images, torch.Tensor) and images.shape == (2, 3, 8, 10)
    assert targets[1]["boxes"].shape == (0, 4) and targets[0]["labels"].tolist() == [1]
    mixed = [sample(8, 10, [], []), sample(12, 6, [], [])]
    images, _ = detection_collate(mixed)
    assert isinstance(images, list) and [tuple(i.shape) for i in images] == [(3, 8, 10), (3, 12, 6)]
    images, _ = detection_collate(same, stack=False)
    assert isinstance(images, list)
    with pytest.raises(ValueError, match="different shapes"):
        detection_collate(mixed, stack=True)
    with pytest.raises(ValueError):
        detection_collate([])


def test_padded_collate_exact():
    batch = [sample(40, 70, [[10, 20, 30, 40], [0, 0, 70, 40]], [3, 0], image_id=5, value=9),
             sample(65, 20, [], [], image_id=6),
             sample(10, 10, [[2, 2, 6, 8]], [1], image_id=7)]
    out = padded_collate(batch)
    assert out["images"].shape == (3, 3, 96, 96)  # max 65 x 70 rounded up to 32
    assert out["images"][0, :, :40, :70].eq(9).all() and out["images"][0, :, 40:, :].eq(0).all()
    assert out["images"][0, :, :, 70:].eq(0).all()
    assert out["image_sizes"].tolist() == [[40, 70], [65, 20], [10, 10]]
    assert out["boxes"].shape == (3, 2, 4) and out["boxes"][0].tolist() == [[10, 20, 30, 40], [0, 0, 70, 40]]
    assert out["boxes"][1].eq(0).all() and out["boxes"][2, 0].tolist() == [2, 2, 6, 8]
    assert out["labels"].tolist() == [[3, 0], [-1, -1], [1, -1]]
    assert out["mask"].tolist() == [[True, True], [False, False], [True, False]]
    assert out["image_id"].tolist() == [5, 6, 7]
    expected = torch.tensor([[0, 3, 20 / 96, 30 / 96, 20 / 96, 20 / 96],
                             [0, 0, 35 / 96, 20 / 96, 70 / 96, 40 / 96],
                             [2, 1, 4 / 96, 5 / 96, 4 / 96, 6 / 96]])
    torch.testing.assert_close(out["targets"], expected)


@pytest.mark.parametrize("stride, fill, expected_hw", [(1, 0, (65, 70)), (64, 114, (128, 128)), (8, 0, (72, 72))])
def test_padded_collate_stride_and_fill(stride, fill, expected_hw):
    batch = [sample(40, 70, [], []), sample(65, 20, [], [])]
    out = padded_collate(batch, stride=stride, fill=fill)
    assert tuple(out["images"].shape[-2:]) == expected_hw
    assert out["targets"].shape == (0, 6) and out["boxes"].shape == (2, 0, 4)
    if expected_hw != (65, 70):
        assert out["images"][1, 0, -1, -1].item() == fill


def test_padded_collate_rejects_bad_input():
    with pytest.raises(ValueError):
        padded_collate([])
    with pytest.raises(ValueError):
        padded_collate([sample(4, 4, [], [])], stride=0)


@pytest.mark.parametrize("ratios, bins, expected", [
    ([0.5, 1.0, 1.5, 0.99], (1.0,), [0, 1, 1, 0]),
    ([0.5, 1.0, 1.5, 3.0], (0.8, 1.25), [0, 1, 2, 2]),
])
def test_aspect_ratio_groups(ratios, bins, expected):
    assert aspect_ratio_groups(ratios, bins) == expected


@pytest.mark.parametrize("drop_last", [False, True])
def test_grouped_batch_sampler(drop_last):
    groups = [i % 3 == 0 for i in range(23)]  # 8 in group 1, 15 in group 0
    groups = [int(g) for g in groups]
    bs = GroupedBatchSampler(torch.utils.data.RandomSampler(range(23), generator=torch.Generator().manual_seed(1)),
                             groups, 4, drop_last=drop_last)
    batches = list(bs)
    assert len(batches) == len(bs) == (2 + 3 if drop_last else 2 + 4)
    for b in batches:
        assert len({groups[i] for i in b}) == 1 and len(b) <= 4
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    assert len(flat) == (20 if drop_last else 23)


def test_distributed_grouped_sampler_gives_every_rank_the_same_count():
    ds = VOCDetection(SAMPLE)
    groups = aspect_ratio_groups(ds)
    assert set(groups) == {0, 1}, "sample_data has portrait and landscape images"
    for epoch in range(3):
        lens, seen = [], []
        for rank in range(3):
            s = DistributedGroupedBatchSampler(ds, groups, 4, num_replicas=3, rank=rank, seed=5)
            s.set_epoch(epoch)
            batches = list(s)
            lens.append(len(batches))
            assert len(batches) == len(s)
            for b in batches:
                assert len({groups[i] for i in b}) == 1
            seen += [i for b in batches for i in b]
        assert len(set(lens)) == 1
        assert len(set(seen)) >= len(ds) - 3 * 2 * 4, "only the few batches beyond the smallest rank are skipped"


def test_make_loader_defaults():
    ds = VOCDetection(SAMPLE, splits="val", transforms=eval_preset(64))
    loader = make_loader(ds, batch_size=3)
    assert loader.num_workers == default_num_workers(3) == min(len(__import__("os").sched_getaffinity(0)), 3, 8)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.persistent_workers == (loader.num_workers > 0)
    assert loader.collate_fn is detection_collate
    plain = make_loader(ds, batch_size=4, num_workers=0, shuffle=False)
    ids = [ds.index_of(int(t["image_id"])) for _, ts in plain for t in ts]  # image_id: the COCO id
    assert ids == list(range(len(ds))) and not plain.persistent_workers
    a = [ds.index_of(int(t["image_id"])) for _, ts in make_loader(ds, batch_size=4, num_workers=0, seed=3)
         for t in ts]
    b = [ds.index_of(int(t["image_id"])) for _, ts in make_loader(ds, batch_size=4, num_workers=0, seed=3)
         for t in ts]
    assert a == b and sorted(a) == list(range(len(ds))) and a != list(range(len(ds)))
    with pytest.raises(ValueError):
        make_loader(ds, batch_size=0)


def test_make_loader_grouped_batches_share_orientation():
    ds = VOCDetection(SAMPLE, splits="val")
    loader = make_loader(ds, batch_size=4, num_workers=0, group_by_aspect=True, collate_fn=padded_collate)
    n = 0
    for batch in loader:
        hw = batch["image_sizes"]
        assert len({bool(w >= h) for h, w in hw.tolist()}) == 1
        n += hw.shape[0]
    assert n == len(ds)


def test_len_of_a_grouped_loader_does_not_change_its_order():
    """len() counts the batches by running the sampler; it ran on the loader's seeded generator, so the same seed
    gave another order whenever something (a progress bar, an LR schedule) asked for the length first."""
    ds = VOCDetection(SAMPLE, splits="train")

    def first_batches(ask_len: bool):
        loader = make_loader(ds, batch_size=4, num_workers=0, group_by_aspect=True, seed=0)
        n = len(loader) if ask_len else None
        batches = list(loader.batch_sampler)
        assert n is None or n == len(batches)
        return batches[:3]
    assert first_batches(True) == first_batches(False)


@pytest.mark.slow
@pytest.mark.parametrize("collate", [detection_collate, functools.partial(padded_collate, stride=64)])
def test_two_workers_run_a_full_epoch(collate):
    ds = VOCDetection(SAMPLE, transforms=train_preset(96, dtype=None))  # labels 1..K
    loader = make_loader(ds, batch_size=16, num_workers=2, collate_fn=collate, multiprocessing_context="fork")
    ids: Counter[int] = Counter()
    objects = 0
    for batch in loader:
        if isinstance(batch, dict):
            assert batch["images"].shape[1:] == (3, 128, 128) and batch["images"].dtype == torch.uint8
            ids.update(batch["image_id"].tolist())
            objects += int(batch["mask"].sum())
            assert (batch["labels"][batch["mask"]] >= 1).all()
        else:
            images, targets = batch
            assert images.shape[1:] == (3, 96, 96)
            ids.update(int(t["image_id"]) for t in targets)
            objects += sum(t["boxes"].shape[0] for t in targets)
    assert sorted(ids) == sorted(ds.coco_ids) and set(ids.values()) == {1}
    assert 0.9 * ds.num_objects <= objects <= ds.num_objects  # only sanitized slivers may go


class _Varied(torch.utils.data.Dataset):
    """Samples with every kind of target entry: HWC-ordered pixels (like decode_image), tv_tensors with metadata,
    int/bool/float/0-d tensors, empty boxes, a large mask (shared-memory path) and a non-tensor value."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        gen = torch.Generator().manual_seed(i)
        h, w = self.sizes[i]
        img = tv_tensors.Image(torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).permute(2, 0, 1))
        n = i % 3
        target = make_target(torch.rand(n, 4, generator=gen) * 10, torch.arange(n), canvas_size=(h, w), image_id=i)
        target["masks"] = tv_tensors.Mask(torch.rand(n + 1, h, w, generator=gen) > 0.5)
        target["name"] = f"image-{i}"
        return img, target


def _assert_equal_batches(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_equal_batches(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_equal_batches(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        if a.numel() > 1:
            assert a.stride() == b.stride(), "the memory layout is kept"
        if isinstance(a, tv_tensors.BoundingBoxes):
            assert (a.format, a.canvas_size) == (b.format, b.canvas_size)
    else:
        assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [[(100, 90)] * 5, [(160, 150), (33, 20), (170, 140), (64, 64), (8, 9)]])
@pytest.mark.parametrize("collate", [detection_collate, functools.partial(padded_collate, stride=16)])
def test_worker_batches_equal_in_process_batches(sizes, collate):
    """What reaches the main process from workers (one pickle, small tensors as bytes, large ones in one
    shared-memory block) equals the in-process batch: values, dtypes, classes, metadata and memory layout."""
    ds = _Varied(sizes)
    kw = dict(batch_size=3, shuffle=False, collate_fn=collate)
    local = list(torch.utils.data.DataLoader(ds, num_workers=0, **kw))
    remote = list(torch.utils.data.DataLoader(ds, num_workers=2, multiprocessing_context="fork", **kw))
    assert len(local) == len(remote) == 2
    for a, b in zip(local, remote):
        _assert_equal_batches(a, b)
    if collate is detection_collate and len(set(sizes)) == 1:
        images = remote[0][0]
        assert images.is_shared() and images.permute(0, 2, 3, 1).is_contiguous(), "HWC order kept, no permute copy"


def test_detection_collate_stack_keeps_memory_layout():
    hwc = [tv_tensors.Image(torch.randint(0, 256, (6, 7, 3), dtype=torch.uint8).permute(2, 0, 1)) for _ in range(3)]
    images, _ = detection_collate([(im, {}) for im in hwc])
    assert torch.equal(images, torch.stack([im.as_subclass(torch.Tensor) for im in hwc]))
    assert images.permute(0, 2, 3, 1).is_contiguous()
    chw = [im.contiguous() for im in hwc]
    images, _ = detection_collate([(im, {}) for im in chw])
    assert images.is_contiguous() and torch.equal(images, torch.stack(chw))


@pytest.mark.parametrize("dtype, expected", [(torch.float32, torch.float32), (None, torch.uint8)])
def test_to_device_converts_uint8_images(dtype, expected):
    from datatools.datasets import to_device

    batch = [sample(8, 10, [[0, 0, 4, 4]], [1], value=255), sample(8, 10, [], [], value=51)]
    images, targets = to_device(*detection_collate(batch), "cpu", dtype=dtype)
    assert images.dtype == expected and images.shape == (2, 3, 8, 10)
    if dtype is not None:
        assert images[0].eq(1.0).all() and torch.allclose(images[1], torch.tensor(0.2))
    listed, _ = to_device([b[0] for b in batch], targets, "cpu", dtype=dtype)
    assert [x.dtype for x in listed] == [expected] * 2
    assert targets[0]["boxes"].tolist() == [[0, 0, 4, 4]] and isinstance(targets[0]["boxes"], tv_tensors.BoundingBoxes)


def test_aspect_groups_of_a_subset_or_concat_are_read_without_decoding():
    """random_split makes Subsets: they were iterated as a list of ratios, every image decoded, then numpy failed."""
    from torch.utils.data import ConcatDataset, Dataset, random_split

    from datatools.datasets import aspect_ratio_groups

    calls = []
    ds = VOCDetection(SAMPLE, image_set="val", transforms=lambda im, t: (calls.append(1), (im, t))[1])
    part, _ = random_split(ds, [0.75, 0.25], generator=torch.Generator().manual_seed(0))
    whole = aspect_ratio_groups(ds)
    assert aspect_ratio_groups(part) == [whole[i] for i in part.indices]
    assert aspect_ratio_groups(ConcatDataset([part, ds])) == [whole[i] for i in part.indices] + whole
    loader = make_loader(part, batch_size=4, num_workers=0, group_by_aspect=True)
    assert sum(len(b) for b in loader.batch_sampler) == len(part) and not calls

    class Plain(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise AssertionError("decoded")

    with pytest.raises(TypeError, match="aspect ratios"):
        aspect_ratio_groups(Plain())


@pytest.mark.parametrize("workers, persistent", [(0, None), (2, None), (2, False)])
def test_the_order_of_the_batches_is_the_seeds_with_persistent_workers_or_not(workers, persistent):
    """One generator drew both the order and the workers' base seed, which a persistent loader draws once and a
    non-persistent one every epoch: epochs 2 and later came in another order."""
    ds = VOCDetection(SAMPLE, image_set="val")
    ds = VOCDetection(SAMPLE, image_set="val", ids=list(ds.image_ids[:8]))
    loader = make_loader(ds, batch_size=4, num_workers=workers, persistent_workers=persistent, seed=5)
    got = [[int(t["image_id"]) for _, ts in loader for t in ts] for _ in range(3)]
    from torch.utils.data import RandomSampler

    order = RandomSampler(range(8), generator=torch.Generator().manual_seed(5))  # what seed=5 promises
    want = [[int(ds.coco_ids[i]) for i in order] for _ in range(3)]
    assert got == want and want[0] != want[1]


def test_boxes_in_another_format_are_read_as_their_format():
    """After v2.ConvertBoundingBoxFormat("CXCYWH"), Mosaic, padded_collate and make_target took the numbers as XYXY."""
    from torchvision.transforms import v2

    from datatools.datasets import Mosaic, make_target, padded_collate

    def sample(h, w, box, label):
        image = tv_tensors.Image(torch.zeros((3, h, w), dtype=torch.uint8))
        return image, make_target(torch.tensor([box], dtype=torch.float32), [label], canvas_size=(h, w))

    xyxy = [sample(100, 200, [10, 10, 190, 90], 1), sample(200, 100, [10, 10, 90, 190], 2),
            sample(50, 50, [5, 5, 45, 45], 3), sample(80, 80, [40, 40, 80, 80], 4)]
    cxcywh = [v2.ConvertBoundingBoxFormat("CXCYWH")(s) for s in xyxy]
    assert cxcywh[0][1]["boxes"].tolist() == [[100, 50, 180, 80]]
    a, b = Mosaic(64)(xyxy, center=(32, 32))[1], Mosaic(64)(cxcywh, center=(32, 32))[1]
    assert torch.equal(a["boxes"], b["boxes"]) and a["labels"].tolist() == b["labels"].tolist() == [1, 2, 3]
    pa, pb = padded_collate(xyxy[:1]), padded_collate(cxcywh[:1])
    assert pb["boxes"][0].tolist() == [[10, 10, 190, 90]] and torch.equal(pa["targets"], pb["targets"])
    t = make_target(cxcywh[0][1]["boxes"], [1], canvas_size=(100, 200))
    assert t["boxes"].tolist() == [[10, 10, 190, 90]] and float(t["area"][0]) == 180 * 80


def test_make_loader_takes_a_sampler_an_iterable_dataset_and_a_generator():
    from torch.utils.data import IterableDataset, SequentialSampler

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(6))

    def loaded(data, **kw):
        return [list(b) for b in make_loader(data, batch_size=2, num_workers=0, collate_fn=list, **kw)]

    assert loaded(list(range(6)), shuffle=False, sampler=SequentialSampler(range(6))) == [[0, 1], [2, 3], [4, 5]]
    assert loaded(Stream(), shuffle=False) == [[0, 1], [2, 3], [4, 5]]
    orders = [loaded(list(range(6)), generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert orders[0] != orders[1]


class _Draw(torch.utils.data.Dataset):
    """What a random v2 transform sees in a worker: a draw from torch's generator there."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return float(torch.rand(()))


def test_each_rank_draws_its_own_augmentation():
    """Every rank passes one seed (its DistributedSampler needs it): the workers of every rank drew the same numbers,
    so two GPUs flipped, cropped and mosaicked their shards alike (the trainer's own per-rank generator only set an
    order the DistributedSampler ignores)."""
    def draws(rank, seed=7):
        loader = make_loader(_Draw(), batch_size=2, num_workers=2, distributed=True, num_replicas=2, rank=rank,
                             seed=seed, collate_fn=list, persistent_workers=False)
        return [x for b in loader for x in b]

    first = draws(0)
    assert first != draws(1)
    assert first == draws(0)  # still the seed's: reproducible


def test_make_loader_takes_the_callers_batch_sampler():
    """A class-balanced batch sampler of the user's own: DataLoader refused the batch_size and sampler make_loader
    added (batch_sampler is mutually exclusive with them); a sampler with distributed=True gave a TypeError."""
    from torch.utils.data import BatchSampler, SequentialSampler

    batches = BatchSampler(SequentialSampler(range(6)), 4, drop_last=False)
    loader = make_loader(list(range(6)), num_workers=0, collate_fn=list, batch_sampler=batches)
    assert [list(b) for b in loader] == [[0, 1, 2, 3], [4, 5]]
    with pytest.raises(ValueError, match="shards itself"):
        make_loader(list(range(6)), num_workers=0, distributed=True, num_replicas=2, rank=0,
                    sampler=SequentialSampler(range(6)))
