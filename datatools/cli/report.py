"""``report``: one self-contained HTML page that shows a dataset; thin over :mod:`datatools.report`."""
from __future__ import annotations

import click

from datatools.cli.common import (OutPath, Number, console, count, emit_json, engine_options, errors_to_click, esc,
                                  json_option, reader_options, SourcePath, stage_progress, workers_option)


@click.command("report")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath(dir_okay=False))
@reader_options()
@click.option("--per-class", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Gallery thumbnails drawn per class (a seeded sample of the images holding that class).")
@click.option("--thumb-size", "thumb", type=click.IntRange(64, 640), default=192, show_default=True,
              help="Longer side of a gallery thumbnail, in pixels.")
@click.option("--max-mb", type=Number(1, 1000), default=20.0, show_default=True,
              help="Size budget of the page: the gallery is cut to fit it (every number still covers all images).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for the gallery sample and the anchors.")
@click.option("-k", "--num-anchors", "k", type=click.IntRange(1), default=9, show_default=True,
              help="Anchors to cluster (as `datatools anchors -k`).")
@click.option("--img-size", type=click.IntRange(0), default=640, show_default=True,
              help="Input size for the anchors: each image's longer side scaled to this (0 = original pixels).")
@click.option("--no-pixels", is_flag=True, help="Skip the pixel statistics (no image is decoded for mean/std).")
@click.option("--no-dupes", is_flag=True, help="Skip the duplicate search.")
@workers_option
@engine_options
@json_option
def report_cmd(src, out, reader, per_class, thumb, max_mb, seed, k, img_size, no_pixels, no_dupes, workers, engine,
               ray_address, as_json):
    """Write OUT, one self-contained HTML page about SRC (any format), to open in a browser or send.

    The page holds a summary, the class table (objects, images, share per split), split balance, box size and
    aspect-ratio histograms, objects per image, image sizes, exact channel mean/std, anchors, `check` findings by
    code with examples, duplicate clusters and a gallery of sample images per class with their boxes drawn. No
    network and no server: CSS, JS, plots (SVG) and thumbnails are inside the file. Numbers cover every image; only
    the gallery is sampled, to keep the page under --max-mb.
    """
    from datatools.report import report

    with errors_to_click():
        with stage_progress(not as_json) as update:
            result = report(src, out, **reader, pixels=not no_pixels, dupes=not no_dupes, k=k,
                            img_size=img_size or None, per_class=per_class, thumb=thumb, budget_bytes=int(max_mb * 1_000_000), seed=seed,
                            workers=workers or None, engine=engine, ray_address=ray_address, update=update)
    if as_json:
        emit_json(result)
        return
    con = console()
    con.print(f"{count(result['images'], 'image')}, {count(result['objects'], 'object')}, "
              f"{count(result['classes'], 'class', 'classes')}; check: {count(result['errors'], 'error')}, "
              f"{count(result['warnings'], 'warning')}; gallery: {count(result['gallery']['shown'], 'thumbnail')}")
    for section, why in result["notes"].items():
        con.print(f"[yellow]{esc(section)}:[/] {esc(why)}", soft_wrap=True)
    con.print(f"[green]wrote[/] [bold]{esc(result['out'])}[/] ({result['bytes'] / 1e6:.2f} MB)", soft_wrap=True)
