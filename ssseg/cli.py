"""The ``ssseg`` command line. Commands are thin: options map 1:1 onto a config dataclass, heavy
imports (torch, onnx) happen inside the command so ``ssseg --help`` stays fast."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from ssseg.config import BenchConfig, ExportConfig, LabelConfig
from ssseg.errors import Interrupted, SsegError, continue_command, filesystem_error

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised real-time road-scene segmentation: train, evaluate, export, benchmark, "
                       "auto-label.")
data_app = typer.Typer(no_args_is_help=True, help="Validate datasets and write the synthetic one.")
app.add_typer(data_app, name="data")


def _say(msg: str) -> None:
    typer.echo(msg)


def _option_parameters(groups: tuple[type, ...], types: dict[str, Any]) -> list[inspect.Parameter]:
    """One CLI option per dataclass field, declared there once: help from the field, its default shown, a help
    panel per group. Every option defaults to None here ("not given"), so --config FILE and --resume can tell
    what was given."""
    from ssseg.train.config import DATASET_DEFAULTS, PAPER_DEFAULT, panel

    params = []
    for group in groups:
        for f in dataclasses.fields(group):
            if not f.metadata.get("cli", True):
                continue
            flag = f"--{f.name.replace('_', '-')}"
            kind = types[f.name]
            if kind is bool:
                decls, shown = (f"{flag}/--no-{flag[2:]}",), (flag if f.default else f"--no-{flag[2:]}")
            else:
                decls, shown = (flag,), f.default if f.default != () else None
            if f.default is None:
                paper = [f"{k} {_text(v[f.name]) if f.name in v else 'none'}" for k, v in DATASET_DEFAULTS.items()]
                shown = f"{PAPER_DEFAULT} ({', '.join(paper)})" if any(f.name in v for v in DATASET_DEFAULTS.values()) \
                    else None
                recipe = _recipe_text(f.name)
                if recipe:
                    shown = f"the segmenter's recipe ({recipe})" + (f", else {shown}" if shown else "")
            # sizes and lists are parsed by the config
            cli_type = kind if kind in (bool, int, float, str, Path) else str
            if f.metadata.get("many"):
                cli_type = list[str]
            # the backslash keeps rich from reading the brackets as markup
            text = f.metadata["help"] + ("" if shown is None else f" \\[default: {_text(shown)}]")
            option = typer.Option(None, *decls, help=text, rich_help_panel=panel(group), show_default=False)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=Optional[cli_type]))
    return params


def _recipe_text(name: str) -> str:
    """The segmenters' recipe values of option ``name``, equal ones together: 'efficientnet-lite0/1/2 adamw, ...'."""
    from ssseg.segmenters import SPECS

    by_value: dict[str, list[str]] = {}
    for spec in SPECS.values():
        if name in spec.recipe:
            by_value.setdefault(_text(spec.recipe[name]), []).append(spec.name)
    return ", ".join(f"{_join_names(names)} {value}" for value, names in by_value.items())


def _join_names(names: list[str]) -> str:
    """['efficientnet-lite0', 'efficientnet-lite1'] -> 'efficientnet-lite0/1'."""
    head = os.path.commonprefix(names) if len(names) > 1 else ""
    return head + "/".join(n[len(head):] for n in names) if head else "/".join(names)


def _text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ("x".join(str(v) for v in value) if all(isinstance(v, int) for v in value)
                else ",".join(f"{v:g}" for v in value))
    return str(value)


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


def _train_command() -> None:
    """Register `ssseg train` with its options built from the training config (train/config.py)."""
    from ssseg.train.config import GROUPS, METHODS, TrainConfig, default_of, panel

    types = {name: _base_type(t) for name, t in typing.get_type_hints(TrainConfig).items()}
    params = _option_parameters(GROUPS, types)
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(
        None, help="YAML or JSON file of these options (their names, dashes or underscores); flags override it.",
        rich_help_panel=panel(GROUPS[0]))))

    def train(**kwargs: Any) -> None:
        _train(**kwargs)

    train.__signature__ = inspect.Signature(params)
    train.__annotations__ = {p.name: p.annotation for p in params}
    methods = "\n\n".join(f"[bold]{name}[/bold]: {text}" for name, text in METHODS.items())
    train.__doc__ = f"Train a segmenter with one of these methods (--method, default {default_of('method')}):"
    train.__doc__ += f"\n\n{methods}"
    app.command(short_help="Train a segmenter, supervised or semi-supervised (--method).")(train)


def _non_none(t: Any) -> Any:
    """int | None -> int; tuple[int, int] | None -> tuple[int, int]; anything else as it is."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if args and typing.get_origin(t) not in (tuple, list) else t


def _base_type(t: Any) -> type:
    """int | None -> int; tuple[int, int] | None -> tuple."""
    base = _non_none(t)
    return typing.get_origin(base) or base


_train_command()


@app.command("eval")
def evaluate(
    target: Path = typer.Argument(..., help="Run directory (its final segmenter) or a checkpoint file."),
    data: Optional[str] = typer.Option(None, help="Dataset SPEC (default: the one the run trained on)."),
    split: str = typer.Option("val", help="val, test, or holdout (the run's --holdout images)."),
    json_out: Optional[Path] = typer.Option(None, "--json",
                                            help="Write the result here (default: next to the checkpoint)."),
    scale: Optional[str] = typer.Option(None, help="Evaluate at HxW (default: the run's --scale, else native)."),
    gate: Optional[str] = typer.Option(None, help="Measure the confidence gate at these thresholds, e.g. 0,0.7,0.8,0.9 "
                                                  "(the run's confidence net, else max softmax), with "
                                                  "every confidence source compared on the same pixels."),
    segmenter: Optional[Path] = typer.Option(None, help="With --gate: the segmenter to gate (default: the one the "
                                                        "auxiliary net was trained against, stage 1)."),
    target_precision: Optional[float] = typer.Option(None, help="With --gate: per-class thresholds at which each "
                                                                "predicted class's kept pixels reach this precision, "
                                                                "for every confidence source."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Evaluate a run: mIoU, per-class IoU and pixel accuracy; with --gate, what the confidence gate keeps."""
    from ssseg.config import parse_hw

    if gate is None:
        from ssseg.train.evaluate import run_eval

        result, path = run_eval(target, data, split, json_out, device, parse_hw(scale, "--scale"))
        from ssseg.tables import print_scores

        print_scores(result)
    else:
        from ssseg.errors import ConfigError
        from ssseg.train.evaluate import run_gate_eval

        try:
            thresholds = tuple(float(t) for t in gate.split(",") if t.strip())
        except ValueError:
            raise ConfigError(f"--gate {gate!r} is not a list of numbers", fix="e.g. --gate 0,0.7,0.8,0.9") from None
        result, path = run_gate_eval(target, data, split, json_out, thresholds, segmenter, device,
                                     parse_hw(scale, "--scale"), target_precision=target_precision)
        from ssseg.tables import print_gate

        print_gate(result)
        _say(f"wrote {path.with_suffix('.png')}")
    _say(f"wrote {path}")


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
    out: Path = typer.Argument(..., help="Folder to write (folder layout: {split}/images, {split}/labels, "
                                         "classes.json)."),
    size: str = typer.Option("96x128", help="Image size HxW."),
    train_count: int = typer.Option(64, "--train", help="Training images."),
    val_count: int = typer.Option(16, "--val", help="Validation images."),
    test_count: int = typer.Option(16, "--test", help="Test images."),
    seed: int = typer.Option(0, help="Generator seed."),
) -> None:
    """Write the embedded synthetic dataset to disk (readable as folder:OUT)."""
    from ssseg.config import parse_hw
    from ssseg.data.synthetic import write_synthetic

    counts = write_synthetic(out, parse_hw(size, "--size"), seed,
                             {"train": train_count, "val": val_count, "test": test_count})
    _say(f"wrote {sum(counts.values())} images ({', '.join(f'{k} {v}' for k, v in counts.items())}) to {out}; "
         f"use it as --data folder:{out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its run."),
    epochs: int = typer.Option(60, help="Segmenter epochs (stages 1 and 3) on the synthetic data."),
    aux_epochs: int = typer.Option(20, help="Auxiliary-net epochs (stage 2)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """The main job end to end on the embedded synthetic data.

    The three stages of --method aux, the confidence gate, the baseline-vs-semi comparison, export and labeling."""
    from ssseg.demo import run_demo

    run_demo(out, epochs, aux_epochs, device, _say)
def _config_command(cls: type, run: Any, **command: Any) -> None:
    """Register a command whose options are the fields of ``cls`` (ssseg.config.option): each declared there
    once, with its default and help; ``run(cfg)`` does the work. Lists and sizes reach the config as text it
    parses; an option not given is left out, so the field's own default applies."""
    types = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        meta, kind = f.metadata, _base_type(types[f.name])
        required = f.default is dataclasses.MISSING
        cli_type = kind if kind in (bool, int, float, str, Path) else str  # sizes, lists, shards: the config parses
        if meta.get("positional"):
            default = typer.Argument(..., metavar=meta["metavar"], help=meta["help"])
            annotation: Any = list[str] if kind is tuple else cli_type
        else:
            flag = meta.get("flag") or f"--{f.name.replace('_', '-')}"
            decls = (f"{flag}/--no-{flag[2:]}",) if kind is bool and f.default else (flag,)
            if isinstance(f.default, tuple):  # shown as typed (1080x1920, fp32,fp16); not given: the field's
                shown = f" \\[default: {_field_text(f.default, types[f.name])}]" if f.default else ""
                default = typer.Option(None, *decls, help=meta["help"] + shown, show_default=False)
            else:
                default = typer.Option(... if required else f.default, *decls, help=meta["help"],
                                       show_default=not required and f.default not in (None, False))
            optional = isinstance(f.default, tuple) or f.default is None
            annotation = Optional[cli_type] if optional else cli_type
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                        annotation=annotation))

    def command_fn(**kwargs: Any) -> None:
        run(cls(**{k: v for k, v in kwargs.items() if v is not None}))

    command_fn.__signature__ = inspect.Signature(params)
    command_fn.__annotations__ = {p.name: p.annotation for p in params}
    command_fn.__doc__ = command.pop("doc")
    app.command(**command)(command_fn)


