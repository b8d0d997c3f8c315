"""End-to-end training on tiny synthetic data: overfitting, resume, the 2-process gloo run, eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import kill_when

from ssseg.checkpoint import load_checkpoint
from ssseg.errors import ConfigError
from ssseg.io import read_jsonl
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train
from ssseg.train.evaluate import run_eval

TINY = "synthetic:size=64x64,train=8,val=4,test=4"


@pytest.mark.slow
def test_tiny_overfit_reaches_high_train_miou(tmp_path):
    """Four images, 200 steps: the segmenter must fit them (measured: mIoU ~0.79, pixel accuracy ~0.97)."""
    data = "synthetic:size=64x64,train=4,val=2,test=2"
    cfg = TrainConfig(data=data, method="supervised", out=tmp_path / "run", epochs=200, batch_size=4, lr=0.1, workers=0,
                      eval_every=200, aug_scales=(1.0,), device="cpu")
    train(cfg, log=lambda *_: None)
    result, _ = run_eval(tmp_path / "run" / "last.pt", data, "train", tmp_path / "train_eval.json", "cpu")
    assert result["miou"] > 0.7, result
    assert result["pixel_acc"] > 0.95, result


def _fast_cfg(out, **kw):
    return TrainConfig(**{**dict(data=TINY, method="supervised", out=out, epochs=3, batch_size=4, lr=0.05, workers=0,
                                 device="cpu"), **kw})


def test_run_directory_contents(tmp_path):
    run = train(_fast_cfg(tmp_path / "r", labeled_fraction=0.5, epochs=2), log=lambda *_: None)
    assert (run / "splits" / "labeled.txt").read_text().split() != []
    assert len((run / "splits" / "labeled.txt").read_text().split()) == 4
    assert len((run / "splits" / "unlabeled.txt").read_text().split()) == 4
    config = json.loads((run / "config.json").read_text())  # resolved defaults recorded: the segmenter's recipe
    assert (config["model"], config["optimizer"], config["weight_decay"], config["encoder_lr_mult"]) == \
        ("efficientnet-lite0", "adamw", 1e-2, 1.0)
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(run / "best.pt")["best_miou"] >= 0
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_fast_cfg(tmp_path / "r"), log=lambda *_: None)


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted(tmp_path):
    args = ["--method", "supervised", "--data", TINY, "--epochs", "4", "--batch-size", "4", "--lr", "0.05",
            "--workers", "0", "--device", "cpu", "--seed", "5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = subprocess.run([sys.executable, "-m", "ssseg", "train", *args, "--out", str(tmp_path / "full")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr

    victim = tmp_path / "killed"
    done = kill_when([sys.executable, "-m", "ssseg", "train", *args, "--out", str(victim)], victim / "metrics.jsonl",
                     1, env)
    assert 1 <= done < 4, "the kill should land mid-run"

    resumed = subprocess.run([sys.executable, "-m", "ssseg", "train", "--out", str(victim), "--resume"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout

    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(victim / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["iteration"] == b["iteration"]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [r["epoch"] for r in read_jsonl(victim / "metrics.jsonl")] == [1, 2, 3, 4]
    ma, mb = read_jsonl(tmp_path / "full" / "metrics.jsonl"), read_jsonl(victim / "metrics.jsonl")
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]

    again = subprocess.run([sys.executable, "-m", "ssseg", "train", "--out", str(victim), "--resume", "--lr", "0.1"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 1 and "--resume cannot change --lr" in again.stderr


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ssseg",
           "train", "--method", "supervised", "--data", TINY, "--epochs", "2", "--batch-size", "2", "--workers", "0",
           "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "2 process(es)" in proc.stdout
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]  # rank 0 alone writes: one record per epoch
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["iteration"] == 2 * 2  # 8 images / (2 processes x batch 2) = 2 steps per epoch
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
