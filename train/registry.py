"""Methods by name, timm-style: ``@register("name")`` on a ``Method`` class in train/methods/, ``create(name)``.
The methods' modules are imported on first use, so a new file there is found without an edit elsewhere."""

from __future__ import annotations

import importlib
import pkgutil

from ssseg.errors import ConfigError
from ssseg.train.task import Method

_METHODS: dict[str, type[Method]] = {}


def register(name: str):
    def add(cls: type[Method]) -> type[Method]:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice ({_METHODS[name].__module__}, {cls.__module__})")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return add


def _load_all() -> None:
    import ssseg.train.methods as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def names() -> list[str]:
    _load_all()
    return sorted(_METHODS)


def create(name: str) -> Method:
    _load_all()
    if name not in _METHODS:
        raise ConfigError(f"unknown --method {name!r}", fix=f"choose one of {', '.join(sorted(_METHODS))}")
    return _METHODS[name]()
