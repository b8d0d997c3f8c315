"""Filesystem faults a user meets (read-only and full disks, a file where --out should be): one line naming the
path and the fix, nothing already written lost, and a training record that stays complete after --resume.
Disks are small tmpfs mounts, so these tests need root; elsewhere they skip with a line saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from ssseg.io import read_jsonl

TRAIN = ["--method", "supervised", "--data", "synthetic:size=32x32,train=4,val=2", "--batch-size", "2",
         "--workers", "0", "--device", "cpu"]


@pytest.fixture
def mount(tmp_path):
    """mount(size_mb, read_only) -> a fresh tmpfs folder, unmounted after the test."""
    mounted = []

    def make(size_mb: int, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root (run the tests as root to check disk faults)")
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        opts = f"size={size_mb}m" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): disk-fault tests skipped")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.slow
def test_full_disk_during_training_keeps_the_record_whole(mount, tmp_path):
    # Before: a traceback, and when the disk filled between last.pt and best.pt the resumed run's
    # metrics.jsonl lacked that epoch's line forever. 36 MB holds epoch 1 (best.pt 8 MB, last.pt 17 MB) but
    # not epoch 2's last.pt beside the old one.
    disk = mount(36)
    run = disk / "run"
    err = one_line(run_cli("train", *TRAIN, "--epochs", "3", "--out", str(run)))
    assert "no space left on device" in err and "--resume" in err and str(run) in err
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]  # no half-written temporaries
    moved = tmp_path / "run"
    shutil.copytree(run, moved)  # "free space": the same files on a disk with room
    r = run_cli("train", "--out", str(moved), "--resume")
    assert r.returncode == 0, r.stderr
    assert [m["epoch"] for m in read_jsonl(moved / "metrics.jsonl")] == [1, 2, 3]
    best = json.loads((moved / "done.json").read_text())
    assert best["epochs"] == 3


@pytest.mark.slow
def test_read_only_and_misnamed_out(mount, tmp_path, exported):
    ro = mount(1, read_only=True)
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    run = tmp_path / "run"
    assert run_cli("train", *TRAIN, "--epochs", "1", "--out", str(run)).returncode == 0
    from ssseg.data.synthetic import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "clip.mp4", 4, (48, 80))
    for out, want in ((ro / "x", "read-only"), (a_file, "a file is where a folder is needed")):
        for cmd in (["train", *TRAIN, "--epochs", "1", "--out", str(out)],
                    ["export", str(run), "--out", str(out)],
                    ["label", str(clip), "--model", str(exported), "--out", str(out)]):
            err = one_line(run_cli(*cmd))
            assert want in err and "--out" in err, (cmd[0], err)
    assert a_file.read_text() == "mine"


@pytest.mark.slow
def test_full_disk_during_export_and_label(mount, tmp_path, exported):
    run = tmp_path / "run"
    assert run_cli("train", *TRAIN, "--epochs", "1", "--out", str(run)).returncode == 0
    small = mount(1)
    err = one_line(run_cli("export", str(run), "--out", str(small / "model")))
    assert "no space left on device" in err and str(small / "model") in err
    from ssseg.data.synthetic import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "clip.mp4", 40, (240, 320))
    free = shutil.disk_usage(small).free
    (small / "filler").write_bytes(bytes(free - 48 * 1024))  # room for a few masks, not 40
    err = one_line(run_cli("label", str(clip), "--model", str(exported), "--out", str(small / "labels")))
    assert "no space left on device" in err.lower() and "--resume" in err


def interrupt_when(cmd: list[str], ready, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``cmd`` and press Ctrl-C (SIGINT, as a terminal sends it) once ``ready()`` holds."""
    import signal
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ssseg", *cmd] if cmd[0] != "cpp" else cmd[1:],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept_and_how_to_continue(tmp_path, exported):
    # Before: `ssseg train` exited 130 without a word and `ssseg label` never printed its --resume line.
    run = tmp_path / "run"
    cmd = ["train", *TRAIN, "--epochs", "30", "--out", str(run)]
    r = interrupt_when(cmd, lambda: len(read_jsonl(run / "metrics.jsonl")) >= 1)
    assert r.returncode == 130 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "interrupted: every finished epoch is kept in" in r.stderr and r.stderr.strip().endswith("--resume")
    continued = r.stderr.strip().split("continue with: ")[1].split()
    assert continued[0] == "ssseg" and continued[1:-1] == cmd  # the same command, with --resume
    from ssseg.data.synthetic import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "clip.mp4", 300, (48, 80))
    out = tmp_path / "labels"
    r = interrupt_when(["label", str(clip), "--batch", "1", "--model", str(exported), "--out", str(out)],
                       lambda: len(list((out / "clip" / "labels").glob("*.png"))) >= 5 if (out / "clip").is_dir()
                       else False)
    assert r.returncode == 130 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "frames labeled in this run are kept in" in r.stderr and r.stderr.strip().endswith("--resume"), r.stdout
    assert (out / "clip" / "manifest.json").exists(), r.stdout + r.stderr + str(sorted(out.rglob("*"))[:20])
    m = json.loads((out / "clip" / "manifest.json").read_text())
    assert m["interrupted"] and not m["complete"] and 0 < m["frames_written"] < 300
    r = subprocess.run(r.stderr.strip().split("continue with: ")[1].replace("ssseg", f"{os.sys.executable} -m ssseg", 1)
                       .split(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "clip" / "manifest.json").read_text())["frames_written"] == 300
