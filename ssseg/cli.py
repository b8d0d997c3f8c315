"""The ``ssseg`` command line. Commands are thin: options map 1:1 onto a config dataclass, heavy
imports (torch, onnx) happen inside the command so ``ssseg --help`` stays fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ssseg.errors import SsegError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised real-time road-scene segmentation: train, evaluate, export, benchmark, auto-label.")
data_app = typer.Typer(no_args_is_help=True, help="Validate datasets and write the synthetic one.")
app.add_typer(data_app, name="data")


def _say(msg: str) -> None:
    typer.echo(msg)


@app.command()
def train(
    data: Optional[str] = typer.Option(None, help="Dataset SPEC: camvid:PATH, cityscapes:PATH, folder:PATH or synthetic[:opts]."),
    method: Optional[str] = typer.Option(None, help="aux (default: the paper's three stages), supervised (stage 1 only), "
                                                    "adversarial (Hung et al.), dual-disc (two discriminators), latent "
                                                    "(latent classes) or self-train (three stages, mean teacher)."),
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
    t_aux: Optional[float] = typer.Option(None, help="aux: confidence threshold of the pseudo-labels (default 0.9)."),
    aux_epochs: Optional[int] = typer.Option(None, help="aux: epochs of the auxiliary net (default 50)."),
    aux_lr: Optional[float] = typer.Option(None, help="aux: Adam learning rate of the auxiliary net (default 5e-4)."),
    aux_weight_decay: Optional[float] = typer.Option(None, help="aux: its weight decay (CamVid 5e-4, others 1e-4)."),
    aux_input: Optional[str] = typer.Option(None, help="aux: what the auxiliary net sees: probs (default) or probs+rgb."),
    stage3_init: Optional[str] = typer.Option(None, help="aux: stage-3 segmenter starts fresh (default) or finetune (from stage 1)."),
    from_stage: Optional[int] = typer.Option(None, help="aux/self-train: redo an existing run from stage N (1-3); earlier stages are kept."),
    init: Optional[Path] = typer.Option(None, help="aux/self-train, with --from-stage 2: stage 1 is this run's final segmenter (RUN_DIR or .pt)."),
    until_stage: Optional[int] = typer.Option(None, help="aux/self-train: stop after stage N (e.g. 2: an auxiliary net for an --init segmenter)."),
    adv_warmup: Optional[str] = typer.Option(None, help="adversarial/dual-disc: iterations (5000) or epochs (10ep) before the semi-supervised terms."),
    lambda_adv: Optional[float] = typer.Option(None, help="adversarial/dual-disc/latent: adversarial weight on labeled images (0.01)."),
    lambda_adv_unlabeled: Optional[float] = typer.Option(None, help="adversarial: adversarial weight on unlabeled images (0.001)."),
    lambda_semi: Optional[float] = typer.Option(None, help="adversarial/dual-disc: weight of the pseudo-label loss; latent: of L_unlabeled (0.1)."),
    t_semi: Optional[float] = typer.Option(None, help="adversarial: discriminator confidence that admits a pseudo-label pixel (0.2)."),
    disc_lr: Optional[float] = typer.Option(None, help="adversarial/dual-disc/latent: Adam learning rate of the discriminators (1e-4)."),
    latent_classes: Optional[int] = typer.Option(None, help="latent: number of latent classes (20)."),
    st_lr: Optional[float] = typer.Option(None, help="self-train: Adam learning rate of stages 2 and 3 (5e-4)."),
    lambda_con: Optional[float] = typer.Option(None, help="self-train: weight of the mean-teacher consistency loss (0.5)."),
    lambda_pl: Optional[float] = typer.Option(None, help="self-train: weight of the pseudo-mask head's loss (0.5)."),
    ema_decay: Optional[float] = typer.Option(None, help="self-train: the mean teacher's EMA decay (0.99)."),
    st_all_batch: Optional[int] = typer.Option(None, help="self-train: images per step drawn from all training images (default: half --batch-size)."),
    config: Optional[Path] = typer.Option(None, help="YAML or JSON file of these options; flags override it."),
) -> None:
    """Train: --method aux runs stage 1 (segmenter on labeled images), stage 2 (auxiliary confidence net),
    stage 3 (gated pseudo-labels, retrain on all); --method supervised runs stage 1 alone; the other methods
    train the same segmenter their papers' way (see the README)."""
    from ssseg.config import build_train_config

    flags = dict(data=data, method=method, labeled_fraction=labeled_fraction, out=out, epochs=epochs,
                 batch_size=batch_size, crop=crop, scale=scale, lr=lr, weight_decay=weight_decay, device=device,
                 amp=amp, workers=workers, eval_every=eval_every, seed=seed,
                 skip_bad=skip_bad or None, resume=resume or None, t_aux=t_aux, aux_epochs=aux_epochs, aux_lr=aux_lr,
                 aux_weight_decay=aux_weight_decay, aux_input=aux_input, stage3_init=stage3_init, from_stage=from_stage,
                 adv_warmup=adv_warmup, lambda_adv=lambda_adv, lambda_adv_unlabeled=lambda_adv_unlabeled,
                 lambda_semi=lambda_semi, t_semi=t_semi, disc_lr=disc_lr, init=init, until_stage=until_stage,
                 latent_classes=latent_classes, st_lr=st_lr, lambda_con=lambda_con, lambda_pl=lambda_pl,
                 ema_decay=ema_decay, st_all_batch=st_all_batch)
    cfg = build_train_config(flags, config)
    from ssseg.train.loop import train as run_training

    run = run_training(cfg, explicit={k for k, v in flags.items() if v is not None}, log=_say)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        _say(f"run directory: {run}")


