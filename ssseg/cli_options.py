"""How a command's options become Typer's: each option is declared once, as a typed field of a config dataclass
(``ssseg.config.option``, ``ssseg.train.config``), and these functions build the command's parameters from the
fields, with the help and the default shown. ssseg/cli.py registers the commands."""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer


def config_command(app: typer.Typer, cls: type, run: Callable[[Any], Any], **command: Any) -> None:
    """Register on ``app`` a command whose options are the fields of ``cls`` (ssseg.config.option): each declared
    there once, with its default and help; ``run(cfg)`` does the work. Lists and sizes reach the config as text it
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
                shown = f" \\[default: {_text(f.default, types[f.name])}]" if f.default else ""
                default = typer.Option(None, *decls, help=meta["help"] + shown, show_default=False)
            else:
                default = typer.Option(... if required else f.default, *decls, help=meta["help"],
                                       show_default=not required and f.default is not None and f.default is not False)
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


def train_command(app: typer.Typer, run: Callable[..., Any]) -> None:
    """Register ``ssseg train`` with its options built from the training config (train/config.py); ``run`` takes
    them as keywords, None for each option not given, and ``config``: the --config FILE."""
    from ssseg.train.config import GROUPS, METHODS, TrainConfig, default_of, panel

    types = {name: _base_type(t) for name, t in typing.get_type_hints(TrainConfig).items()}
    params = train_parameters(GROUPS, types)
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(
        None, help="YAML or JSON file of these options (their names, dashes or underscores); flags override it.",
        rich_help_panel=panel(GROUPS[0]))))

    def train(**kwargs: Any) -> None:
        run(**kwargs)

    train.__signature__ = inspect.Signature(params)
    train.__annotations__ = {p.name: p.annotation for p in params}
    methods = "\n\n".join(f"[bold]{name}[/bold]: {text}" for name, text in METHODS.items())
    train.__doc__ = f"Train a segmenter with one of these methods (--method, default {default_of('method')}):"
    train.__doc__ += f"\n\n{methods}"
    app.command(short_help="Train a segmenter, supervised or semi-supervised (--method).")(train)


def train_parameters(groups: tuple[type, ...], types: dict[str, Any]) -> list[inspect.Parameter]:
    """``ssseg train``'s options, one per field of its config groups (train/config.py): help from the field, its
    default shown, a help panel per group. Every option defaults to None here ("not given"), so --config FILE and
    --resume can tell what was given."""
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

def _text(value: Any, hint: Any = None) -> str:
    """A default as its option is typed: a size HxW (a field typed tuple[int, int]; without a type, any tuple of
    integers), any other list comma-separated."""
    if not isinstance(value, (tuple, list)):
        return str(value)
    sized = (typing.get_args(_non_none(hint)) == (int, int) if hint is not None
             else all(isinstance(v, int) for v in value))
    return ("x" if sized else ",").join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def _non_none(t: Any) -> Any:
    """int | None -> int; tuple[int, int] | None -> tuple[int, int]; anything else as it is."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if args and typing.get_origin(t) not in (tuple, list) else t


def _base_type(t: Any) -> type:
    """int | None -> int; tuple[int, int] | None -> tuple."""
    base = _non_none(t)
    return typing.get_origin(base) or base
