"""Box-aware transforms for detection, built on torchvision.transforms.v2.

Use :func:`train_preset` and :func:`eval_preset` as the ``transforms=`` of a
:class:`~datatools.datasets.DetectionDataset`. They take and return ``(image, target)`` with ``target["boxes"]`` a
``tv_tensors.BoundingBoxes``; every v2 transform composes with them.

Only what v2 lacks is written here, as transforms that move boxes together with the image:

* :class:`Letterbox`: resize keeping the aspect ratio, pad to a fixed size, and record ``target["letterbox"]`` =
  ``(sx, sy, pad_left, pad_top)`` so :func:`boxes_to_original` can map predictions back;
* :class:`KeepAspectResize`: torchvision-detection-style resize (shorter side to ``min_size``, longer side capped at
  ``max_size``, no padding), recording ``target["letterbox"]`` = ``(sx, sy, 0, 0)`` the same way;
* :class:`Mosaic` (4 images into one, boxes clipped to their visible part and sanitized) and :class:`MosaicDataset`,
  which feeds it, with a probability and a switch to turn it off for the last epochs;
* :class:`SanitizeBoxes`: ``SanitizeBoundingBoxes`` that also filters ``area``, ``iscrowd`` and ``difficult`` (the
  stock one filters only ``labels``, which would leave those misaligned with the boxes).

Cheap work first: the presets resize before the photometric distortion and the flip, so colour work runs on uint8
pixels at the training size rather than on the full-size image, and convert to float last.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = ["PER_BOX_KEYS", "ClampBoundingBoxes", "Letterbox", "Mosaic", "MosaicDataset", "PhotometricDistort",
           "KEEP_ASPECT_MAX_RATIO", "KeepAspectResize", "RandomHorizontalFlip", "Resize", "SanitizeBoxes", "ToDtype",
           "boxes_to_original", "eval_preset", "keep_aspect_max_size", "keep_aspect_params", "letterbox_params",
           "per_box_fields", "train_preset"]

#: Target keys holding one value per box; they are filtered together with the boxes.
PER_BOX_KEYS = ("labels", "area", "iscrowd", "difficult")


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), not {size!r}")
        h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, not {size!r}")
    return h, w


def _target_of(inputs: Any) -> dict | None:
    if isinstance(inputs, dict):
        return inputs
    if isinstance(inputs, (tuple, list)) and len(inputs) >= 2 and isinstance(inputs[1], dict):
        return inputs[1]
    return None


def per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...] | None:
    """``labels_getter`` for ``SanitizeBoundingBoxes``: every per-box tensor of the target (see :data:`PER_BOX_KEYS`).

    A module-level function (not a lambda) so that transforms using it pickle for ``spawn`` workers.
    """
    target = _target_of(inputs)
    if target is None:
        return None
    return tuple(target[k] for k in PER_BOX_KEYS if isinstance(target.get(k), torch.Tensor)) or None


_PASSTHROUGH = (int, float, str, bool, type(None))


def _split_sample(inputs: tuple) -> tuple[tv_tensors.Image, dict, list[str]] | None:
    """``(image, target, keys of the target's tv_tensors)`` when ``inputs`` is a sample as the datasets return it
    (a ``tv_tensors.Image`` and a flat dict of tensors and scalars), else ``None``."""
    if len(inputs) == 2:
        image, target = inputs
    elif len(inputs) == 1 and type(inputs[0]) is tuple and len(inputs[0]) == 2:
        image, target = inputs[0]
    else:
        return None
    if type(image) is not tv_tensors.Image or type(target) is not dict:
        return None
    keys = []
    for k, v in target.items():
        if isinstance(v, tv_tensors.TVTensor):
            keys.append(k)
        elif not (type(v) is torch.Tensor or isinstance(v, _PASSTHROUGH)):
            return None
    return image, target, keys


def _takes(types: tuple, x: Any) -> bool:
    return any(isinstance(x, t) if isinstance(t, type) else t(x) for t in types)


class _FastSample:
    """Mixin for v2 transforms: the same ``check_inputs``/``make_params``/``transform`` as the parent, called directly
    on the datasets' ``(Image, dict)`` samples instead of through ``tree_flatten``/``tree_unflatten`` and the per-leaf
    dispatch of ``Transform.forward``, which cost more than the flip itself on a 512 px uint8 image. Any other input
    goes through the parent's ``forward`` unchanged. Outputs and RNG draws are identical (tested)."""

    def _fast(self, image: tv_tensors.Image, target: dict, keys: list[str]) -> tuple[Any, dict, dict]:
        types = self._transformed_types  # type: ignore[attr-defined]
        keys = [k for k in keys if _takes(types, target[k])]
        flat = ([image] if _takes(types, image) else []) + [target[k] for k in keys]
        params = self.make_params(flat)  # type: ignore[attr-defined]
        out = dict(target)
        for k in keys:
            out[k] = self.transform(target[k], params)  # type: ignore[attr-defined]
        if flat and flat[0] is image:
            image = self.transform(image, params)  # type: ignore[attr-defined]
        return image, out, params

    def forward(self, *inputs: Any) -> Any:
        parts = _split_sample(inputs)
        if parts is None:
            return super().forward(*inputs)  # type: ignore[misc]
        image, target, keys = parts
        self.check_inputs([image, *(target[k] for k in keys)])  # type: ignore[attr-defined]
        if isinstance(self, v2.RandomHorizontalFlip) and torch.rand(1) >= self.p:  # _RandomApplyTransform's draw
            return image, target
        image, target, _ = self._fast(image, target, keys)
        return image, target


def _plain_xyxy(x: Any) -> bool:
    """Whether ``x`` is float32 XYXY ``BoundingBoxes`` on the CPU, the case the numpy box kernels below handle.

    The boxes of one image are a handful of numbers: numpy does the few element-wise steps in about 1 us each where
    a torch op costs 5-10 us, and the results are the same IEEE float32 operations (tested against torchvision)."""
    return (type(x) is tv_tensors.BoundingBoxes and x.format is tv_tensors.BoundingBoxFormat.XYXY and x.ndim == 2
            and x.dtype == torch.float32 and x.device.type == "cpu" and not x.requires_grad)


def _rewrap(a: np.ndarray, like: tv_tensors.BoundingBoxes) -> tv_tensors.BoundingBoxes:
    out = torch.from_numpy(a).as_subclass(tv_tensors.BoundingBoxes)
    out.__dict__.update(like.__dict__)  # format, canvas_size, clamping_mode
    return out


class Resize(_FastSample, v2.Resize):
    """``torchvision.transforms.v2.Resize`` with a fast path for ``(Image, target_dict)`` samples (same results)."""


class RandomHorizontalFlip(_FastSample, v2.RandomHorizontalFlip):
    """``torchvision.transforms.v2.RandomHorizontalFlip`` with a fast path for ``(Image, target_dict)`` samples (same
    results and random draws)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not _plain_xyxy(inpt):
            return super().transform(inpt, params)
        a = inpt.as_subclass(torch.Tensor).numpy()
        w = np.float32(inpt.canvas_size[1])
        out = a.copy()
        out[:, 0] = w - a[:, 2]  # == -(x2 - w), torchvision's float32 arithmetic
        out[:, 2] = w - a[:, 0]
        return _rewrap(out, inpt)


class ClampBoundingBoxes(_FastSample, v2.ClampBoundingBoxes):
    """``torchvision.transforms.v2.ClampBoundingBoxes`` with a fast path for ``(Image, target_dict)`` samples."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        mode = inpt.clamping_mode if self.clamping_mode == "auto" and isinstance(inpt, tv_tensors.BoundingBoxes) \
            else self.clamping_mode
        if not _plain_xyxy(inpt) or mode not in ("soft", "hard"):  # the two are the same for axis-aligned boxes
            return super().transform(inpt, params)
        h, w = inpt.canvas_size
        hi = np.array([w, h, w, h], dtype=np.float32)
        return _rewrap(np.minimum(np.maximum(inpt.as_subclass(torch.Tensor).numpy(), np.float32(0)), hi), inpt)


class ToDtype(_FastSample, v2.ToDtype):
    """``torchvision.transforms.v2.ToDtype`` with a fast path for ``(Image, target_dict)`` samples."""


class SanitizeBoxes(v2.SanitizeBoundingBoxes):
    """Remove boxes smaller than ``min_size`` (or with less area than ``min_area``) together with their labels,
    areas, crowd and difficult flags and masks.

    Put it last among the geometric transforms (after ``ClampBoundingBoxes``), and always after ``RandomIoUCrop``,
    as torchvision's docs require. Pass ``labels_getter`` to override which target entries are filtered.
    """

    def __init__(self, min_size: float = 1.0, min_area: float = 1.0, labels_getter=per_box_fields) -> None:
        super().__init__(min_size=min_size, min_area=min_area, labels_getter=labels_getter)

    def forward(self, *inputs: Any) -> Any:
        # Fast path for the datasets' own (image, target) samples with XYXY boxes: the same mask as torchvision's,
        # without flattening the sample, and no copies at all when every box is valid (the common case).
        sample = inputs if len(inputs) > 1 else inputs[0]
        target = _target_of(sample)
        boxes = target.get("boxes") if target is not None else None
        if (self.labels_getter is not per_box_fields or not isinstance(sample, tuple) or len(sample) != 2
                or not isinstance(boxes, tv_tensors.BoundingBoxes) or boxes.format != tv_tensors.BoundingBoxFormat.XYXY
                or boxes.ndim != 2):
            return super().forward(*inputs)
        b = boxes.as_subclass(torch.Tensor)
        h, w = boxes.canvas_size
        if _plain_xyxy(boxes):  # numpy: a few boxes, ~10 element-wise steps (see _plain_xyxy)
            a = b.numpy()
            ws, hs = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
            lo = np.float32(self.min_size)
            valid_np = ((ws >= lo) & (hs >= lo) & (ws * hs >= np.float32(self.min_area)) & (a >= 0).all(axis=-1)
                        & (a[:, 0] <= w) & (a[:, 2] <= w) & (a[:, 1] <= h) & (a[:, 3] <= h))
            if valid_np.all():
                return sample
            valid = torch.from_numpy(valid_np)
        else:
            ws, hs = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            valid = ((ws >= self.min_size) & (hs >= self.min_size) & (ws * hs >= self.min_area)
                     & (b >= 0).all(dim=-1) & (b[:, 0] <= w) & (b[:, 2] <= w) & (b[:, 1] <= h) & (b[:, 3] <= h))
            if bool(valid.all()):
                return sample
        n = b.shape[0]
        out = {}
        for k, v in target.items():
            if isinstance(v, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) or (
                    k in PER_BOX_KEYS and isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n):
                v = tv_tensors.wrap(v[valid], like=v) if isinstance(v, tv_tensors.TVTensor) else v[valid]
            out[k] = v
        return sample[0], out


def _sample_size(flat: list[Any]) -> tuple[int, int]:
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
    th, tw = _size2(size)
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


class Letterbox(_FastSample, v2.Transform):
    """Resize keeping the aspect ratio so the image fits ``size``, then pad to exactly ``size`` with ``fill``.

    Boxes and masks move with the image: ``box * (sx, sy) + (pad_left, pad_top)``. When the sample is
    ``(image, target_dict)`` the target gets ``target["letterbox"] = tensor([sx, sy, pad_left, pad_top])`` for
    :func:`boxes_to_original`. Use it as the last geometric step of an eval pipeline, or instead of ``Resize`` in
    training to keep shapes undistorted. ``center=False`` pads only right and bottom; ``scaleup=False`` never enlarges.
    """

    def __init__(self, size: int | Sequence[int], *, fill: float = 114, center: bool = True,
                 scaleup: bool = True, antialias: bool = True) -> None:
        super().__init__()
        self.size = _size2(size)
        self.fill = fill
        self.center = center
        self.scaleup = scaleup
        self.antialias = antialias

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return letterbox_params(_sample_size(flat_inputs), self.size, center=self.center, scaleup=self.scaleup)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = self._call_kernel(F.resize, inpt, size=list(params["new_size"]), antialias=self.antialias)
        if any(params["padding"]):
            is_image = isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) or type(inpt) is torch.Tensor
            out = self._call_kernel(F.pad, out, padding=params["padding"], fill=self.fill if is_image else 0)
        return out

    def forward(self, *inputs: Any) -> Any:
        parts = _split_sample(inputs)
        if parts is not None:
            image, target, params = self._fast(*parts)
            target["letterbox"] = self._record(params)
            return image, target
        flat, _ = tree_flatten(inputs if len(inputs) > 1 else inputs[0])
        params = self.make_params(flat)  # deterministic: the same values the parent's forward uses
        out = super().forward(*inputs)
        target = _target_of(out)
        if target is not None:
            target["letterbox"] = self._record(params)
        return out

    @staticmethod
    def _record(params: dict[str, Any]) -> torch.Tensor:
        sx, sy = params["scale"]
        left, top = params["padding"][:2]
        return torch.tensor([sx, sy, left, top], dtype=torch.float64)

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}, center={self.center}, scaleup={self.scaleup}"


