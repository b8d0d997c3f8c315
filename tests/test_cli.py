"""The command line: help, lazy imports, a short train + eval, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from ssseg.cli import app


def test_help_lists_every_command():
    out = CliRunner().invoke(app, ["--help"]).output
    for cmd in ("train", "eval", "export", "bench", "label", "demo", "data"):
        assert cmd in out


def test_cli_import_does_not_load_torch():
    # `ssseg --help` stays fast because the CLI module imports no heavy library at import time.
    code = "import sys, ssseg.cli; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_runtime_never_imports_torch():
    code = ("import sys, ssseg.runtime, ssseg.runtime.model, ssseg.runtime.frames, ssseg.runtime.ort, "
            "ssseg.runtime.trt; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.slow
def test_train_then_eval_through_the_cli(tmp_path):
    data = "synthetic:size=64x64,train=8,val=4,test=4"
    run = tmp_path / "run"
    proc = run_cli("train", "--method", "supervised", "--data", data, "--out", str(run), "--epochs", "2",
                   "--batch-size", "4", "--workers", "0", "--device", "cpu", "--labeled-fraction", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "M parameters" in proc.stdout and "GMACs" in proc.stdout and "epoch 2/2" in proc.stdout
    proc = run_cli("eval", str(run), "--split", "test", "--json", str(tmp_path / "e.json"), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["split"] == "test" and result["images"] == 4 and 0 <= result["miou"] <= 1
    assert set(result["per_class_iou"]) == {"sky", "building", "road", "sidewalk", "vegetation", "car", "pole",
                                            "sign", "pedestrian"}
    assert "mIoU" in proc.stdout


@pytest.mark.slow
def test_eval_refuses_a_dataset_with_other_classes(tmp_path, camvid_root):
    run = tmp_path / "run"
    assert run_cli("train", "--method", "supervised", "--data", "synthetic:size=32x32,train=4,val=2", "--out", str(run),
                   "--epochs", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu").returncode == 0
    proc = run_cli("eval", str(run), "--data", f"camvid:{camvid_root}", "--device", "cpu")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "best.pt" in proc.stderr and "11 classes of 'camvid'" in proc.stderr


@pytest.mark.slow
def test_user_errors_are_one_line_naming_the_file(tmp_path):
    proc = run_cli("train", "--data", f"camvid:{tmp_path / 'nowhere'}", "--labeled-fraction", "0.5",
                   "--out", str(tmp_path / "r"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert str(tmp_path / "nowhere") in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()  # a run that failed its data checks leaves nothing to block a retry
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    proc = run_cli("eval", str(tmp_path / "junk.pt"), "--data", "synthetic")
    assert proc.returncode == 1 and "junk.pt" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--method", "aux", "--init", str(tmp_path / "r"), "--out", str(tmp_path / "r2"))
    assert proc.returncode == 1 and "add --from-stage 2" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--method", "aux", "--data", "synthetic", "--out", str(tmp_path / "r3"))
    assert proc.returncode == 1 and "--labeled-fraction below 1" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--from-stage", "2", "--data", "synthetic", "--out", str(tmp_path / "r4"))
    assert proc.returncode == 1 and "no run here to redo from stage 2" in proc.stderr
    proc = run_cli("export", str(tmp_path))
    assert (proc.returncode == 1 and "not a run directory (no config.json)" in proc.stderr
            and proc.stderr.count("\n") == 1)
    proc = run_cli("bench", str(tmp_path))
    assert proc.returncode == 1 and "no model.json here" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("label", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "labels"))
    assert proc.returncode == 1 and "no model.json here" in proc.stderr and proc.stderr.count("\n") == 1


def test_data_synth_and_check(tmp_path):
    proc = run_cli("data", "synth", str(tmp_path / "s"), "--size", "40x48", "--train", "3", "--val", "1", "--test", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("data", "check", f"folder:{tmp_path / 's'}")
    assert proc.returncode == 0, proc.stderr
    assert "road" in proc.stdout and "images" in proc.stdout
    (tmp_path / "s" / "val" / "labels" / "val_00000.png").write_bytes(b"broken")
    proc = run_cli("data", "check", f"folder:{tmp_path / 's'}")
    assert proc.returncode == 1 and "val_00000.png" in proc.stderr
    proc = run_cli("data", "check", f"folder:{tmp_path / 's'}", "--skip-bad")
    assert proc.returncode == 1 and "val_00000.png" in proc.stdout


@pytest.mark.slow
def test_demo_runs_the_three_stages_and_compares(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path / "demo"), "--epochs", "2", "--aux-epochs", "1", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    for text in ("[stage 1/3]", "[stage 2/3]", "[stage 3/3]", "Table 3", "stage 1, labeled images only",
                 "stage 3, + gated pseudo-labels"):
        assert text in proc.stdout, text
    assert (tmp_path / "demo" / "aux" / "gate_test.png").is_file()
    assert json.loads((tmp_path / "demo" / "aux" / "summary.json").read_text())["pseudo_images"] == 32
    model = json.loads((tmp_path / "demo" / "aux" / "model" / "model.json").read_text())
    assert model["verification"]["passed"] and sorted(model["graphs"]) == ["labeler", "segmenter"]
    assert model["gate"]["kind"] == "softmax" and model["gate"]["calibration"]["target_precision"] == 0.97
    assert "[4/6] export to ONNX" in proc.stdout and "label_agreement" in proc.stdout
    assert "[5/6] speed" in proc.stdout and "speed vs torch eager FP32" in proc.stdout
    assert "[6/6] auto-labeling" in proc.stdout and "clip: 48/48 frames written" in proc.stdout
    assert (tmp_path / "demo" / "labels" / "clip" / "overlay.mp4").is_file()
    assert len(list((tmp_path / "demo" / "labels" / "clip" / "labels").iterdir())) == 48
    for report in (tmp_path / "demo" / "aux" / "report.json", tmp_path / "demo" / "labels" / "report.json"):
        assert json.loads(report.read_text())["format"].startswith("ssseg.report.")
