"""Resizing that keeps the aspect ratio, and its inverse for predictions.

* :class:`Letterbox`: resize keeping the aspect ratio, pad to a fixed size, and record ``target["letterbox"]`` =
  ``(sx, sy, pad_left, pad_top)`` so :func:`boxes_to_original` can map predictions back;
* :class:`KeepAspectResize`: torchvision-detection-style resize (shorter side to ``min_size``, longer side capped at
  ``max_size``, no padding), recording ``target["letterbox"]`` = ``(sx, sy, 0, 0)`` the same way.

Both are plain ``torchvision.transforms.v2.Transform`` subclasses (``make_params`` + ``transform``): every image, box
and mask in the sample moves through torchvision's own ``resize`` and ``pad``.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torchvision import ops as box_ops, tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from datatools.datasets.transforms.sanitize import target_of

__all__ = ["KEEP_ASPECT_MAX_RATIO", "KeepAspectResize", "Letterbox", "boxes_to_original", "keep_aspect_max_size",
           "keep_aspect_params", "letterbox_params", "parse_size"]

#: The longer-side cap of ``mode="keep-aspect"`` relative to the shorter side: torchvision's detection default
#: (``min_size=800, max_size=1333``).
KEEP_ASPECT_MAX_RATIO = 1333 / 800


def parse_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (a square) or a pair; ``ValueError`` unless both are positive."""
    if isinstance(size, int):
        h = w = size
    else:
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), not {size!r}")
        h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, not {size!r}")
    return h, w


def _leaves(obj: Any) -> Iterator[Any]:
    """The leaves of a sample made of tuples, lists and dicts (what v2 transforms take), in order."""
    if isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _leaves(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _leaves(x)
    else:
        yield obj


def _sample_size(flat: list[Any]) -> tuple[int, int]:
    """``(H, W)`` of the sample: its image, video, mask or boxes' canvas first, else a plain 2-D+ tensor or PIL
    image (a plain tensor is the image only when the sample holds no tv_tensors image, as in v2)."""
    for x in flat:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask)):
            return int(x.shape[-2]), int(x.shape[-1])
        if isinstance(x, tv_tensors.BoundingBoxes):
            return tuple(x.canvas_size)  # type: ignore[return-value]
    for x in flat:
        if type(x) is torch.Tensor and x.ndim >= 2:
            return int(x.shape[-2]), int(x.shape[-1])
        if hasattr(x, "size") and hasattr(x, "mode"):  # PIL
            return x.size[1], x.size[0]
    raise TypeError("no image, mask or boxes found in the sample")


def letterbox_params(image_size: tuple[int, int], size: int | Sequence[int], *, center: bool = True,
                     scaleup: bool = True) -> dict[str, Any]:
    """What :class:`Letterbox` does to an image of ``image_size`` ``(H, W)``.

    Returns ``new_size`` ``(h, w)`` after resizing, ``scale`` ``(sx, sy)`` (``w / W``, ``h / H``: what boxes are
    multiplied by), and ``padding`` ``[left, top, right, bottom]``. A box ``b`` becomes ``b * s + (left, top)``.
    """
    th, tw = parse_size(size)
    h, w = image_size
    if h < 1 or w < 1:
        raise ValueError(f"cannot letterbox an empty image of size {image_size}")
    r = min(th / h, tw / w)
    if not scaleup:
        r = min(r, 1.0)
    nh, nw = max(1, min(th, round(h * r))), max(1, min(tw, round(w * r)))
    ph, pw = th - nh, tw - nw
    left, top = (pw // 2, ph // 2) if center else (0, 0)
    return {"new_size": (nh, nw), "scale": (nw / w, nh / h), "padding": [left, top, pw - left, ph - top]}


class Letterbox(v2.Transform):
    """Resize keeping the aspect ratio so the image fits ``size``, then pad to exactly ``size`` with ``fill``.

    Boxes and masks move with the image: ``box * (sx, sy) + (pad_left, pad_top)``. When the sample is
    ``(image, target_dict)`` (or a dict) the target gets ``target["letterbox"] = tensor([sx, sy, pad_left, pad_top])``
    for :func:`boxes_to_original`. Use it as the last geometric step of an eval pipeline, or instead of ``Resize`` in
    training to keep shapes undistorted. ``center=False`` pads only right and bottom; ``scaleup=False`` never enlarges.
    """

    def __init__(self, size: int | Sequence[int], *, fill: float = 114, center: bool = True,
                 scaleup: bool = True, antialias: bool = True) -> None:
        super().__init__()
        self.size = parse_size(size)
        self.fill = fill
        self.center = center
        self.scaleup = scaleup
        self.antialias = antialias

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return letterbox_params(_sample_size(flat_inputs), self.size, center=self.center, scaleup=self.scaleup)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = F.resize(inpt, size=list(params["new_size"]), antialias=self.antialias)
        if any(params["padding"]):
            is_image = isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) or type(inpt) is torch.Tensor
            out = F.pad(out, padding=params["padding"], fill=self.fill if is_image else 0)
        return out

    def forward(self, *inputs: Any) -> Any:
        out = super().forward(*inputs)
        target = target_of(out)  # a new dict: the caller's target is not modified
        if target is not None:
            # make_params is deterministic: the same values the transform just used
            params = self.make_params(list(_leaves(inputs)))
            (sx, sy), (left, top) = params["scale"], params["padding"][:2]
            target["letterbox"] = torch.tensor([sx, sy, left, top], dtype=torch.float64)
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}, center={self.center}, scaleup={self.scaleup}"