#: The longer-side cap of ``mode="keep-aspect"`` relative to the shorter side: torchvision's detection default
#: (``min_size=800, max_size=1333``).
KEEP_ASPECT_MAX_RATIO = 1333 / 800


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
    Valid for deterministic geometry, i.e. :func:`eval_preset`; random crops and flips cannot be undone from the
    target. Returns a plain float tensor clipped to the original image unless ``clip=False``.
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
        b = torch.stack([b[:, 0].clamp(0, ow), b[:, 1].clamp(0, oh), b[:, 2].clamp(0, ow), b[:, 3].clamp(0, oh)], 1)
    return b.to(torch.float32)


# ------------------------------------------------------------------------------------------------------ colour

_LUMA = np.array([0.2989, 0.587, 0.114])  # torchvision's rgb_to_grayscale weights
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def _hue_matrix(h: float) -> np.ndarray:
    """Hue rotation by ``h`` turns as a 3x3 RGB matrix: a rotation of the chroma plane in YIQ space."""
    a = -2 * math.pi * h  # sign chosen so the shift turns the same way as adjust_hue (checked in tests)
    c, s = math.cos(a), math.sin(a)
    return _YIQ2RGB @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]) @ _RGB2YIQ


class PhotometricDistort(_FastSample, v2.Transform):
    """``RandomPhotometricDistort`` as ONE colour matrix: brightness, contrast, saturation, hue and channel order.

    Each of the five is drawn and applied with probability ``p``, contrast before or after saturation/hue at random,
    with the same ranges and order as torchvision's ``RandomPhotometricDistort``. All five are affine maps of the RGB
    vector, so they compose into a 3x3 matrix plus an offset applied in a single pass over the pixels (contrast's
    grey mean is carried through the composition exactly), instead of five passes with float round trips; that is
    5-8x faster on uint8 tensors. Differences from torchvision: hue is rotated in YIQ space (a linear approximation
    of the HSV hue shift) and values are clamped once at the end rather than after every step.

    Works on uint8 and float images (other inputs pass through). Boxes do not move.
    """

    def __init__(self, brightness: tuple[float, float] = (0.875, 1.125), contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), hue: tuple[float, float] = (-0.05, 0.05),
                 p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability, not {p}")
        for name, (lo, hi) in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 0 <= lo <= hi, not {(lo, hi)}")
        if not -0.5 <= hue[0] <= hue[1] <= 0.5:
            raise ValueError(f"hue must be (lo, hi) within [-0.5, 0.5], not {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        r = torch.rand(7).tolist()
        u = torch.rand(4).tolist()

        def draw(rng, k):
            return rng[0] + (rng[1] - rng[0]) * u[k]

        return {
            "brightness": draw(self.brightness, 0) if r[0] < self.p else None,
            "contrast_before": r[1] < 0.5,
            "contrast": draw(self.contrast, 1) if r[2] < self.p else None,
            "saturation": draw(self.saturation, 2) if r[3] < self.p else None,
            "hue": draw(self.hue, 3) if r[4] < self.p else None,
            "permutation": torch.randperm(3).tolist() if r[5] < self.p else None,
        }

    @staticmethod
    def color_matrix(params: dict[str, Any], mean_rgb: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(M, b) so that the distorted pixel is ``M @ rgb + b``; ``mean_rgb`` is the image's mean colour (in the
        image's value range), needed for contrast. 3x3 numpy algebra: microseconds, no tensor allocations."""
        eye = np.eye(3)
        m, b, mu = eye.copy(), np.zeros(3), np.asarray(mean_rgb, dtype=np.float64)

        def apply(mat, off=0.0):
            nonlocal m, b, mu
            m, b, mu = mat @ m, mat @ b + off, mat @ mu + off

        def contrast():
            c = params["contrast"]
            if c is not None:
                apply(c * eye, (1 - c) * float(_LUMA @ mu))

        if params["brightness"] is not None:
            apply(params["brightness"] * eye)
        if params["contrast_before"]:
            contrast()
        if params["saturation"] is not None:
            sat = params["saturation"]
            apply(sat * eye + (1 - sat) * np.outer(np.ones(3), _LUMA))
        if params["hue"] is not None:
            apply(_hue_matrix(params["hue"]))
        if not params["contrast_before"]:
            contrast()
        if params["permutation"] is not None:
            apply(eye[params["permutation"]])
        return m, b

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        is_image = isinstance(inpt, tv_tensors.Image) or type(inpt) is torch.Tensor
        if not is_image or inpt.ndim < 3 or inpt.shape[-3] != 3:
            return inpt
        if all(params[k] is None for k in ("brightness", "contrast", "saturation", "hue", "permutation")):
            return inpt
        x = inpt.as_subclass(torch.Tensor)
        # (B, 3, H, W) float32 in the image's own memory order (decode_image gives HWC-ordered pixels): the colour
        # matrix is then a 1x1 convolution, which oneDNN runs 2-6x faster than a matmul over a strided (3, H*W) view.
        f = x.reshape(-1, *x.shape[-3:]).to(torch.float32)
        need_mean = params["contrast"] is not None
        # batched input: the first image's mean (one draw applies to the whole batch, as in v2)
        mean = [0.0, 0.0, 0.0]
        if need_mean:
            hwc = f[0].permute(1, 2, 0)
            mean = (hwc.reshape(-1, 3).mean(0) if hwc.is_contiguous() else f[0].mean(dim=(-2, -1))).tolist()
        m, b = self.color_matrix(params, mean)
        out = torch.nn.functional.conv2d(f, torch.from_numpy(m.astype(np.float32)).reshape(3, 3, 1, 1),
                                         torch.from_numpy(b.astype(np.float32)))
        bound = 255.0 if x.dtype == torch.uint8 else 1.0
        out = out.clamp_(0, bound)
        if x.dtype == torch.uint8:
            out = out.round_().to(torch.int32).to(torch.uint8)  # via int32: 3x faster than float -> uint8 directly
        else:
            out = out.to(x.dtype)
        out = out.reshape(x.shape)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


# ------------------------------------------------------------------------------------------------------ mosaic

class Mosaic(torch.nn.Module):
    """Combine 4 samples into one ``size`` image around a random centre (2x2 tiles), boxes moved and clipped.

    ``mosaic([(img0, t0), (img1, t1), (img2, t2), (img3, t3)])`` returns ``(image, target)``. Each image is first
    resized so its longer side is ``size`` (kept aspect ratio); the centre ``(xc, yc)`` is drawn uniformly in
    ``center_range`` times the size. Image 0 ends at the centre from the top-left, 1 from the top-right, 2 from the
    bottom-left, 3 from the bottom-right; each is cut to its quadrant. Boxes are shifted the same way, clipped to the
    visible part of their tile, and dropped when narrower or lower than ``min_size`` pixels.

    Usually fed by :class:`MosaicDataset`. Randomness comes from ``generator`` (default: torch's RNG, which the
    DataLoader seeds per worker). Targets with ``masks`` are not supported.
    """

    def __init__(self, size: int | Sequence[int], *, fill: float = 114, center_range: tuple[float, float] = (0.25, 0.75),
                 min_size: float = 1.0, antialias: bool = True) -> None:
        super().__init__()
        self.size = _size2(size)
        lo, hi = center_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"center_range must satisfy 0 <= lo <= hi <= 1, not {center_range}")
        self.fill = fill
        self.center_range = (float(lo), float(hi))
        self.min_size = float(min_size)
        self.antialias = antialias

    def draw_center(self, generator: torch.Generator | None = None) -> tuple[int, int]:
        """A random centre ``(xc, yc)`` in pixels."""
        th, tw = self.size
        lo, hi = self.center_range
        u = torch.rand(2, generator=generator, dtype=torch.float64)
        return int(tw * (lo + (hi - lo) * float(u[0]))), int(th * (lo + (hi - lo) * float(u[1])))

    def forward(self, samples: Sequence[tuple[Any, dict]], generator: torch.Generator | None = None,
                center: tuple[int, int] | None = None) -> tuple[tv_tensors.Image, dict]:
        if len(samples) != 4:
            raise ValueError(f"Mosaic needs exactly 4 samples, got {len(samples)}")
        th, tw = self.size
        xc, yc = center if center is not None else self.draw_center(generator)
        first = torch.as_tensor(samples[0][0])
        canvas = torch.full((first.shape[0], th, tw), self.fill, dtype=first.dtype)
        quads = [(0, 0, xc, yc), (xc, 0, tw, yc), (0, yc, xc, th), (xc, yc, tw, th)]
        parts: dict[str, list[torch.Tensor]] = {"boxes": [], **{k: [] for k in PER_BOX_KEYS if k != "area"}}
        for k, ((img, tgt), (qx0, qy0, qx1, qy1)) in enumerate(zip(samples, quads)):
            if "masks" in tgt:
                raise ValueError("Mosaic does not support targets with masks")
            img = torch.as_tensor(img)
            if img.shape[0] != canvas.shape[0] or img.dtype != canvas.dtype:
                raise ValueError("Mosaic needs images with the same channel count and dtype")
            h, w = img.shape[-2:]
            r = min(th, tw) / max(h, w)
            nh, nw = max(1, round(h * r)), max(1, round(w * r))
            img = F.resize_image(img, [nh, nw], antialias=self.antialias)
            x0 = xc - nw if k in (0, 2) else xc
            y0 = yc - nh if k in (0, 1) else yc
            vx0, vy0 = max(qx0, x0), max(qy0, y0)
            vx1, vy1 = min(qx1, x0 + nw), min(qy1, y0 + nh)
            if vx1 > vx0 and vy1 > vy0:
                canvas[:, vy0:vy1, vx0:vx1] = img[:, vy0 - y0:vy1 - y0, vx0 - x0:vx1 - x0]
            b = torch.as_tensor(tgt["boxes"]).as_subclass(torch.Tensor).to(torch.float32).reshape(-1, 4)
            b = b * b.new_tensor([nw / w, nh / h, nw / w, nh / h]) + b.new_tensor([x0, y0, x0, y0])
            b = torch.stack([b[:, 0].clamp(vx0, vx1), b[:, 1].clamp(vy0, vy1),
                             b[:, 2].clamp(vx0, vx1), b[:, 3].clamp(vy0, vy1)], 1)
            keep = ((b[:, 2] - b[:, 0]) >= self.min_size) & ((b[:, 3] - b[:, 1]) >= self.min_size)
            if vx1 <= vx0 or vy1 <= vy0:
                keep[:] = False
            parts["boxes"].append(b[keep])
            n = b.shape[0]
            for key in parts:
                if key == "boxes":
                    continue
                if key in tgt:
                    parts[key].append(torch.as_tensor(tgt[key]).as_subclass(torch.Tensor)[keep])
                else:
                    parts[key].append(torch.zeros(n, dtype=torch.bool if key == "difficult" else torch.int64)[keep])
        boxes = torch.cat(parts["boxes"])
        t0 = samples[0][1]
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(th, tw)),
            "labels": torch.cat(parts["labels"]).to(torch.int64),
            "image_id": torch.as_tensor(t0.get("image_id", 0)),
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
            "iscrowd": torch.cat(parts["iscrowd"]).to(torch.int64),
            "difficult": torch.cat(parts["difficult"]).to(torch.bool),
            "orig_size": torch.tensor([th, tw], dtype=torch.int64),
        }
        return tv_tensors.Image(canvas), target

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}, center_range={self.center_range}, min_size={self.min_size}"


class MosaicDataset(torch.utils.data.Dataset):
    """Wrap a dataset so that, with probability ``p``, a sample is a :class:`Mosaic` of it and 3 random others.

    Give the wrapped dataset no transforms (or only cheap per-image ones) and pass the rest as ``transforms`` here,
    e.g. ``MosaicDataset(VOCDetection(root), size=640, transforms=train_preset(640))``: the preset's letterbox is a
    no-op on mosaics (already ``size``) and fits the other samples.

    Turn mosaic off for the last epochs with ``close_after_epoch=N`` plus :meth:`set_epoch` (or
    :func:`datatools.datasets.set_epoch`) every epoch, or with :meth:`set_enabled`. The switch and the epoch live in
    shared memory, so they reach DataLoader workers that are already running (``persistent_workers=True``).
    """

    def __init__(self, dataset, *, size: int | Sequence[int], p: float = 1.0, transforms=None, fill: float = 114,
                 center_range: tuple[float, float] = (0.25, 0.75), min_size: float = 1.0,
                 close_after_epoch: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], not {p}")
        if len(dataset) < 1:
            raise ValueError("cannot build mosaics from an empty dataset")
        self.dataset = dataset
        self.mosaic = Mosaic(size, fill=fill, center_range=center_range, min_size=min_size)
        self.p = float(p)
        self.transforms = transforms
        self.close_after_epoch = close_after_epoch
        # [enabled, epoch] in shared memory: written by the main process, read by the workers.
        self._state = torch.tensor([1, 0], dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        # classes, image_ids, aspect_ratios, ... of the wrapped dataset
        if name in ("dataset", "_state") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def enabled(self) -> bool:
        """Whether mosaics are made now (the switch, and the epoch below ``close_after_epoch``)."""
        on = bool(self._state[0])
        if self.close_after_epoch is not None and int(self._state[1]) >= self.close_after_epoch:
            return False
        return on

    def set_enabled(self, enabled: bool) -> None:
        self._state[0] = int(bool(enabled))

    def set_epoch(self, epoch: int) -> None:
        self._state[1] = int(epoch)

    def __getitem__(self, index: int):
        n = len(self.dataset)
        if self.enabled and self.p > 0 and float(torch.rand(())) < self.p:
            others = torch.randint(0, n, (3,)).tolist()
            image, target = self.mosaic([self.dataset[index]] + [self.dataset[i] for i in others])
            target["image_id"] = torch.tensor(index % n, dtype=torch.int64)
        else:
            image, target = self.dataset[index]
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


# ------------------------------------------------------------------------------------------------------ presets

def _fill_arg(fill: float) -> dict:
    return {tv_tensors.Image: fill, tv_tensors.Video: fill, "others": 0}


def train_preset(size: int | Sequence[int], *, mode: str = "letterbox", flip: float = 0.5, photometric: bool = True,
                 scale_jitter: tuple[float, float] | None = None, iou_crop: bool = False, zoom_out: bool = False,
                 fill: float = 114, min_size: float = 1.0, dtype: torch.dtype | None = torch.float32,
                 max_size: int | None = None) -> v2.Compose:
    """The training pipeline, in the order torchvision's docs require and with cheap work first.

    1. optional ``zoom_out`` (``RandomZoomOut``, side up to 2x) and ``iou_crop`` (``RandomIoUCrop``, SSD-style), at
       full size because they change the geometry the resize sees;
    2. to ``size``: ``mode="letterbox"`` (:class:`Letterbox`, keeps aspect ratio), ``"resize"`` (stretch), or, with
       ``scale_jitter=(lo, hi)``, large-scale jitter (``ScaleJitter`` then ``RandomCrop`` padded to ``size``), or
       ``"keep-aspect"`` (:class:`KeepAspectResize`: shorter side ``size``, longer side at most ``max_size``,
       default :func:`keep_aspect_max_size`; no padding, so batch with aspect-ratio grouping);
    3. horizontal flip with probability ``flip``, and :class:`PhotometricDistort` (torchvision's
       ``RandomPhotometricDistort`` fused into one colour matrix) on uint8 at the training size;
    4. ``ClampBoundingBoxes`` then :class:`SanitizeBoxes` (drops boxes under ``min_size`` px with their labels);
    5. ``ToDtype(dtype, scale=True)`` for the image only (``dtype=None`` keeps uint8, e.g. to convert on the GPU).

    Expects uint8 images (what the datasets return). For speed pass ``dtype=None`` and convert in the training step
    with :func:`datatools.datasets.to_device` (on the GPU): float32 is 4x the bytes through the DataLoader's shared
    memory and the conversion costs a worker ~0.25 ms per 512 px image. ``Resize``, ``RandomHorizontalFlip``,
    ``ClampBoundingBoxes`` and ``ToDtype`` are this module's drop-in subclasses of the v2 transforms (same results,
    a fast path for the datasets' samples).
    """
    th, tw = _size2(size)
    if mode not in ("letterbox", "resize", "keep-aspect"):
        raise ValueError(f"mode must be 'letterbox', 'resize' or 'keep-aspect', not {mode!r}")
    if mode == "keep-aspect" and th != tw:
        raise ValueError(f"mode='keep-aspect' takes one shorter-side size, not {size!r}")
    if not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip must be a probability, not {flip}")
    steps: list[Any] = []
    if zoom_out:
        steps.append(v2.RandomZoomOut(fill=_fill_arg(fill), side_range=(1.0, 2.0), p=0.5))
    if iou_crop:
        steps += [v2.RandomIoUCrop(), SanitizeBoxes(min_size=min_size)]
    if scale_jitter is not None:
        steps += [v2.ScaleJitter((th, tw), scale_range=tuple(scale_jitter), antialias=True),
                  v2.RandomCrop((th, tw), pad_if_needed=True, fill=_fill_arg(fill))]
    elif mode == "letterbox":
        steps.append(Letterbox((th, tw), fill=fill))
    elif mode == "keep-aspect":
        steps.append(KeepAspectResize(th, max_size))
    else:
        steps.append(Resize((th, tw), antialias=True))
    if flip > 0:
        steps.append(RandomHorizontalFlip(flip))
    if photometric:
        steps.append(PhotometricDistort(p=0.5))
    steps += [ClampBoundingBoxes(), SanitizeBoxes(min_size=min_size)]
    if dtype is not None:
        steps.append(ToDtype(dtype, scale=True))
    return v2.Compose(steps)


def eval_preset(size: int | Sequence[int], *, mode: str = "letterbox", fill: float = 114,
                dtype: torch.dtype | None = torch.float32, max_size: int | None = None) -> v2.Compose:
    """The evaluation pipeline: :class:`Letterbox` (or ``Resize`` with ``mode="resize"``, or
    :class:`KeepAspectResize` with ``mode="keep-aspect"`` and ``max_size``, as in :func:`train_preset`) then
    ``ToDtype``.

    Deterministic and box-preserving (no sanitizing: every ground-truth box stays for the metrics). Map predictions
    back to the original image with :func:`boxes_to_original`.
    """
    th, tw = _size2(size)
    if mode not in ("letterbox", "resize", "keep-aspect"):
        raise ValueError(f"mode must be 'letterbox', 'resize' or 'keep-aspect', not {mode!r}")
    steps: list[Any]
    if mode == "keep-aspect":
        if th != tw:
            raise ValueError(f"mode='keep-aspect' takes one shorter-side size, not {size!r}")
        steps = [KeepAspectResize(th, max_size)]
    else:
        steps = [Letterbox((th, tw), fill=fill) if mode == "letterbox" else Resize((th, tw), antialias=True)]
    if dtype is not None:
        steps.append(ToDtype(dtype, scale=True))
    return v2.Compose(steps)