@app.command("eval")
def evaluate(
    target: Path = typer.Argument(..., help="Run directory (its final segmenter) or a checkpoint file."),
    data: Optional[str] = typer.Option(None, help="Dataset SPEC (default: the one the run trained on)."),
    split: str = typer.Option("val", help="val or test."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here (default: next to the checkpoint)."),
    scale: Optional[str] = typer.Option(None, help="Evaluate at HxW (default: the run's --scale, else native)."),
    gate: Optional[str] = typer.Option(None, help="Measure the confidence gate at these thresholds, e.g. 0,0.7,0.8,0.9 "
                                                  "(a --method aux run: segmenter + auxiliary net)."),
    segmenter: Optional[Path] = typer.Option(None, help="With --gate: the segmenter to gate (default: the one the "
                                                        "auxiliary net was trained against, stage 1)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Evaluate a run: mIoU, per-class IoU and pixel accuracy; with --gate, what the confidence gate keeps."""
    from ssseg.config import parse_hw

    if gate is None:
        from ssseg.train.evaluate import run_eval

        result, path = run_eval(target, data, split, json_out, device, parse_hw(scale, "--scale"))
        print_scores(result)
    else:
        from ssseg.errors import ConfigError
        from ssseg.train.evaluate import run_gate_eval

        try:
            thresholds = tuple(float(t) for t in gate.split(",") if t.strip())
        except ValueError:
            raise ConfigError(f"--gate {gate!r} is not a list of numbers", fix="e.g. --gate 0,0.7,0.8,0.9") from None
        result, path = run_gate_eval(target, data, split, json_out, thresholds, segmenter, device,
                                     parse_hw(scale, "--scale"))
        print_gate(result)
        _say(f"wrote {path.with_suffix('.png')}")
    _say(f"wrote {path}")


def print_gate(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    auroc = "-" if result["auroc"] is None else f"{result['auroc']:.3f}"
    ece = "-" if result["ece"] is None else f"{100 * result['ece']:.1f}%"
    console.print(f"{result['data']} / {result['split']} ({result['images']} images): segmenter mIoU "
                  f"{100 * result['segmenter_miou']:.1f}; confidence vs correctness AUROC {auroc}, ECE {ece}",
                  highlight=False)
    table = Table(title="confidence gate (the paper's Table 3)")
    for col in ("T_aux", "kept-pixel mIoU %", "class semi ratio %", "selected pixels %"):
        table.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for g in result["gates"]:
        table.add_row(f"{g['threshold']:g}", fmt(g["kept_miou"]), fmt(g["class_semi_ratio"]), fmt(g["selected_share"]))
    console.print(table)
    per_class = Table(title="per class: IoU % / semi ratio % (the paper's Table 4)")
    per_class.add_column("class")
    for g in result["gates"]:
        per_class.add_column(f"T={g['threshold']:g}", justify="right")
    for name in result["gates"][0]["per_class"]:
        per_class.add_row(name, *(f"{fmt(g['per_class'][name]['iou'])} / {fmt(g['per_class'][name]['semi_ratio'])}"
                                  for g in result["gates"]))
    console.print(per_class)
    rel = Table(title="reliability (10 bins)")
    for col in ("confidence", "pixels %", "mean confidence", "accuracy"):
        rel.add_column(col, justify="right")
    total = max(sum(r["pixels"] for r in result["reliability"]), 1)
    for r in result["reliability"]:
        rel.add_row(f"{r['bin'][0]:.1f}-{r['bin'][1]:.1f}", f"{100 * r['pixels'] / total:.1f}",
                    fmt(r["mean_confidence"]), fmt(r["accuracy"]))
    console.print(rel)


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
    epochs: int = typer.Option(100, help="Segmenter epochs (stages 1 and 3) on the synthetic data."),
    aux_epochs: int = typer.Option(30, help="Auxiliary-net epochs (stage 2)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """The main job end to end on the embedded synthetic data: the three stages of --method aux, the
    confidence gate, and the baseline-vs-semi comparison."""
    from ssseg.demo import run_demo

    run_demo(out, epochs, aux_epochs, device, _say)
@app.command()
def export(
    run: Path = typer.Argument(..., help="Run directory written by ssseg train."),
    out: Optional[Path] = typer.Option(None, help="Model directory to write (default: RUN/model)."),
    segmenter: Optional[Path] = typer.Option(None, help="Export this segmenter checkpoint instead of the run's final one."),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Write the ONNX graphs (--no-onnx: build engines from an earlier export)."),
    opset: int = typer.Option(17, help="ONNX opset (TensorRT 8.6 parses up to 17)."),
    input_size: Optional[str] = typer.Option(None, help="Static input size HxW, multiples of 8 (default: the training size)."),
    batch: int = typer.Option(1, help="Fixed batch size."),
    dynamic_batch: Optional[str] = typer.Option(None, help="Dynamic batch MIN:OPT:MAX instead of --batch."),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Clean the graphs with onnxslim."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare ONNX Runtime with PyTorch; fail beyond tolerance."),
    calib_data: Optional[Path] = typer.Option(None, help="Folder of real frames for verification and INT8 calibration."),
    verify_images: int = typer.Option(8, help="Frames compared in verification and engine checks."),
    threshold: Optional[float] = typer.Option(None, help="Default confidence threshold in model.json (default: the run's --t-aux)."),
    trt: bool = typer.Option(False, "--trt", help="Also build TensorRT engines (needs tensorrt + pycuda and a GPU)."),
    precision: str = typer.Option("fp16", help="Engine precisions, comma-separated: fp32, fp16, int8, best."),
    calib_images: int = typer.Option(500, help="INT8: calibration frames taken from --calib-data."),
    workspace_mb: int = typer.Option(2048, help="TensorRT builder workspace limit in MiB."),
    timing_cache: Optional[Path] = typer.Option(None, help="TensorRT timing cache file (default: OUT/trt.timing.cache)."),
) -> None:
    """Export a run: segmenter.onnx, aux.onnx and labeler.onnx (uint8 frames in, labels + confidence out),
    verified against PyTorch, model.json, and with --trt TensorRT engines."""
    from ssseg.config import ExportConfig
    from ssseg.export import run_export

    cfg = ExportConfig(run=run, out=out, segmenter=segmenter, onnx=onnx, opset=opset, input_size=input_size, batch=batch,
                       dynamic_batch=dynamic_batch, simplify=simplify, verify=verify, calib_data=calib_data,
                       verify_images=verify_images, threshold=threshold, trt=trt, precision=precision,
                       calib_images=calib_images, workspace_mb=workspace_mb, timing_cache=timing_cache)
    run_export(cfg, _say)


@app.command()
def bench(
    model: Path = typer.Argument(..., help="Model directory written by ssseg export (holds model.json)."),
    backend: str = typer.Option("auto", help="Comma-separated NAME[:VARIANT]: trt[:fp16|int8..], ort[:cpu|cuda|tensorrt], "
                                             "torch[:fp16+channels_last+compile+cudagraphs], auto."),
    batch: str = typer.Option("1", help="Comma-separated batch sizes."),
    iters: int = typer.Option(100, help="Timed calls per case."),
    warmup: int = typer.Option(20, help="Untimed calls before timing."),
    input_size: Optional[str] = typer.Option(None, help="HxW; must be the model's (graphs are static). Default: the model's."),
    frame_size: str = typer.Option("1080x1920", help="Decoded frame size for the labeler+host stage."),
    stages: str = typer.Option("segmenter,labeler,labeler+host", help="Which stages to time."),
    compare: bool = typer.Option(False, "--compare", help="Speed ratio of each backend to torch eager FP32 (added if absent)."),
    run: Optional[Path] = typer.Option(None, help="torch backend: load this run's weights instead of model.json's."),
    threads: Optional[int] = typer.Option(None, help="ort on CPU: intra-op threads (default: the cores this process may use)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
) -> None:
    """Frames per second and latency of each backend on one model: segmenter, labeler, labeler with host
    pre/post-processing, side by side in one run."""
    from ssseg.config import BenchConfig
    from ssseg.runtime.bench import run_bench

    cfg = BenchConfig(model=model, backends=backend, batch=batch, iters=iters, warmup=warmup, input_size=input_size,
                      frame_size=frame_size, stages=stages, compare=compare, run=run, threads=threads, json=json_out)
    run_bench(cfg, _say)


@app.command()
def label(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Video files, image folders, globs, list files "
                                                                     "(.txt, one input per line), stream URLs, /dev/videoN."),
    model: Path = typer.Option(..., help="Model directory written by ssseg export (holds model.json)."),
    out: Path = typer.Option(..., help="Output directory (created; refused if it holds other files)."),
    threshold: Optional[float] = typer.Option(None, help="Confidence gate: pixels below it become 255 (default: model.json's)."),
    every: Optional[int] = typer.Option(None, help="Label every K-th frame."),
    fps: Optional[float] = typer.Option(None, help="Or label F frames per second of video time (variable frame rates too)."),
    batch: Optional[int] = typer.Option(None, help="Frames per inference call (default: the model's optimal batch)."),
    backend: str = typer.Option("auto", help="auto, trt[:PRECISION], ort[:PROVIDER] (or torch, for comparisons)."),
    format: str = typer.Option("png", "--format", help="png, cityscapes or camvid (SegNet layout)."),
    confidence: bool = typer.Option(False, "--confidence", help="Also write the confidence map as an 8-bit PNG."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write an MP4 per source with the gated mask blended in."),
    min_coverage: Optional[float] = typer.Option(None, help="Skip writing frames whose confident share is below C (they are listed)."),
    shard: Optional[str] = typer.Option(None, help="I/N: label only shard I (0-based) of N, for N machines or array jobs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted job in --out: done frames are skipped."),
    threads: Optional[int] = typer.Option(None, help="ort on CPU: intra-op threads (default: the cores this process may use)."),
    writers: int = typer.Option(2, help="PNG-writing threads."),
) -> None:
    """Auto-label footage: confidence-gated masks per frame, a manifest per source, a job summary listing the
    frames a person should label next."""
    from ssseg.config import LabelConfig
    from ssseg.label import run_label

    cfg = LabelConfig(inputs=tuple(inputs), model=model, out=out, threshold=threshold, every=every, fps=fps, batch=batch,
                      backend=backend, format=format, confidence=confidence, overlay=overlay, min_coverage=min_coverage,
                      shard=shard, resume=resume, threads=threads, writers=writers)
    raise typer.Exit(run_label(cfg, _say))


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
    except typer.Abort:
        sys.exit(1)
    except Exception as e:
        # Usage errors: click's ClickException, which newer Typer vendors as typer._click; both have these.
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise
