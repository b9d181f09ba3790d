#!/usr/bin/env python3
"""Make sample_data/: a small, deterministic VOC-layout detection set (run from anywhere; needs only Pillow).

Four classes of shapes on textured backgrounds: circle, square, triangle and star, each with its own colour family
so that a small detector learns them in minutes. Objects vary in size, overlap, and are cut by the image border
(marked truncated); small low-contrast objects are marked difficult. ImageSets/Main has train.txt and val.txt.

    python sample_data/make_sample_data.py            # (re)write sample_data/
    python sample_data/make_sample_data.py --out DIR  # somewhere else
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("circle", "square", "triangle", "star")
PALETTE = {"circle": (220, 60, 50), "square": (40, 110, 230), "triangle": (40, 180, 70), "star": (240, 200, 30)}
SIZES = ((320, 240), (320, 320), (240, 320), (320, 256))
N_IMAGES = 200
VAL_EVERY = 5  # every 5th image goes to val


def background(rng: random.Random, w: int, h: int) -> Image.Image:
    """Gradient plus blurred noise plus a few lines: texture without anything shape-like."""
    c0 = [rng.randint(70, 180) for _ in range(3)]
    c1 = [min(255, max(0, c + rng.randint(-60, 60))) for c in c0]
    grad = Image.linear_gradient("L").resize((w, h))
    base = Image.composite(Image.new("RGB", (w, h), tuple(c0)), Image.new("RGB", (w, h), tuple(c1)), grad)
    noise = Image.effect_noise((w, h), rng.randint(20, 45)).convert("RGB")
    img = Image.blend(base, noise, 0.25).filter(ImageFilter.GaussianBlur(0.8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 6)):
        col = tuple(min(255, max(0, c + rng.randint(-50, 50))) for c in c0)
        d.line([(rng.randint(0, w), rng.randint(0, h)), (rng.randint(0, w), rng.randint(0, h))], fill=col,
               width=rng.randint(1, 3))
    return img


def jitter(rng: random.Random, colour: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def draw_shape(d: ImageDraw.ImageDraw, cls: str, x1: int, y1: int, x2: int, y2: int, fill) -> None:
    """Draw inside pixels x1..x2-1, y1..y2-1 (touching all four edges, so the box is exact)."""
    r = (x1, y1, x2 - 1, y2 - 1)
    if cls == "circle":
        d.ellipse(r, fill=fill)
    elif cls == "square":
        d.rectangle(r, fill=fill)
    elif cls == "triangle":
        d.polygon([(x1, y2 - 1), ((x1 + x2 - 1) / 2, y1), (x2 - 1, y2 - 1)], fill=fill)
    else:
        cx, cy, rx, ry = (x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2, (x2 - 1 - x1) / 2, (y2 - 1 - y1) / 2
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            f = 1.0 if k % 2 == 0 else 0.45
            pts.append((cx + rx * f * math.cos(a), cy + ry * f * math.sin(a)))
        # the star's points must reach the box edges: stretch horizontally and vertically to the extremes
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        sx, sy = (x2 - 1 - x1) / (max(xs) - min(xs)), (y2 - 1 - y1) / (max(ys) - min(ys))
        pts = [(x1 + (px - min(xs)) * sx, y1 + (py - min(ys)) * sy) for px, py in pts]
        d.polygon(pts, fill=fill)


def make_image(rng: random.Random, idx: int):
    w, h = SIZES[idx % len(SIZES)]
    img = background(rng, w, h)
    d = ImageDraw.Draw(img)
    objects = []
    for _ in range(rng.randint(1, 5)):
        cls = rng.choice(CLASSES)
        difficult = rng.random() < 0.06
        size = rng.randint(10, 16) if difficult else rng.randint(24, 110)
        bw = max(8, int(size * rng.uniform(0.75, 1.3)))
        bh = max(8, int(size * rng.uniform(0.75, 1.3)))
        truncated = rng.random() < 0.15
        if truncated:  # place it across a border
            side = rng.choice("lrtb")
            x1 = -bw // 2 if side == "l" else (w - bw // 2 if side == "r" else rng.randint(0, w - bw))
            y1 = -bh // 2 if side == "t" else (h - bh // 2 if side == "b" else rng.randint(0, h - bh))
        else:
            x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
        x2, y2 = x1 + bw, y1 + bh
        colour = jitter(rng, PALETTE[cls], 25)
        if difficult:  # low contrast: close to the local background
            colour = tuple((c + b) // 2 for c, b in zip(colour, img.getpixel((min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)))))
        # draw the whole shape on a layer, then paste: the part outside the image is cut by the border
        layer = Image.new("L", (bw, bh), 0)
        draw_shape(ImageDraw.Draw(layer), cls, 0, 0, bw, bh, 255)
        img.paste(Image.new("RGB", (bw, bh), colour), (x1, y1), layer)
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        # the visible extent of the shape decides the box (a triangle cut at its apex is lower than its box)
        bbox = layer.crop((cx1 - x1, cy1 - y1, cx2 - x1, cy2 - y1)).getbbox()
        if bbox is None:
            continue
        vx1, vy1, vx2, vy2 = cx1 + bbox[0], cy1 + bbox[1], cx1 + bbox[2], cy1 + bbox[3]
        if vx2 - vx1 < 4 or vy2 - vy1 < 4:
            continue
        objects.append((cls, vx1, vy1, vx2, vy2, int(difficult), int(truncated and (x1 < 0 or y1 < 0 or x2 > w or y2 > h))))
    return img, objects


def voc_xml(name: str, w: int, h: int, objects) -> str:
    parts = ["<annotation>", "\t<folder>sample_data</folder>", f"\t<filename>{name}.jpg</filename>",
             "\t<source>\n\t\t<database>datatools sample_data</database>\n\t</source>",
             f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>",
             "\t<segmented>0</segmented>"]
    for cls, x1, y1, x2, y2, diff, trunc in objects:
        # VOC is 1-based inclusive: pixels x1..x2-1 (0-based) are xmin=x1+1 .. xmax=x2
        parts.append(f"\t<object>\n\t\t<name>{cls}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>{trunc}</truncated>\n"
                     f"\t\t<difficult>{diff}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x1 + 1}</xmin>\n\t\t\t<ymin>{y1 + 1}</ymin>\n"
                     f"\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>")
    parts.append("</annotation>\n")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent), help="output folder (default: sample_data/)")
    ap.add_argument("-n", type=int, default=N_IMAGES, help="number of images")
    args = ap.parse_args()
    out = Path(args.out)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261122)
    train, val = [], []
    for i in range(args.n):
        name = f"shapes_{i:04d}"
        img, objects = make_image(rng, i)
        img.save(out / "JPEGImages" / f"{name}.jpg", quality=85, optimize=True)
        (out / "Annotations" / f"{name}.xml").write_text(voc_xml(name, img.width, img.height, objects), encoding="utf-8")
        (val if i % VAL_EVERY == 0 else train).append(name)
    (out / "ImageSets/Main/train.txt").write_text("".join(n + "\n" for n in train))
    (out / "ImageSets/Main/val.txt").write_text("".join(n + "\n" for n in val))
    (out / "classes.txt").write_text("".join(c + "\n" for c in CLASSES))
    print(f"wrote {args.n} images to {out} ({len(train)} train, {len(val)} val)")


if __name__ == "__main__":
    main()
