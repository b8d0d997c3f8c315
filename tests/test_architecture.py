"""The layering the README's architecture section draws, checked from the source: every ``import`` statement
(top-level or inside a function) of every ssseg module, read with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> folder, as pyproject.toml maps them
FOLDERS = {"ssseg": "ssseg", "ssseg.train": "train", "ssseg.export": "export", "ssseg.runtime": "runtime",
           "ssseg.label": "label", "ssseg.report": "report"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "ssseg" and parts and f"ssseg.{parts[0]}" in FOLDERS:
                continue
            found[name] = path
    return found


def imports(path: Path, mods: set[str] | None = None) -> set[str]:
    """What ``path`` imports. With ``mods`` (the module names), ``from pkg import sub`` of a module ``sub``
    counts as pkg.sub alone: it needs that module, not the package's own names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            names.update(subs)
            if mods is None or not subs <= mods:
                names.add(node.module)
    return names


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {i for i in imports(p, set(mods)) if i in mods and i != m} for m, p in mods.items()}


def test_no_import_circles_between_modules():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def package_of(module: str) -> str:
    longest_first = sorted(FOLDERS, key=len, reverse=True)
    return next((p for p in longest_first if module == p or module.startswith(p + ".")), module)


def test_layers():
    mods = modules()
    for m, path in mods.items():
        found = imports(path)
        if package_of(m) == "ssseg.runtime":
            assert not any(i == "torch" or i.startswith("torch.") for i in found), f"{m} imports torch"
        if package_of(m) == "ssseg.export":
            assert not any(package_of(i) == "ssseg.train" for i in found), f"{m} imports ssseg.train"
        if package_of(m) == "ssseg.report":  # reports read files: quick, and possible where torch is not
            assert not any(i == "torch" or i.startswith("torch.") or package_of(i) in ("ssseg.train", "ssseg.export")
                           for i in found), f"{m} reaches for the networks"
        if package_of(m) in ("ssseg.runtime", "ssseg.label"):
            assert not any(package_of(i) in ("ssseg.train", "ssseg.export") for i in found), f"{m} reaches up"


def test_the_method_dispatcher_names_no_method():
    """The engine and the registry find methods by name; only train/methods/, train/config.py and the RunDir's
    table of runs from before run.json name them (export's "aux" is a graph's name, so exporter.py is not read)."""
    from ssseg.train.config import METHODS

    for path in (ROOT / "train" / "engine.py", ROOT / "train" / "registry.py", ROOT / "train" / "task.py",
                 ROOT / "train" / "setup.py", ROOT / "ssseg" / "cli.py", ROOT / "export" / "sources.py"):
        text = path.read_text()
        named = [name for name in METHODS if f'"{name}"' in text or f"'{name}'" in text]
        assert not named, f"{path.name} names {named}"


def test_every_configured_method_is_registered_and_the_other_way():
    from ssseg.train import registry
    from ssseg.train.config import METHODS

    assert sorted(METHODS) == registry.names()


# The commands and the API over them: they may use every folder, and nothing uses them.
# "ssseg": the package's lazy names
APP = {"ssseg", "ssseg.cli", "ssseg.cli_options", "ssseg.demo", "ssseg.api", "ssseg.__main__"}


def folder_of(module: str) -> str:
    return "app" if module in APP else package_of(module)


def test_folders_form_no_circle():
    """Folder level: an import from one folder into another is an edge; the folders form no circle (a label
    job calling the report while the report reads the label records was one)."""
    edges: dict[str, set[str]] = {}
    for m, deps in graph().items():
        for d in deps:
            a, b = folder_of(m), folder_of(d)
            if a != b:
                edges.setdefault(a, set()).add(b)
    assert "app" not in {b for bs in edges.values() for b in bs}, "something imports the CLI, demo or API"
    assert_no_cycle(edges, "folder circle")


# The folders' layers, bottom up, as the README's architecture section draws them: a folder imports only from
# layers below its own, so no job calls up into what reads its files (a label job or a training run writing
# its report is the API's work, after the job).
LAYERS = {"ssseg": 0, "ssseg.runtime": 1, "ssseg.label": 2, "ssseg.train": 3, "ssseg.export": 3, "ssseg.report": 3,
          "app": 4}


def test_folders_import_only_from_layers_below():
    ups = sorted(f"{m} -> {d}" for m, deps in graph().items() for d in deps
                 if folder_of(m) != folder_of(d) and LAYERS[folder_of(d)] >= LAYERS[folder_of(m)])
    assert not ups, f"imports across or up the layers: {ups}"


def assert_no_cycle(edges: dict[str, set[str]], what: str) -> None:
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                pytest.fail(f"{what}: " + " -> ".join([*path[path.index(m):], m]))
            if m not in state:
                visit(m, [*path, m])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])


def test_cpp_includes_form_no_circle():
    """cpp/: a file's module is its stem (gate.hpp + gate.cpp); an include of another module's header is an
    edge; the modules form no circle (gate.hpp took label.hpp for its options, records and lock took each
    other's headers)."""
    import re

    edges: dict[str, set[str]] = {}
    files = [*(ROOT / "cpp" / "src").glob("*.cpp"), *(ROOT / "cpp" / "include" / "ssseg").glob("*.hpp")]
    for path in files:
        for target in re.findall(r'#include "ssseg/(\w+)\.hpp"', path.read_text()):
            if target != path.stem:
                edges.setdefault(path.stem, set()).add(target)
    assert edges, "no includes found"
    assert_no_cycle(edges, "C++ include circle")


def test_the_layer_diagram_is_the_code():
    """docs/architecture.md's layer block names, for each folder, exactly the folders it imports from."""
    import re

    names = {"app": "app", "ssseg": "ssseg", **{f: f"ssseg.{f}" for f in ("train", "export", "report", "label",
                                                                          "runtime")}}
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layers: checked by tests/test_architecture.py -->", 1)[1].split("```")[1]
    drawn = {}
    for line in block.strip().splitlines():
        folder, _, uses = line.rpartition("  -> ") if "  -> " in line else (line, "", "")
        drawn[names[folder.split()[0]]] = {names[u] for u in re.split(r"[,\s]+", uses.strip()) if u}
    actual: dict[str, set[str]] = {f: set() for f in drawn}
    for m, deps in graph().items():
        for d in deps:
            if folder_of(m) != folder_of(d):
                actual[folder_of(m)].add(folder_of(d))
    assert drawn == actual
    assert list(drawn) == sorted(drawn, key=LAYERS.get, reverse=True), "the block lists the layers top down"


def test_a_long_file_says_why_at_its_top():
    """No source file over about 300 lines without a reason stated at its top (the tests aside)."""
    long = []
    folders = [*FOLDERS.values(), "benchmarks"]
    for path in sorted([*(p for f in folders for p in (ROOT / f).rglob("*.py")), *ROOT.glob("cpp/*/**/*.[ch]pp")]):
        rel = path.relative_to(ROOT)
        if "tests" in rel.parts:
            continue
        lines = path.read_text().splitlines()
        if len(lines) > 320 and not any("over 300 lines" in line.lower() for line in lines[:25]):
            long.append(f"{rel} ({len(lines)} lines)")
    assert not long, f"long files with no reason at their top: {long}"
