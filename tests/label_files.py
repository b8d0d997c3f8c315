"""Comparing the output folders of two label jobs (shared by tests/test_label.py and cpp/tests/parity.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
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


def finished_files(folder: Path) -> int:
    """Files in ``folder`` that are in place (hidden temporaries excluded); 0 before it exists."""
    return len([n for n in os.listdir(folder) if not n.startswith(".")]) if folder.is_dir() else 0


def kill_after_files(cmd: list[str], folder: Path, count: int, timeout: float) -> int:
    """Start ``cmd``, SIGKILL it once ``folder`` holds ``count`` finished files; returns the finished files
    then (at least ``count`` unless the command ended or the timeout passed first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and finished_files(folder) < count:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return finished_files(folder)
