"""Comparing the output folders of two label jobs (shared by tests/test_label.py and cpp/tests/parity.py)."""

from __future__ import annotations

import json
from pathlib import Path


def job_files(root: Path, skip: tuple[str, ...] = ("summary.json",)) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), manifests without their per-run records and the job
    file without its creation time: what two runs that labeled the same frames must agree on."""
    files = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and p.name not in skip:
            data = p.read_bytes()
            if p.name in ("manifest.json", "job.json"):
                m = json.loads(data)
                m.pop("runs" if p.name == "manifest.json" else "created")
                data = json.dumps(m, sort_keys=True).encode()
            files[p.relative_to(root).as_posix()] = data
    return files
