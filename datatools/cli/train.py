"""``train``: a torchvision detector on any supported dataset. torch is imported inside the command only."""
from __future__ import annotations

import click

from datatools.formats import FORMATS

from datatools.cli.common import (OutPath, Number, console, count, device_option, emit_json, errors_to_click, esc,
                                  json_option, stage_progress)

from datatools.training.catalog import DEFAULT_MODEL, MODELS  # the table only: no torch import


@click.command("train")
@click.argument("data", type=click.Path(exists=True))
@click.option("--format", "-f", "format", type=click.Choice(["auto", *FORMATS]), default="auto",
              show_default=True,
              help="Format of DATA: VOC root, YOLO data.yaml (or folder), COCO JSON (or folder with annotations/); "
                   "auto detects it as `convert` and `check` do.")
@click.option("--out", "-o", type=OutPath(file_okay=False), default="runs/train", show_default=True,
              help="Output folder: last.pt, best.pt, results.csv.")
@click.option("--model", "-m", type=click.Choice(list(MODELS)), default=None,
              help="torchvision detection builder (never downloads weights): "
                   + "; ".join(f"{k}: {m.description}" for k, m in MODELS.items())
                   + f". Default: {DEFAULT_MODEL}; without a GPU and without --image-size, the CPU recipe "
                   "(ssdlite320_mobilenet_v3_large at 320 px).")
@click.option("--weights", default=None, metavar="NAME|PATH",
              help="Fine-tune a whole detector: a torchvision weights name of --model (COCO_V1, DEFAULT, or in full "
                   "e.g. FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1; torchvision fetches it into its cache) or "
                   "a local state dict / datatools checkpoint (torch.load(weights_only=True)). The class head is "
                   "rebuilt for the dataset's classes; any other tensor that does not fit is an error. Default: "
                   "random init (BatchNorm, every layer trainable).")
@click.option("--weights-backbone", default=None, metavar="NAME|PATH",
              help="Start the backbone from ImageNet weights: a torchvision weights name of the model's classifier "
                   "(IMAGENET1K_V1, ...) or a local state dict of torchvision's mobilenet_v3_large / resnet50. "
                   "Ignored with --weights.")
@click.option("--freeze-backbone", is_flag=True, help="Do not train the backbone's trunk (the classifier's layers).")
@click.option("--backbone-lr-mult", type=Number(0), default=1.0, show_default=True,
              help="The backbone trunk's learning rate as a fraction of --lr (e.g. 0.1 when fine-tuning).")
@click.option("--train-split", default="train", show_default=True,
              help="Split to train on (VOC set, YOLO/COCO split); 'train' also finds train2017 or training.")
@click.option("--val-split", default="val", show_default=True,
              help="Split to evaluate on ('' for none); 'val' also finds val2017, valid or validation.")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="Epochs to train.")
@click.option("--batch-size", "-b", type=click.IntRange(1), default=8, show_default=True, help="Images per batch per process.")
@click.option("--accumulate", type=click.IntRange(1), default=1, show_default=True,
              help="Micro-batches of --batch-size per optimizer step (gradient accumulation). The global batch is "
                   "batch size x processes x accumulate.")
@click.option("--freeze-bn/--no-freeze-bn", default=None,
              help="BatchNorm layers keep their stored statistics and are not trained (for fine-tuning or small "
                   "per-GPU batches). Makes N processes x batch b equal 1 process x batch N*b. Default: on with "
                   "--weights or --weights-backbone, off from scratch.")
@click.option("--image-size", type=click.IntRange(32), default=None,
              help="Letterbox size (square) for training and evaluation; with --resize-mode keep-aspect the shorter "
                   "side. Default: 512; without a GPU and without --model, the CPU recipe's 320.")
