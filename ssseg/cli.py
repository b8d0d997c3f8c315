"""The ``ssseg`` command line. Commands are thin: options map 1:1 onto a config dataclass, heavy
imports (torch, onnx) happen inside the command so ``ssseg --help`` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ssseg.errors import NotAvailableError, SsegError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised real-time road-scene segmentation: train, evaluate, export, benchmark, auto-label.")
data_app = typer.Typer(no_args_is_help=True, help="Validate datasets and write the synthetic one.")
app.add_typer(data_app, name="data")


def _say(msg: str) -> None:
    typer.echo(msg)


@app.command()
def train(
    data: Optional[str] = typer.Option(None, help="Dataset SPEC: camvid:PATH, cityscapes:PATH, folder:PATH or synthetic[:opts]."),
    method: Optional[str] = typer.Option(None, help="supervised (more methods land with later releases)."),
    labeled_fraction: Optional[float] = typer.Option(None, help="Share of the training images used as labeled."),
    out: Optional[Path] = typer.Option(None, help="Run directory."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the paper's for the dataset)."),
    batch_size: Optional[int] = typer.Option(None, help="Images per step and process."),
    crop: Optional[str] = typer.Option(None, help="Random-crop size HxW (default: the image size after --scale)."),
    scale: Optional[str] = typer.Option(None, help="Resize images to HxW before training (e.g. 512x1024)."),
    lr: Optional[float] = typer.Option(None, help="Initial learning rate (poly decay, power 0.9)."),
    weight_decay: Optional[float] = typer.Option(None, help="SGD weight decay."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision on CUDA (default on)."),
    workers: Optional[int] = typer.Option(None, help="Data-loading worker processes."),
    eval_every: Optional[int] = typer.Option(None, help="Validate every N epochs (and after the last)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the split, initialisation and augmentation."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Warn about and count unreadable samples instead of stopping."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
    config: Optional[Path] = typer.Option(None, help="YAML or JSON file of these options; flags override it."),
) -> None:
    """Train the segmenter (stage 1: supervised on the labeled split)."""
    from ssseg.config import build_train_config

    flags = dict(data=data, method=method, labeled_fraction=labeled_fraction, out=out, epochs=epochs,
                 batch_size=batch_size, crop=crop, scale=scale, lr=lr, weight_decay=weight_decay, device=device,
                 amp=amp, workers=workers, eval_every=eval_every, seed=seed,
                 skip_bad=skip_bad or None, resume=resume or None)
    cfg = build_train_config(flags, config)
    from ssseg.train.loop import train as run_training

    run = run_training(cfg, explicit={k for k, v in flags.items() if v is not None}, log=_say)
    _say(f"run directory: {run}")


@app.command("eval")
def evaluate(
    target: Path = typer.Argument(..., help="Run directory (its best.pt) or a checkpoint file."),
    data: Optional[str] = typer.Option(None, help="Dataset SPEC (default: the one the run trained on)."),
    split: str = typer.Option("val", help="val or test."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here (default: RUN_DIR/eval_SPLIT.json)."),
    scale: Optional[str] = typer.Option(None, help="Evaluate at HxW (default: the run's --scale, else native)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Evaluate a run: mIoU, per-class IoU and pixel accuracy."""
    from ssseg.config import parse_hw
    from ssseg.train.evaluate import run_eval

    result, path = run_eval(target, data, split, json_out, device, parse_hw(scale, "--scale"))
    print_scores(result)
    _say(f"wrote {path}")


def print_scores(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=100)
    console.print(f"{result['data']} / {result['split']} ({result['images']} images)", highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name, iou in result["per_class_iou"].items():
        table.add_row(name, "-" if iou is None else f"{100 * iou:.1f}")
    table.add_section()
    table.add_row("mIoU", f"{100 * result['miou']:.1f}")
    table.add_row("pixel accuracy", f"{100 * result['pixel_acc']:.1f}")
    console.print(table)


@data_app.command("check")
def data_check(
    spec: str = typer.Argument(..., help="Dataset SPEC."),
    splits: str = typer.Option("train,val,test", help="Comma-separated splits to check (missing ones are reported)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Count bad samples instead of stopping at the first."),
) -> None:
    """Validate every image and label of a dataset; print counts and class histograms."""
    from ssseg.data.check import check_dataset, print_report

    report = check_dataset(spec, [s.strip() for s in splits.split(",") if s.strip()], skip_bad)
    print_report(report)
    if any(s.get("bad") for s in report["splits"].values()):
        raise typer.Exit(1)


@data_app.command("synth")
def data_synth(
    out: Path = typer.Argument(..., help="Folder to write (folder layout: {split}/images, {split}/labels, classes.json)."),
    size: str = typer.Option("96x128", help="Image size HxW."),
    train_count: int = typer.Option(64, "--train", help="Training images."),
    val_count: int = typer.Option(16, "--val", help="Validation images."),
    test_count: int = typer.Option(16, "--test", help="Test images."),
    seed: int = typer.Option(0, help="Generator seed."),
) -> None:
    """Write the embedded synthetic dataset to disk (readable as folder:OUT)."""
    from ssseg.config import parse_hw
    from ssseg.data.synthetic import write_synthetic

    counts = write_synthetic(out, parse_hw(size, "--size"), seed, {"train": train_count, "val": val_count, "test": test_count})
    _say(f"wrote {sum(counts.values())} images ({', '.join(f'{k} {v}' for k, v in counts.items())}) to {out}; "
         f"use it as --data folder:{out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its run."),
    epochs: int = typer.Option(100, help="Training epochs on the synthetic data."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """The main job end to end on the embedded synthetic data: train, evaluate, show where things went."""
    from ssseg.demo import run_demo

    run_demo(out, epochs, device, _say)


def _not_available(name: str, issue: str):
    def command() -> None:
        raise NotAvailableError(f"'ssseg {name}' is not available yet", fix=f"it lands with {issue}")

    command.__doc__ = f"Not available yet: lands with {issue}."
    return command


app.command("export", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    _not_available("export", "the export release (ONNX + TensorRT)"))
app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    _not_available("bench", "the runtime release"))
app.command("label", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    _not_available("label", "the auto-labeling release"))


def main() -> None:
    try:
        rc = app(standalone_mode=False)  # returns a typer.Exit's code instead of exiting
        sys.exit(rc if isinstance(rc, int) else 0)
    except SsegError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted; files written so far are complete (a training run continues with --resume)", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors in standalone_mode=False
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise
