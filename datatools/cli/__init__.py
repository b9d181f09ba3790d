"""The ``datatools`` command line. Commands are imported only when used, so ``datatools --help`` stays fast and never
imports torch: command modules import heavy libraries inside their functions."""
from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# name -> (module, function, one-line help). The help is here so listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": ("datatools.cli.convert", "convert_cmd", "Convert between VOC, YOLO, COCO, CVAT, LabelMe, Label Studio, Open Images."),
    "voc2yolo": ("datatools.cli.convert", "voc2yolo_cmd", "Convert Pascal VOC XML to an ultralytics YOLO dataset."),
    "voc2coco": ("datatools.cli.convert", "voc2coco_cmd", "Convert Pascal VOC XML to COCO JSON."),
    "check": ("datatools.cli.check", "check_cmd", "Find annotation errors (any format); --fix writes a repaired copy."),
    "split": ("datatools.cli.split", "split_cmd", "Split into train/val/test (stratified, group, hash, k-fold)."),
    "merge": ("datatools.cli.surgery", "merge_cmd", "Merge datasets: classes united by name, id collisions renamed."),
    "remap": ("datatools.cli.surgery", "remap_cmd", "Rename, merge or drop classes; fix the class order."),
    "filter": ("datatools.cli.surgery", "filter_cmd", "Keep objects/images by class, box size, area, emptiness, id."),
    "sample": ("datatools.cli.surgery", "sample_cmd", "A random or stratified subset that keeps every class."),
    "dupes": ("datatools.cli.dupes", "dupes_cmd", "Exact and near-duplicate images; whether their labels agree."),
    "stats": ("datatools.cli.stats", "stats_cmd", "Exact per-channel mean/std and dataset statistics."),
    "anchors": ("datatools.cli.anchors", "anchors_cmd", "Cluster box sizes into anchors (k-means, 1-IoU distance)."),
    "visualize": ("datatools.cli.visualize", "visualize_cmd", "Draw boxes on images; contact sheets; GT vs predictions."),
    "report": ("datatools.cli.report", "report_cmd", "One self-contained HTML page that shows a dataset."),
    "train": ("datatools.cli.train", "train_cmd", "Train a torchvision detector on any supported dataset."),
    "predict": ("datatools.cli.predict", "predict_cmd", "Run a trained model on images; write COCO results JSON."),
    "evaluate": ("datatools.cli.evaluate", "evaluate_cmd", "COCO mAP (pycocotools) and VOC AP of predictions against GT."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if importlib.util.find_spec(COMMANDS[name][0]) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["datatools.json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        """Under ``--json`` a command that fails prints ``{"error": ..., "exit_code": ...}`` on stdout too (the message
        goes to stderr as always, the exit code is the same): a script parsing stdout never meets an empty one."""
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            if ctx.meta.get("datatools.json") and not ctx.meta.get("datatools.json_done"):
                import json

                click.echo(json.dumps({"error": e.format_message(), "exit_code": e.exit_code}))
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="datatools")
def cli() -> None:
    """datatools: convert, check, split, edit and inspect object-detection datasets (VOC, YOLO, COCO, CVAT, LabelMe,
    Label Studio, Open Images), then train and evaluate detectors on them.

    Start with `datatools check SRC`, then `datatools voc2yolo SRC OUT`. Every command takes --help.
    """


def main() -> None:
    """Entry point. Click handles usage errors (exit 2) and ClickExceptions (exit 1); library errors that escape a
    command are shown as one line, never a traceback."""
    import os
    import signal
    import warnings

    from datatools.core.errors import DatatoolsError

    # PIL's warnings about one image (a corrupt EXIF block, which reads as upright; a size near its pixel limit; a
    # tag past the file's end) came out of every command with their source line; they are findings where they matter
    # (stats' image-warning). Workers a pool spawns (macOS; forkserver) start anew: they read PYTHONWARNINGS.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    pil = ",".join(f"ignore:::PIL.{m}" for m in ("Image", "ImageFile", "TiffImagePlugin", "PngImagePlugin",
                                                  "JpegImagePlugin", "WebPImagePlugin", "GifImagePlugin"))
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), pil]))

    def terminated(signum, frame):  # timeout, docker stop, Slurm, a CI cancel: as Ctrl-C, OUT left as it was
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        cli(standalone_mode=True)
    except DatatoolsError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except OSError as e:  # a write or read outside errors_to_click: still one line (see cli.common.os_error_message)
        from datatools.cli.common import os_error_message

        click.echo(f"Error: {os_error_message(e)}", err=True)
        sys.exit(1)
