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


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ssseg", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=full_env)


def kill_when(cmd: list[str], metrics: Path, records: int, env: dict, timeout: float = 240) -> int:
    """Start ``cmd``, SIGKILL it once ``metrics`` (a jsonl) holds ``records`` lines and last.pt beside it exists
    (the line is written before the checkpoint, so the kill lands after a saved epoch); returns the lines then."""
    import signal
    import time

    from ssseg.io import read_jsonl

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and (len(read_jsonl(metrics)) < records or not (metrics.parent / "last.pt").exists()):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(read_jsonl(metrics))


@pytest.fixture(scope="session")
def aux_run(tmp_path_factory) -> Path:
    """A finished --method aux run on tiny synthetic data (t_aux 0.7), shared by the export and runtime tests."""
    from ssseg.api import train
    from ssseg.train.config import TrainConfig

    out = tmp_path_factory.mktemp("trained") / "aux"
    cfg = TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="aux", labeled_fraction=0.5, out=out,
                      epochs=2, aux_epochs=1, batch_size=4, lr=0.05, workers=0, device="cpu", t_aux=0.7)
    return train(cfg, say=lambda *_: None)  # the API: the engine's run and its report.html


@pytest.fixture(scope="session")
def exported(aux_run, tmp_path_factory) -> Path:
    """That run exported at 64x64 with a dynamic batch 1:2:4 (no verification: the export tests cover it)."""
    from ssseg.config import ExportConfig
    from ssseg.export import run_export

    out = tmp_path_factory.mktemp("exported") / "model"
    run_export(ExportConfig(run=aux_run, out=out, dynamic_batch="1:2:4", gate="net", verify=False), say=lambda *_: None)
    return out
