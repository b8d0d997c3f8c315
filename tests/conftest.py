"""Small on-disk dataset fixtures in every supported layout, generated from the synthetic scenes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssseg.classes import CITYSCAPES_LABEL_IDS
from ssseg.data.synthetic import render_scene

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)


def scene(split: str, i: int, size=SIZE):
    return render_scene(0, split, i, size)


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """SegNet layout with list files; labels use 11 = Unlabelled; train images as JPEG, val as PNG."""
    root = tmp_path / "camvid"
    for split, n, ext in (("train", 4, ".jpg"), ("val", 2, ".png")):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            img, lbl = scene(split, i)
            lbl = np.where(lbl > 8, 11, lbl).astype(np.uint8)  # 9 synthetic classes fit CamVid's 0..10
            lbl[:2] = 11
            Image.fromarray(img).save(root / split / f"f{i:03d}{ext}")
            Image.fromarray(lbl).save(root / f"{split}annot" / f"f{i:03d}.png")
            lines.append(f"/SegNet/CamVid/{split}/f{i:03d}{ext} /SegNet/CamVid/{split}annot/f{i:03d}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    for split in ("train", "val"):
        for city in ("aachen", "bonn"):
            (root / "leftImg8bit" / split / city).mkdir(parents=True)
            (root / "gtFine" / split / city).mkdir(parents=True)
            img, lbl = scene(split, len(city))
            label_ids = np.asarray(CITYSCAPES_LABEL_IDS, np.uint8)[lbl]
            label_ids[0, :] = 0  # 'unlabeled' -> ignore
            label_ids[1, :] = 4  # 'static' -> ignore
            stem = f"{city}_000000_000019"
            Image.fromarray(img).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            Image.fromarray(label_ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    from ssseg.data.synthetic import write_synthetic

    root = tmp_path / "folder"
    write_synthetic(root, SIZE, 0, {"train": 4, "val": 2, "test": 2})
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ssseg", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=full_env)


def kill_when(cmd: list[str], metrics: Path, records: int, env: dict, timeout: float = 240) -> int:
    """Start ``cmd``, SIGKILL it once ``metrics`` (a jsonl) holds ``records`` lines; returns the lines then."""
    import signal
    import time

    from ssseg.io import read_jsonl

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and len(read_jsonl(metrics)) < records:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(read_jsonl(metrics))
