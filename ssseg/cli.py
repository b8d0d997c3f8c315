"""The ``ssseg`` command line: a thin shell over the Python API (ssseg.api). Each command's options are the
fields of its config (ssseg.config, ssseg.train.config), declared once there; ssseg/cli_options.py turns them
into Typer's. Heavy imports (torch, onnx) happen inside the commands, so ``ssseg --help`` stays fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ssseg.cli_options import config_command, train_command
from ssseg.config import (
    BenchConfig,
    CheckConfig,
    DemoConfig,
    EvalConfig,
    ExportConfig,
    LabelConfig,
    ReportConfig,
    SynthConfig,
)
from ssseg.errors import Interrupted, SsegError, continue_command, filesystem_error

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised real-time road-scene segmentation: train, evaluate, export, benchmark, "
                       "auto-label.")
data_app = typer.Typer(no_args_is_help=True, help="Validate datasets and write the synthetic one.")
app.add_typer(data_app, name="data")


def _say(msg: str) -> None:
    typer.echo(msg)


def _train(config: Optional[Path] = None, **flags: Any) -> None:
    from ssseg import api
    from ssseg.train.config import build_train_config

    cfg = build_train_config(flags, config)
    try:
        run = api.train(cfg, _say, explicit=[k for k, v in flags.items() if v is not None])
    except KeyboardInterrupt:
        raise Interrupted(f"every finished epoch is kept in {cfg.out} (last.pt of the stage it was in); continue "
                          f"with: {continue_command()}") from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        _say(f"run directory: {run}")


train_command(app, _train)


def _eval(cfg: EvalConfig) -> None:
    from ssseg import api
    from ssseg.tables import print_gate, print_scores

    result, path = api.evaluate(cfg)
    if cfg.gate:
        print_gate(result)
        _say(f"wrote {path.with_suffix('.png')}")
    else:
        print_scores(result)
    _say(f"wrote {path}")


config_command(app, EvalConfig, _eval, name="eval",
               doc="Evaluate a run: mIoU, per-class IoU and pixel accuracy; with --gate, what the confidence gate "
                   "keeps.")


def _check(cfg: CheckConfig) -> None:
    from ssseg.data.check import check_dataset, print_report

    report = check_dataset(cfg.spec, list(cfg.splits), cfg.skip_bad)
    print_report(report)
    if any(s.get("bad") for s in report["splits"].values()):
        raise typer.Exit(1)


config_command(data_app, CheckConfig, _check, name="check",
               doc="Validate every image and label of a dataset; print counts and class histograms.")


def _synth(cfg: SynthConfig) -> None:
    from ssseg.data.synthetic import write_synthetic

    counts = write_synthetic(cfg.out, cfg.size, cfg.seed, {"train": cfg.train, "val": cfg.val, "test": cfg.test})
    _say(f"wrote {sum(counts.values())} images ({', '.join(f'{k} {v}' for k, v in counts.items())}) to {cfg.out}; "
         f"use it as --data folder:{cfg.out}")


config_command(data_app, SynthConfig, _synth, name="synth",
               doc="Write the embedded synthetic dataset to disk (readable as folder:OUT).")


def _demo(cfg: DemoConfig) -> None:
    from ssseg.demo import run_demo

    run_demo(cfg.out, cfg.epochs, cfg.aux_epochs, cfg.device, _say)


config_command(app, DemoConfig, _demo, name="demo", doc="""The main job end to end on the embedded synthetic data.

    The three stages of --method aux, the confidence gate, the baseline-vs-semi comparison, export and labeling.""")


def _export(cfg: ExportConfig) -> None:
    from ssseg import api

    api.export(cfg, _say)


config_command(app, ExportConfig, _export, name="export",
               doc="""Export a run to ONNX (and TensorRT with --trt), verified against PyTorch.

    segmenter.onnx, aux.onnx and labeler.onnx (uint8 frames in, labels + confidence out), model.json, and with
    --trt TensorRT engines.""")


def _bench(cfg: BenchConfig) -> None:
    from ssseg import api

    api.bench(cfg, _say)


config_command(app, BenchConfig, _bench, name="bench",
               doc="""Frames per second and latency of each backend on one model, side by side.

    Segmenter, labeler, and labeler with host pre/post-processing, each backend in one run.""")


def _label(cfg: LabelConfig) -> None:
    from ssseg import api

    raise typer.Exit(api.label(cfg, _say))


config_command(app, LabelConfig, _label, name="label", doc="""Auto-label footage with confidence-gated masks.

    Masks per frame, a manifest per source, a job summary listing the frames a person should label next.""")


def _report(cfg: ReportConfig) -> None:
    from ssseg import api

    api.report(cfg, _say)


config_command(app, ReportConfig, _report, name="report",
               doc="""Write a self-contained HTML report of a label job or a training run, and its data as JSON.

    Label jobs: coverage along each source, the frames to label next, class shares, damaged stretches, the model
    and gate, the commands. Runs: loss and validation curves, per-class IoU, the gate's coverage and precision,
    pseudo-label class shares, split, timings and configuration.""")


def main() -> None:
    try:
        rc = app(standalone_mode=False)  # returns a typer.Exit's code instead of exiting
        sys.exit(rc if isinstance(rc, int) else 0)
    except SsegError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except OSError as e:  # a full disk, a read-only or misnamed --out: one line, not a traceback
        typer.echo(f"error: {filesystem_error(e)}", err=True)
        sys.exit(1)
    except Interrupted as e:
        typer.echo(f"interrupted: {e}", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted; files written so far are complete", err=True)
        sys.exit(130)
    except typer.Exit as e:
        if e.exit_code == 130 and isinstance(e.__cause__, KeyboardInterrupt):  # Typer's own Ctrl-C
            typer.echo("interrupted; files written so far are complete", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:
        # Usage errors: click's ClickException, which newer Typer vendors as typer._click; both have these.
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise
