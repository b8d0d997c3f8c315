"""The wheel holds exactly the package folders, and installs and imports without torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib
from conftest import REPO


def _package_dirs() -> dict[str, Path]:
    """Every folder with an __init__.py under the mapped roots, as its dotted import name."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {}
    for name, folder in cfg["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            dotted = ".".join([name, *rel.parts])
            # a mapped sub-package (ssseg.train) is listed under its own mapping, not as a folder of ssseg
            found.setdefault(dotted, init.parent)
    return found


def test_declared_packages_match_the_folders():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(cfg["packages"]) == sorted(_package_dirs())
    for top in ("train", "export", "runtime", "label"):
        assert cfg["package-dir"][f"ssseg.{top}"] == top


def test_wheel_contents_and_import_without_torch(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("ssseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert packages == set(_package_dirs())
    for module in ("ssseg/train/engine.py", "ssseg/train/methods/aux.py", "ssseg/models/segmenter.py",
                   "ssseg/data/synthetic.py", "ssseg/cli.py", "ssseg/report/templates/label.html",
                   "ssseg/report/templates/run.html", "ssseg/report/templates/style.css", "ssseg/label/rules.json"):
        assert module in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    # A bare venv (no torch, no dependencies): the deployment-side packages import.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import ssseg, ssseg.runtime, ssseg.export, ssseg.label, ssseg.report.write, ssseg.errors;"
            "print(ssseg.__version__, ssseg.runtime.__file__.startswith(sys.argv[1]), 'torch' in sys.modules)")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(target)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[1:] == ["True", "False"]
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True).returncode != 0