def keep_aspect_max_size(min_size: int) -> int:
    """The default longer-side cap for a shorter side of ``min_size``: ``round(min_size * 1333 / 800)``."""
    return int(round(min_size * KEEP_ASPECT_MAX_RATIO))


def keep_aspect_params(image_size: tuple[int, int], min_size: int, max_size: int) -> dict[str, Any]:
    """What :class:`KeepAspectResize` does to an image of ``image_size`` ``(H, W)``: the scale
    ``min(min_size / shorter side, max_size / longer side)`` (torchvision's ``GeneralizedRCNNTransform`` rule), no
    padding. Same keys as :func:`letterbox_params`."""
    h, w = image_size
    if h < 1 or w < 1:
        raise ValueError(f"cannot resize an empty image of size {image_size}")
    r = min(min_size / min(h, w), max_size / max(h, w))
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return {"new_size": (nh, nw), "scale": (nw / w, nh / h), "padding": [0, 0, 0, 0]}


class KeepAspectResize(Letterbox):
    """Resize so the shorter side is ``min_size`` and the longer side at most ``max_size``, keeping the aspect ratio
    and padding nothing: what torchvision's detection references train with. Images of one batch then differ in
    size; the detector's own batching pads them to the largest (use aspect-ratio grouping so that costs little).

    Like :class:`Letterbox` it records ``target["letterbox"] = (sx, sy, 0, 0)``, so :func:`boxes_to_original` maps
    predictions back. Give the model ``min_size``/``max_size`` equal to these so it does not resize again.
    """

    def __init__(self, min_size: int, max_size: int | None = None, *, antialias: bool = True) -> None:
        if int(min_size) < 1:
            raise ValueError(f"min_size must be positive, not {min_size!r}")
        max_size = keep_aspect_max_size(int(min_size)) if max_size is None else int(max_size)
        if max_size < int(min_size):
            raise ValueError(f"max_size ({max_size}) must be >= min_size ({min_size})")
        super().__init__(int(min_size), antialias=antialias)
        self.min_size = int(min_size)
        self.max_size = max_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return keep_aspect_params(_sample_size(flat_inputs), self.min_size, self.max_size)

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}, max_size={self.max_size}"


def boxes_to_original(boxes: torch.Tensor, target: dict, *, canvas_size: tuple[int, int] | None = None,
                      clip: bool = True) -> torch.Tensor:
    """Map XYXY ``boxes`` (e.g. predictions) from the transformed image back to the original image.

    Uses ``target["letterbox"]`` when present (set by :class:`Letterbox`), else the ratio of ``target["orig_size"]``
    to the transformed size (``canvas_size``, or the canvas of ``target["boxes"]``), which is what ``Resize`` did.
    Valid for deterministic geometry, i.e. :func:`~datatools.datasets.transforms.eval_preset`; random crops and flips
    cannot be undone from the target. Returns a plain float tensor clipped to the original image unless
    ``clip=False``.
    """
    b = torch.as_tensor(boxes).as_subclass(torch.Tensor).to(torch.float64).reshape(-1, 4)
    oh, ow = (int(v) for v in target["orig_size"])
    if "letterbox" in target:
        sx, sy, left, top = (float(v) for v in target["letterbox"])
        b = (b - b.new_tensor([left, top, left, top])) / b.new_tensor([sx, sy, sx, sy])
    else:
        if canvas_size is None:
            tb = target.get("boxes")
            if not isinstance(tb, tv_tensors.BoundingBoxes):
                raise ValueError("pass canvas_size: the target has neither 'letterbox' nor BoundingBoxes")
            canvas_size = tuple(tb.canvas_size)
        ch, cw = canvas_size
        b = b * b.new_tensor([ow / cw, oh / ch, ow / cw, oh / ch])
    if clip:
        b = box_ops.clip_boxes_to_image(b, (oh, ow))
    return b.to(torch.float32)
