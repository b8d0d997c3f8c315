"""Installed versions by import name, read from package metadata (nothing is imported). One import name may
come from several distributions: ``tensorrt`` from ``tensorrt`` or ``tensorrt-cu12``/``-cu13`` (whose bindings
wheel provides it), ``onnxruntime`` from ``onnxruntime`` or ``onnxruntime-gpu``."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

__version__ = "0.1.0"  # ssseg's own (pyproject.toml reads it here); every other version below is an installed one


@lru_cache(maxsize=1)
def _providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def installed_versions(*modules: str) -> dict[str, str]:
    """{import name: version} for each of ``modules`` that is installed; "VERSION (DISTRIBUTION)" when the
    distribution has another name."""
    out = {}
    for module in modules:
        for dist in sorted(set(_providers().get(module, []))):
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out[module] = version if dist.lower().replace("_", "-") == module else f"{version} ({dist})"
            break
    return out
