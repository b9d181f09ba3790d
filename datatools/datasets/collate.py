"""Collate functions: turn a list of ``(image, target)`` samples into a batch.

* :func:`detection_collate` for torchvision detection models (Faster R-CNN, RetinaNet, FCOS, SSD), which take a list
  of images of any size and a list of target dicts.
* :func:`padded_collate` for single-stage models that need one dense tensor: images padded to a common size and boxes
  padded to a common count with a validity mask, plus a YOLO-style ``(batch_idx, cls, cx, cy, w, h)`` table.

Both are module-level functions (configure :func:`padded_collate` with ``functools.partial``), so they pickle for
``spawn`` DataLoader workers.

Inside a DataLoader worker both build the batch for a cheap trip to the main process: stacked images are written
straight into shared memory (no extra copy), and the batch is sent as ONE pickle in which the small tensors (boxes,
labels, ids: a few dozen per batch) travel as bytes, and the large ones share one shared-memory block. PyTorch's
default sends every tensor as its own shared-memory file with its own file-descriptor hand-over (a socket connection
each, about 0.2 ms); with ~8 tensors per target that cost more than decoding the images. ``benchmarks/bench_loader.py``
measured flip+resize with 2 workers at 630 images/s with this transport against 316 with the default one. The main
process receives plain tuples, lists, dicts and tensors (tv_tensors keep their class and metadata), the same as with
``num_workers=0``. Only public API: ``share_memory_()``, ``torch.frombuffer`` and pickling through ``__reduce__``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch.utils.data import get_worker_info
from torchvision.ops import box_convert

from datatools.datasets.detection import as_xyxy

__all__ = ["detection_collate", "padded_collate"]

#: Tensors up to this many bytes travel from workers inside the pickle stream; larger ones through shared memory.
SMALL_TENSOR_BYTES = 1 << 16
_ALIGN = 64


# ------------------------------------------------------------------------------------------------------ transport

class _Ref:
    """Placeholder for a tensor in a batch's pickled skeleton: ``kind`` 0 = small (bytes), 1 = direct, 2 = packed."""
    __slots__ = ("kind", "index")

    def __init__(self, kind: int, index: int) -> None:
        self.kind, self.index = kind, index

    def __reduce__(self):
        return _Ref, (self.kind, self.index)


def _shared_empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A tensor in shared memory to build a batch in (what ``default_collate`` does in workers), so it reaches the
    main process as a shared-memory handle, not a copy. ``share_memory_()`` of an empty tensor copies its few
    uninitialized bytes into the new block: as fast as torch's private ``_new_shared`` (2.3-3.4 ms both, for an 8 x
    512 px uint8 batch, filled)."""
    return torch.empty(tuple(shape), dtype=dtype).share_memory_()


def _dense_order(t: torch.Tensor) -> list[int] | None:
    """The dimension order in which ``t``'s memory is contiguous (``[0, 1, 2]`` for CHW, ``[1, 2, 0]`` for the
    HWC pixels that ``decode_image`` returns as a permuted view), or ``None`` when it has gaps or overlaps."""
    order = sorted(range(t.ndim), key=lambda d: (-t.stride(d), d))
    return order if t.permute(order).is_contiguous() else None


def _batch_empty(n: int, shape: Sequence[int], dtype: torch.dtype, order: list[int] | None, *, shared: bool
                 ) -> torch.Tensor:
    """An empty ``(n, *shape)`` batch whose items keep the memory order ``order`` (see :func:`_dense_order`), so
    copying each image in is a plain memory copy. Copying HWC-ordered uint8 pixels into a CHW-contiguous batch (what
    ``torch.stack`` does) is a strided permute: 4 ms for eight 512 px images, more than resizing them."""
    order = list(order) if order is not None else list(range(len(shape)))
    stored = [n] + [shape[d] for d in order]
    base = _shared_empty(stored, dtype) if shared else torch.empty(stored, dtype=dtype)
    return base.permute([0] + [order.index(d) + 1 for d in range(len(shape))])


def _stack(images: list[torch.Tensor], *, shared: bool) -> torch.Tensor:
    """``torch.stack`` that keeps the images' memory layout (and writes into shared memory in workers)."""
    first = images[0]
    order = _dense_order(first)
    if not shared and (order is None or order == sorted(order)):
        return torch.stack(images)
    out = _batch_empty(len(images), first.shape, first.dtype, order, shared=shared)
    for i, im in enumerate(images):
        out[i].copy_(im)
    return out


def _encode(obj: Any, small: list, large: list) -> Any:
    if isinstance(obj, torch.Tensor):
        if obj.device.type != "cpu" or obj.requires_grad or obj.is_sparse:
            return obj
        state = dict(obj.__dict__) if type(obj) is not torch.Tensor else None
        plain = obj.as_subclass(torch.Tensor)
        nbytes = plain.numel() * plain.element_size()
        if nbytes <= SMALL_TENSOR_BYTES:
            order = _dense_order(plain) or list(range(plain.ndim))  # keep the memory layout
            stored = plain.permute(order).contiguous()
            if stored.dtype == torch.bfloat16:  # numpy has no bfloat16
                stored = stored.view(torch.int16)
            small.append((type(obj), state, plain.dtype, tuple(stored.shape), order, stored.numpy().tobytes()))
            return _Ref(0, len(small) - 1)
        large.append((type(obj), state, plain))
        return _Ref(1, len(large) - 1)
    t = type(obj)
    if t is tuple or t is _WorkerTuple:
        return tuple(_encode(x, small, large) for x in obj)
    if t is list:
        return [_encode(x, small, large) for x in obj]
    if t is dict or t is _WorkerDict:
        return {k: _encode(v, small, large) for k, v in obj.items()}
    return obj


def _pack(batch: Any) -> tuple:
    small: list = []
    large: list = []
    skeleton = _encode(batch, small, large)
    # Large tensors already in shared memory (stacked images) go as they are; the rest share ONE new block, so a
    # batch costs one or two file-descriptor hand-overs however many tensors it holds.
    direct, packed, meta, total = [], [], [], 0
    for cls, state, t in large:
        if t.is_shared() or len(large) == 1:
            direct.append((cls, state, t))
            meta.append((1, len(direct) - 1))
        else:
            nbytes = t.numel() * t.element_size()
            order = _dense_order(t) or list(range(t.ndim))  # stored in the tensor's own memory order
            packed.append((cls, state, t.dtype, tuple(t.shape), order, total, t))
            meta.append((2, len(packed) - 1))
            total += -(-nbytes // _ALIGN) * _ALIGN
    block = None
    if packed:
        block = _shared_empty((total,), torch.uint8)
        for _, _, dtype, shape, order, off, t in packed:
            _block_view(block, dtype, shape, order, off).copy_(t)
    return (skeleton, small, [(c, s, t) for c, s, t in direct],
            [(c, s, d, sh, o, off) for c, s, d, sh, o, off, _ in packed], block, meta)


def _block_view(block: torch.Tensor, dtype: torch.dtype, shape: Sequence[int], order: list[int], offset: int
                ) -> torch.Tensor:
    """The tensor of ``shape`` stored at ``offset`` of a shared block in memory order ``order``."""
    n = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    stored = block[offset:offset + n].view(dtype).view([shape[d] for d in order])
    return stored.permute([order.index(d) for d in range(len(shape))])


def _wrap(t: torch.Tensor, cls: type, state: dict | None) -> torch.Tensor:
    if cls is not torch.Tensor:
        t = t.as_subclass(cls)
        if state:
            t.__dict__.update(state)
    return t


def _unpack(skeleton: Any, small: list, direct: list, packed: list, block: torch.Tensor | None, meta: list) -> Any:
    def tensor(ref: _Ref) -> torch.Tensor:
        if ref.kind == 0:
            cls, state, dtype, shape, order, data = small[ref.index]
            if not data:
                t = torch.empty(shape, dtype=dtype)
            elif dtype == torch.bfloat16:
                t = torch.frombuffer(bytearray(data), dtype=torch.int16).view(torch.bfloat16).view(shape)
            else:
                t = torch.frombuffer(bytearray(data), dtype=dtype).view(shape)
            return _wrap(t.permute([order.index(d) for d in range(len(order))]), cls, state)
        where, i = meta[ref.index]
        if where == 1:
            cls, state, t = direct[i]
            return _wrap(t, cls, state)
        cls, state, dtype, shape, order, off = packed[i]
        return _wrap(_block_view(block, dtype, shape, order, off), cls, state)

    def walk(obj: Any) -> Any:
        if type(obj) is _Ref:
            return tensor(obj)
        if type(obj) is tuple:
            return tuple(walk(x) for x in obj)
        if type(obj) is list:
            return [walk(x) for x in obj]
        if type(obj) is dict:
            return {k: walk(v) for k, v in obj.items()}
        return obj

    return walk(skeleton)


class _WorkerTuple(tuple):
    """A batch made in a DataLoader worker: a plain tuple there, rebuilt as a plain tuple in the main process."""
    __slots__ = ()

    def __reduce__(self):
        return _unpack, _pack(self)


class _WorkerDict(dict):
    """A dict batch made in a DataLoader worker (see :class:`_WorkerTuple`)."""

    def __reduce__(self):
        return _unpack, _pack(self)


def detection_collate(batch: Sequence[tuple[Any, dict]], *, stack: bool | None = None
                      ) -> tuple[torch.Tensor | list[torch.Tensor], list[dict]]:
    """``(images, targets)`` as torchvision detection models expect: ``model(images, targets)``.

    ``images`` is a stacked ``(B, C, H, W)`` tensor when every image has the same shape (``stack=None``, the
    default) and a list of ``(C, H, W)`` tensors otherwise. The stacked tensor keeps the images' memory order:
    ``decode_image`` returns HWC-ordered pixels, so the batch is ``(B, C, H, W)`` in ``channels_last`` memory format
    (what convolutions prefer; ``.contiguous()`` on the GPU if something needs NCHW-contiguous); ``stack=True``
    requires the same shape, ``stack=False`` always gives a list. ``targets`` is the list of target dicts, unchanged.
    """
    if not batch:
        raise ValueError("empty batch")
    images = [b[0] for b in batch]
    targets = [b[1] for b in batch]
    same = all(isinstance(im, torch.Tensor) and im.shape == images[0].shape for im in images)
    if stack is True and not same:
        raise ValueError(f"cannot stack images of different shapes: {sorted({tuple(im.shape) for im in images})}")
    in_worker = get_worker_info() is not None
    if (stack is None and same) or stack is True:
        plain = [im.as_subclass(torch.Tensor) for im in images]
        if plain[0].device.type == "cpu" and all(im.dtype == plain[0].dtype for im in plain):
            out = _stack(plain, shared=in_worker)
        else:
            out = torch.stack(plain)
        return (_WorkerTuple((out, targets)) if in_worker else (out, targets))
    images = [torch.as_tensor(im) for im in images]
    return _WorkerTuple((images, targets)) if in_worker else (images, targets)


def padded_collate(batch: Sequence[tuple[Any, dict]], *, stride: int = 32, fill: float = 0,
                   label_pad: int = -1) -> dict[str, torch.Tensor]:
    """One dense batch for single-stage detectors.

    Images are placed at the top-left of a canvas ``(B, C, H_pad, W_pad)`` filled with ``fill``, where ``H_pad`` and
    ``W_pad`` are the largest height and width in the batch rounded up to a multiple of ``stride``. Placing at the
    top-left means boxes do not move.

    Returns a dict:

    * ``images``: ``(B, C, H_pad, W_pad)``, the images' dtype;
    * ``image_sizes``: int64 ``(B, 2)``, each image's ``(H, W)`` before padding;
    * ``boxes``: float32 ``(B, N_max, 4)`` XYXY pixels, zeros where padded;
    * ``labels``: int64 ``(B, N_max)``, ``label_pad`` where padded;
    * ``mask``: bool ``(B, N_max)``, True for real boxes;
    * ``targets``: float32 ``(M, 6)`` YOLO-style rows ``(batch_idx, cls, cx, cy, w, h)`` for all M boxes, normalized
      by the padded size ``(W_pad, H_pad)`` (the frame the network sees);
    * ``image_id``: int64 ``(B,)``.
    """
    if not batch:
        raise ValueError("empty batch")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, not {stride}")
    images = [torch.as_tensor(b[0]) for b in batch]
    targets = [b[1] for b in batch]
    channels = {im.shape[0] for im in images}
    if len(channels) != 1:
        raise ValueError(f"images have different channel counts: {sorted(channels)}")
    h_pad = math.ceil(max(im.shape[-2] for im in images) / stride) * stride
    w_pad = math.ceil(max(im.shape[-1] for im in images) / stride) * stride
    in_worker = get_worker_info() is not None
    shape = (len(images), images[0].shape[0], h_pad, w_pad)
    if images[0].device.type == "cpu":  # same memory order as the images: fast copies (see _batch_empty)
        out = _batch_empty(shape[0], shape[1:], images[0].dtype, _dense_order(images[0]), shared=in_worker)
        out.fill_(fill)
    else:
        out = images[0].new_full(shape, fill)
    sizes = torch.zeros(len(images), 2, dtype=torch.int64)
    for i, im in enumerate(images):
        h, w = im.shape[-2:]
        out[i, :, :h, :w] = im
        sizes[i, 0], sizes[i, 1] = h, w
    counts = [int(t["boxes"].shape[0]) for t in targets]
    n_max = max(counts)
    boxes = torch.zeros(len(batch), n_max, 4, dtype=torch.float32)
    labels = torch.full((len(batch), n_max), label_pad, dtype=torch.int64)
    mask = torch.zeros(len(batch), n_max, dtype=torch.bool)
    rows = []
    scale = torch.tensor([w_pad, h_pad, w_pad, h_pad], dtype=torch.float32)
    for i, (t, n) in enumerate(zip(targets, counts)):
        if not n:
            continue
        b = as_xyxy(t["boxes"]).to(torch.float32)
        boxes[i, :n] = b
        labels[i, :n] = torch.as_tensor(t["labels"]).to(torch.int64)
        mask[i, :n] = True
        cxcywh = box_convert(b, "xyxy", "cxcywh")
        rows.append(torch.cat([torch.full((n, 1), float(i)), labels[i, :n, None].to(torch.float32), cxcywh / scale], 1))
    table = torch.cat(rows) if rows else torch.zeros(0, 6, dtype=torch.float32)
    image_id = torch.tensor([int(t["image_id"]) if "image_id" in t else -1 for t in targets], dtype=torch.int64)
    batch = {"images": out, "image_sizes": sizes, "boxes": boxes, "labels": labels, "mask": mask, "targets": table,
             "image_id": image_id}
    return _WorkerDict(batch) if in_worker else batch
