"""``visualize`` as a library function: pick images, plan what to draw on each, render them in parallel.

Use :func:`visualize` to write annotated images or contact sheets for a whole :class:`~datatools.core.model.Dataset`
(any format); the CLI command is a thin wrapper around it. What is drawn on each image is planned in
:mod:`datatools.viz.plan`; ``--pred`` files are read and matched by
:func:`datatools.metrics.predictions.load_predictions`, as ``datatools evaluate`` reads them.

EXIF: images are decoded, then turned upright with ``ImageOps.exif_transpose`` before anything is drawn, because
annotations are in the displayed frame (see :func:`datatools.core.images.read_image_header`, which reports the size the
same way). A box is scaled from the displayed size of the image to the size drawn, so thumbnails stay exact.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from datatools.core.atomic import atomic_write, make_dirs
from datatools.core.errors import UsageError
from datatools.core.images import exif_orientation, image_error, opened_image
from datatools.core.model import Dataset
from datatools.core.parallel import ProgressFn, map_items
from datatools.core.paths import check_output_dir, input_folders, safe_join
from datatools.viz.draw import draw_items, font, font_size_for, shown, to_rgb
from datatools.viz.plan import ImageJob, plan_image, predictions_to_draw, reader_box_findings, select_images
from datatools.viz.sheet import BACKGROUND, CAPTION_COLOUR, SheetLayout, contact_sheet, fit_size

PRED_LAYOUTS = ("side", "overlay")
EXTENSIONS = ("jpg", "png")
DEFAULT_SCORE_THR = 0.3


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """How to render: prediction layout, output encoding and the titles of the side-by-side panels."""

    pred_layout: str = "side"
    ext: str = "jpg"
    quality: int = 90
    max_size: int = 0
    pred_title: str = "predictions"


@dataclass
class VizResult:
    """What :func:`visualize` did. ``skipped`` lists every image not drawn, with the reason."""

    out: str
    files: list[str] = field(default_factory=list)
    images_selected: int = 0
    images_drawn: int = 0
    sheets: list[dict] = field(default_factory=list)
    boxes_drawn: int = 0
    difficult_hidden: int = 0
    difficult_drawn: int = 0
    boxes_filtered: int = 0
    preds_drawn: int = 0
    preds_below_thr: int = 0
    findings_drawn: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    predictions: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ rendering

LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError)


def load_image(path: str, *, fit: tuple[int, int] | None = None):
    """Decode ``path`` upright (EXIF applied) as RGB, shrunk to fit ``fit`` when given (JPEG draft decoding makes
    that cheap). Returns ``(image, (sx, sy))``: the scale from the displayed full-size frame to the returned image."""
    from PIL import Image, ImageOps

    with opened_image(path) as src:
        raw_w, raw_h = src.size
        orientation = exif_orientation(src)
        swapped = orientation in (5, 6, 7, 8)
        disp_w, disp_h = (raw_h, raw_w) if swapped else (raw_w, raw_h)
        target = None
        if fit and (disp_w > fit[0] or disp_h > fit[1]):
            target = fit_size(disp_w, disp_h, *fit)
            src.draft(src.mode, (target[1], target[0]) if swapped else target)
        src.load()  # pixels are in memory now; closing the file below keeps them
        im = ImageOps.exif_transpose(src) if orientation != 1 else src
    im = to_rgb(im)
    if target and im.size != target:
        im = im.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im, (im.width / disp_w, im.height / disp_h)


def side_gap(width: int) -> int:
    """Pixels between the ground-truth and prediction panels."""
    return max(4, width // 100)


def side_by_side(left, right, titles: tuple[str, str] | None = None):
    """Two equally sized panels next to each other (ground truth left, predictions right), with optional titles in a
    band above them. Size: ``(2 * W + side_gap(W), H + band)``."""
    from PIL import Image, ImageDraw

    W, H = left.size
    gap = side_gap(W)
    fnt = font(font_size_for(W, H))
    band = 0
    if titles:
        band = fnt.size + 8 if hasattr(fnt, "size") else 16
    canvas = Image.new("RGB", (2 * W + gap, H + band), BACKGROUND)
    canvas.paste(left, (0, band))
    canvas.paste(right, (W + gap, band))
    if titles:
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 4), shown(titles[0]), fill=CAPTION_COLOUR, font=fnt)
        draw.text((W + gap + 4, 4), shown(titles[1]), fill=CAPTION_COLOUR, font=fnt)
    return canvas


def render_job(job: ImageJob, spec: RenderSpec, fit: tuple[int, int] | None, *, titles: bool = True):
    """Draw one job and return the picture (one panel, or ground truth | predictions side by side)."""
    if job.pred is not None and spec.pred_layout == "side":
        panel_fit = None
        if fit:
            panel_fit = (max(16, (fit[0] - side_gap(fit[0] // 2)) // 2), fit[1])
        im, scale = load_image(job.image_path, fit=panel_fit)
        right = im.copy()
        draw_items(im, job.gt, scale=scale)
        draw_items(right, job.pred, scale=scale)
        return side_by_side(im, right, (f"ground truth ({len(job.gt)})", f"{spec.pred_title} ({len(job.pred)})")
                            if titles else None)
    im, scale = load_image(job.image_path, fit=fit)
    return draw_items(im, job.gt + (job.pred or ()), scale=scale)


def encode(image, ext: str, quality: int) -> bytes:
    """``image`` as PNG or JPEG bytes: every picture datatools draws is encoded here."""
    buf = io.BytesIO()
    if ext == "png":
        image.save(buf, format="PNG", compress_level=6)
    else:
        image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def error_text(e: BaseException) -> str:
    """Why an image could not be drawn, as every picture (visualize, the report's thumbnails) says it: the words of
    :func:`~datatools.core.images.image_error`."""
    why = image_error(e)
    return "missing image file" if why == "missing" else why


def _render_file(args: tuple[ImageJob, RenderSpec, str]) -> str:
    """Worker: draw one image and write it atomically. Returns '' or why the image was skipped."""
    from PIL import Image

    job, spec, out_path = args
    try:
        img = render_job(job, spec, (spec.max_size, spec.max_size) if spec.max_size else None)
    except (*LOAD_ERRORS, Image.DecompressionBombError) as e:
        return error_text(e)
    atomic_write(out_path, encode(img, spec.ext, spec.quality))
    return ""


def _placeholder(layout: SheetLayout, text: str):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (layout.tile_w, layout.tile_h), (70, 20, 20))
    ImageDraw.Draw(img).text((8, layout.tile_h // 2 - 8), shown(text), fill=(255, 200, 200), font=font(14))
    return img


def _render_sheet(args: tuple[tuple[ImageJob, ...], RenderSpec, SheetLayout, str]) -> list[str]:
    """Worker: draw the tiles of one sheet and write it. Returns the skip reason per job ('' when drawn); an image
    that cannot be read keeps its place as a dark red 'unreadable' tile so the sheet's order stays predictable."""
    from PIL import Image

    jobs, spec, layout, out_path = args
    tiles = []
    reasons = []
    for job in jobs:
        try:
            img = render_job(job, spec, (layout.tile_w, layout.tile_h), titles=False)
            reasons.append("")
            tiles.append((img, job.caption, job.note))
        except (*LOAD_ERRORS, Image.DecompressionBombError) as e:
            reason = error_text(e)
            reasons.append(reason)
            tiles.append((_placeholder(layout, reason.split(":")[0]), job.caption, "!skipped"))  # the kind only
    atomic_write(out_path, encode(contact_sheet(tiles, layout), spec.ext, spec.quality))
    return reasons


def visualize(ds: Dataset, out: str | os.PathLike, *, classes: Sequence[str] | None = None, ids: str | None = None,
              limit: int | None = None, shuffle: bool = False, seed: int = 0, show_difficult: bool = False,
              predictions: str | os.PathLike | None = None, score_thr: float = DEFAULT_SCORE_THR,
              pred_layout: str = "side", check: bool = False, grid: tuple[int, int] | None = None, tile: int = 320,
              max_size: int = 0, ext: str = "jpg", quality: int = 90, labels: bool = True,
              workers: int | None = None, progress: ProgressFn | None = None,
              on_total: Callable[[int], None] | None = None) -> VizResult:
    """Draw the boxes of ``ds`` and write pictures into the folder ``out``; return what was done.

    Without ``grid``: one picture per image, ``out/<image_id>.<ext>``. With ``grid=(rows, cols)``: contact sheets
    ``out/sheet_0001.<ext>`` ... of ``tile``-pixel-wide captioned thumbnails, the quickest way to scan a dataset.
    ``ext`` is ``jpg`` (default, quality ``quality``) or ``png`` (lossless, about 20x slower to encode for photos). ``on_total`` receives the number of work items (images, or sheets with ``grid``)
    and ``progress`` is advanced as they finish.

    Selection and style: see :func:`select_images` and :func:`plan_image`. Difficult objects are hidden unless
    ``show_difficult`` (then dashed). ``check`` keeps only images with box problems (as ``datatools check`` classifies
    them: :func:`datatools.ops.sanitize.box_problem`) and draws those boxes as red/yellow hazard tape, labelled with
    the finding code. ``predictions`` (a predictions file, see :func:`predictions_to_draw`) are drawn beside the ground
    truth (``pred_layout="side"``) or over it (``"overlay"``, thinner lines, score in the label), keeping those with
    ``score >= score_thr``. Missing or unreadable images are skipped and listed in ``result.skipped``.
    """
    if pred_layout not in PRED_LAYOUTS:
        raise UsageError(f"pred_layout must be one of {PRED_LAYOUTS}, not {pred_layout!r}")
    if ext not in EXTENSIONS:
        raise UsageError(f"ext must be one of {EXTENSIONS}, not {ext!r}")
    if not 0.0 <= score_thr <= 1.0:
        raise UsageError(f"the score threshold must be between 0 and 1, not {score_thr}")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if not 1 <= quality <= 100:
        raise UsageError("--quality must be between 1 and 100")
    if tile < 32:
        raise UsageError("--tile-size must be at least 32 pixels")
    if not ds.images:
        # nothing could ever be drawn: an error naming what was looked for where, not "nothing drawn" and exit 0
        # (images whose file is missing are listed in ``result.skipped`` with their reason)
        from datatools.core.errors import NoInputError
        from datatools.ops.convert import no_images_message

        raise NoInputError(no_images_message(ds, ds.root or "the dataset"))
    if classes:
        unknown = [c for c in classes if c not in ds.classes and not any(a.label == c for im in ds.images
                                                                             for a in im.annotations)]
        if unknown:
            raise UsageError(f"unknown class(es) {', '.join(map(repr, unknown))}; the dataset has "
                             f"{', '.join(ds.classes) or 'no classes'}")
    out_p = check_output_dir(out, input_folders(ds))
    if out_p.exists() and not out_p.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    layout = SheetLayout.for_tile(grid[0], grid[1], tile) if grid else None

    preds = predictions_to_draw(predictions, ds) if predictions else None
    chosen = select_images(ds, classes=classes, ids=ids, limit=limit, shuffle=shuffle, seed=seed, check=check,
                           predictions=preds)
    result = VizResult(out=str(out), images_selected=len(chosen), predictions=preds.to_dict() if preds else None)
    counts: Counter = Counter()
    wanted = set(classes) if classes else None
    dropped = reader_box_findings(ds) if check else {}
    jobs: list[ImageJob] = []
    job_counts: list[Counter] = []  # what each picture holds, counted in the result once it is drawn
    for im in chosen:
        if not im.image_path:
            result.skipped.append({"image_id": im.image_id, "path": im.file_name or im.image_id,
                                   "reason": "missing image file (not found next to the annotations)"})
            continue
        job_counts.append(Counter())
        jobs.append(plan_image(im, classes=wanted, show_difficult=show_difficult, check=check, labels=labels,
                               predictions=preds.by_image.get(im.image_id, []) if preds else None,
                               score_thr=score_thr, overlay=pred_layout == "overlay", counts=job_counts[-1],
                               dropped=dropped.get(im.image_id, ())))
    spec = RenderSpec(pred_layout=pred_layout, ext=ext, quality=quality, max_size=max_size,
                      pred_title=f"predictions >= {score_thr:g}")
    if layout is None:
        paths = [str(safe_join(out_p, f"{j.image_id}.{ext}")) for j in jobs]
        if on_total:
            on_total(len(jobs))
        reasons = map_items(_render_file, [(j, spec, p) for j, p in zip(jobs, paths)], workers=workers,
                            progress=progress, min_per_worker=32)
        for j, c, p, r in zip(jobs, job_counts, paths, reasons):
            if r:
                result.skipped.append({"image_id": j.image_id, "path": j.image_path, "reason": r})
            else:
                result.files.append(p)
                result.images_drawn += 1
                counts.update(c)
    else:
        make_dirs(out_p)
        groups = [tuple(jobs[i:i + layout.per_sheet]) for i in range(0, len(jobs), layout.per_sheet)]
        paths = [str(out_p / f"sheet_{k:04d}.{ext}") for k in range(1, len(groups) + 1)]
        if on_total:
            on_total(len(groups))
        per_sheet = map_items(_render_sheet, [(g, spec, layout, p) for g, p in zip(groups, paths)],
                              workers=workers, progress=progress, chunk_size=1, min_per_worker=1)
        for k, (g, p, reasons) in enumerate(zip(groups, paths, per_sheet)):
            result.files.append(p)
            result.sheets.append({"path": p, "images": [j.image_id for j in g]})
            for j, c, r in zip(g, job_counts[k * layout.per_sheet:(k + 1) * layout.per_sheet], reasons):
                if r:
                    result.skipped.append({"image_id": j.image_id, "path": j.image_path, "reason": r})
                else:
                    result.images_drawn += 1
                    counts.update(c)
    if not jobs:
        make_dirs(out_p)
    result.boxes_drawn = counts["boxes_drawn"]
    result.difficult_hidden = counts["difficult_hidden"]
    result.difficult_drawn = counts["difficult_drawn"]
    result.boxes_filtered = counts["boxes_filtered"]
    result.preds_drawn = counts["preds_drawn"]
    result.preds_below_thr = counts["preds_below_thr"]
    result.findings_drawn = dict(sorted((k.split(":", 1)[1], v) for k, v in counts.items() if k.startswith("finding:")))
    return result