@click.option("--resize-mode", type=click.Choice(["letterbox", "keep-aspect"]), default="letterbox",
              show_default=True,
              help="letterbox: every image padded to one --image-size square (dense batches, no grouping; the "
                   "bit-exact DDP mode). keep-aspect: torchvision-style, shorter side --image-size, longer side at "
                   "most 1333/800 of it, no square padding; each batch is padded to its largest image and training "
                   "batches are grouped by aspect ratio (portrait/landscape) within each rank's DistributedSampler "
                   "shard. Stored in the checkpoint for --resume and predict.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True, help="Optimizer.")
@click.option("--lr", type=Number(0, min_open=True), default=0.02, show_default=True, help="Peak learning rate.")
@click.option("--weight-decay", type=Number(0), default=1e-4, show_default=True,
              help="Weight decay (not applied to norm layers and biases).")
@click.option("--schedule", type=click.Choice(["cosine", "multistep"]), default="cosine", show_default=True,
              help="LR after warm-up: cosine to --min-lr-ratio, or x0.1 at 2/3 and 8/9 of the run.")
@click.option("--warmup-epochs", type=Number(0), default=1.0, show_default=True, help="Linear warm-up length.")
@click.option("--min-lr-ratio", type=Number(0, 1), default=0.01, show_default=True,
              help="Final LR as a fraction of --lr (cosine).")
@click.option("--clip-grad", type=Number(0), default=10.0, show_default=True,
              help="Clip the gradient norm to this (0 = off).")
@click.option("--ema", "ema_decay", type=Number(0, 1, max_open=True), default=0.0, show_default=True,
              help="EMA decay of the weights, e.g. 0.9998 (0 = off). The EMA weights are evaluated and saved as best.")
@click.option("--eval-every", type=click.IntRange(1), default=1, show_default=True, help="Evaluate every N epochs.")
@click.option("--save-period", type=click.IntRange(0), default=0, show_default=True,
              help="Also keep OUT/epoch<N>.pt every N epochs (0 = only last.pt and best.pt).")
@device_option
@click.option("--no-amp", is_flag=True, help="Disable bf16 autocast on the GPU.")
@click.option("--no-channels-last", is_flag=True, help="Keep NCHW memory format on the GPU.")
@click.option("--compile", is_flag=True, help="torch.compile the model (slow first epoch, faster after).")
@click.option("--workers", "-j", type=click.IntRange(0), default=2, show_default=True, help="DataLoader workers per process.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for init, shuffling and augmentation.")
@click.option("--deterministic", is_flag=True, help="Deterministic algorithms (reproducible on CPU; slower on GPU).")
@click.option("--no-augment", is_flag=True, help="Train without flips/colour jitter (letterbox only).")
@click.option("--tensorboard", is_flag=True, help="Also log to OUT/tensorboard (needs the tensorboard package).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N images of each split (smoke runs).")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/last.pt (model, optimizer, schedule, EMA, epoch); also with another number of "
                   "processes, keeping the global batch through --accumulate when it can.")
@json_option
def train_cmd(train_split, val_split, no_amp, no_channels_last, no_augment, resume, as_json, **opts):
    """Train a detector on DATA and write OUT/last.pt, OUT/best.pt (by val mAP@0.5) and OUT/results.csv.

    Multi-GPU / multi-node: run the same command under torchrun, e.g.
    `torchrun --nproc_per_node 4 -m datatools train DATA` (several nodes: add `--nnodes 2 --node-rank I
    --rdzv-endpoint HOST:PORT`); nccl on GPUs, gloo on CPU. Each process reads its shard; rank 0 evaluates the
    gathered predictions and writes the checkpoints.
    """
    import os

    from datatools.training import TrainConfig, train

    cfg = TrainConfig(train_split=train_split or None, val_split=val_split or None, amp=not no_amp,
                      channels_last=not no_channels_last, augment=not no_augment, **opts)
    main = int(os.environ.get("RANK", "0")) == 0
    con = console()

    def on_epoch(log) -> None:
        if as_json:
            return
        parts = "  ".join(f"{k.removeprefix('loss_')} {v:.3f}" for k, v in log.parts.items())
        m = "" if log.map50 is None else f"  mAP50 {log.map50:.4f}  mAP {log.map:.4f}"
        con.print(f"epoch {log.epoch:>3}  loss {log.loss:.4f}  ({parts})  lr {log.lr:.3g}  "
                  f"{log.images_per_s:.1f} img/s  {log.memory_mb:.0f} MB{m}")

    said: list[str] = []

    def on_note(text: str) -> None:  # said before the first epoch, not only at the end
        if not as_json:
            said.append(text)
            con.print(f"[yellow]note:[/] {esc(text)}")

    note = None
    with errors_to_click():
        if not resume:  # say which model and size before a long run starts (resume takes the stored ones)
            from datatools.training.config import resolve_defaults

            cfg, note = resolve_defaults(cfg)
            if note and main and not as_json:
                con.print(f"[yellow]note:[/] {esc(note)}", soft_wrap=True)
        with stage_progress(enabled=main and not as_json) as update:
            result = train(cfg, resume=resume, progress=update, on_epoch=on_epoch, on_note=on_note)
    if not main:
        return
    if as_json:
        emit_json({"out": result.out, "device": result.device, "world_size": result.world_size,
                   "epochs_run": result.epochs_run, "best_map50": result.best_map50, "last": result.last,
                   "best": result.best, "classes": list(result.classes), "notes": [note] * bool(note) + result.notes,
                   "history": [h.to_dict() for h in result.history]})
        return
    for n in result.notes:
        if n not in said:
            con.print(f"[yellow]note:[/] {esc(n)}")
    best = "n/a" if result.best_map50 is None else f"{result.best_map50:.4f}"
    con.print(f"[green]done[/]: {count(result.epochs_run, 'epoch')} on {result.device} x{result.world_size}; "
              f"best mAP50 {best}; checkpoints [bold]{esc(result.last)}[/], [bold]{esc(result.best)}[/]; "
              f"log [bold]{esc(result.out)}/results.csv[/]")
