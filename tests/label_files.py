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


def damaged_clip(path: Path, frames: int = 40, zero_bytes: int = 3000) -> Path:
    """An H.264 mp4 (index at the start) with ``zero_bytes`` zeroed at half its size: a damaged spot mid-file,
    as real cameras leave them. At 48x80 and 40 frames it costs frames 21-23 (both decoders agree)."""
    from ssseg.data.synthetic import write_synthetic_clip

    write_synthetic_clip(path, frames, (48, 80))
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + zero_bytes] = bytes(zero_bytes)
    path.write_bytes(bytes(data))
    return path
