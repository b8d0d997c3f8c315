"""Helpers shared by the benchmark scripts: machine description and result writing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    return info


def schedule_args(p) -> None:
    """The training schedule every arm of a CamVid comparison shares (an argparse parser's options)."""
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps of every arm")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--scale", default="180x240")
    p.add_argument("--workers", type=int, default=2)


def write_results(out_stem: Path, result: dict, markdown: str, show: bool = False) -> tuple[Path, Path]:
    """``out_stem``.json and .md; with ``show`` the markdown and both paths are printed too."""
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    result = {"written": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result}
    js, md = out_stem.with_suffix(".json"), out_stem.with_suffix(".md")
    js.write_text(json.dumps(result, indent=2) + "\n")
    md.write_text(markdown)
    if show:
        print(markdown, flush=True)
        print(f"wrote {js} and {md}")
    return js, md


def recorded_rows(out_stem: Path, settings: dict, key) -> dict:
    """Rows an earlier invocation wrote into ``out_stem``.json, by ``key(row)``, if it ran with the same
    ``settings`` (each key present in both must agree). The results file is the record of a finished run: a
    rerun from a fresh clone, or after runs/ was cleaned, keeps these rows instead of training them again."""
    js = out_stem.with_suffix(".json")
    try:
        old = json.loads(js.read_text())
    except (OSError, ValueError):
        return {}
    before = old.get("settings", {})
    if any(before[k] != v for k, v in settings.items() if k in before):
        return {}
    return {key(r): r for r in old.get("rows", [])}
