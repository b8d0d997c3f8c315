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


def write_results(out_stem: Path, result: dict, markdown: str) -> tuple[Path, Path]:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    result = {"written": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result}
    js, md = out_stem.with_suffix(".json"), out_stem.with_suffix(".md")
    js.write_text(json.dumps(result, indent=2) + "\n")
    md.write_text(markdown)
    return js, md