def _field_text(value: tuple, hint: Any) -> str:
    """A tuple default as its option is typed: a size HxW, anything else comma-separated."""
    sized = typing.get_args(_non_none(hint)) == (int, int)
    return ("x" if sized else ",").join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def _export(cfg: Any) -> None:
    from ssseg import api

    api.export(cfg, _say)


_config_command(ExportConfig, _export, name="export",
                doc="""Export a run to ONNX (and TensorRT with --trt), verified against PyTorch.

    segmenter.onnx, aux.onnx and labeler.onnx (uint8 frames in, labels + confidence out), model.json, and with
    --trt TensorRT engines.""")


def _bench(cfg: Any) -> None:
    from ssseg import api

    api.bench(cfg, _say)


_config_command(BenchConfig, _bench, name="bench",
                doc="""Frames per second and latency of each backend on one model, side by side.

    Segmenter, labeler, and labeler with host pre/post-processing, each backend in one run.""")


def _label(cfg: Any) -> None:
    from ssseg import api

    raise typer.Exit(api.label(cfg, _say))


_config_command(LabelConfig, _label, name="label", doc="""Auto-label footage with confidence-gated masks.

    Masks per frame, a manifest per source, a job summary listing the frames a person should label next.""")


@app.command()
def report(
    target: Path = typer.Argument(..., help="The --out folder of ssseg label (every shard together) or of ssseg "
                                            "train."),
    out: Optional[Path] = typer.Option(None, help="Where to write the page (default: TARGET/report.html); its JSON "
                                                  "goes beside it."),
) -> None:
    """Write a self-contained HTML report of a label job or a training run, and its data as JSON.

    Label jobs: coverage along each source, the frames to label next, class shares, damaged stretches, the model
    and gate, the commands. Runs: loss and validation curves, per-class IoU, the gate's coverage and precision,
    pseudo-label class shares, split, timings and configuration."""
    from ssseg.report.write import write_report

    write_report(target, out, _say)


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
