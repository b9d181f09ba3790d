"""Mosaic augmentation: :class:`Mosaic` (4 images into one) and :class:`MosaicDataset`, which feeds it."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from datatools.datasets.detection import as_xyxy, make_target
from datatools.datasets.transforms.geometry import parse_size
from datatools.datasets.transforms.sanitize import PER_BOX_KEYS

__all__ = ["Mosaic", "MosaicDataset"]

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
        self.size = parse_size(size)
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
            b = as_xyxy(tgt["boxes"]).to(torch.float32)
            b = b * b.new_tensor([nw / w, nh / h, nw / w, nh / h]) + b.new_tensor([x0, y0, x0, y0])
            b = b.clamp(min=b.new_tensor([vx0, vy0, vx0, vy0]), max=b.new_tensor([vx1, vy1, vx1, vy1]))
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
        target = make_target(torch.cat(parts["boxes"]), torch.cat(parts["labels"]), canvas_size=(th, tw),
                             image_id=int(samples[0][1].get("image_id", 0)), iscrowd=torch.cat(parts["iscrowd"]),
                             difficult=torch.cat(parts["difficult"]))
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
            # the mosaic keeps the first tile's image_id: this index's image
            image, target = self.mosaic([self.dataset[index]] + [self.dataset[i] for i in others])
        else:
            image, target = self.dataset[index]
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
