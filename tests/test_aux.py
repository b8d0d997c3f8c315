"""--method aux: the auxiliary loss against a slow reference, targets, gating, the gate measurements,
and the three stages end to end (skipping, resuming, redoing from a stage) on tiny synthetic data."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import kill_when, run_cli
from PIL import Image

from ssseg.checkpoint import load_checkpoint
from ssseg.classes import IGNORE_INDEX
from ssseg.errors import ConfigError
from ssseg.gate import FREE_SOURCES, apply
from ssseg.io import read_jsonl
from ssseg.metrics import auroc, gate_scores, reliability
from ssseg.models.confidence import width_kwargs
from ssseg.rundir import resolve_checkpoint
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train
from ssseg.train.gate import CONF_BINS, GateCounts
from ssseg.train.losses import aux_gamma, aux_loss, aux_targets

# --- the loss ---------------------------------------------------------------------------------------


def reference_aux_loss(z, y, gt, w, g):
    """Eq. (1) pixel by pixel in float64 Python math, divided by the valid pixel count."""
    total, n = 0.0, 0
    for zi, yi, ci in zip(z.flatten().tolist(), y.flatten().tolist(), gt.flatten().tolist()):
        if ci == IGNORE_INDEX:
            continue
        a = 1.0 / (1.0 + math.exp(-zi))
        total -= w[ci] * (g[ci] * yi * math.log(a) + (1.0 - yi) * math.log(1.0 - a))
        n += 1
    return total / max(n, 1)


def test_aux_loss_matches_a_slow_reference():
    gen = torch.Generator().manual_seed(0)
    c = 5
    gt = torch.randint(0, c - 1, (2, 6, 7), generator=gen)  # class 4 is absent from the batch
    gt[0, 0, :3] = IGNORE_INDEX
    pred = torch.randint(0, c, (2, 6, 7), generator=gen)
    y, valid = aux_targets(pred, gt)
    z = torch.randn(2, 1, 6, 7, generator=gen) * 3
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 9.0])
    g = torch.tensor([0.1, 1.0, 4.0, 0.0, 1.0])
    got = aux_loss(z, y, gt, w, g)
    assert got.item() == pytest.approx(reference_aux_loss(z, y, gt, w.tolist(), g.tolist()), rel=1e-5)
    assert valid.sum() == 2 * 6 * 7 - 3


def test_aux_loss_stays_finite_for_saturated_logits_and_extreme_classes():
    gt = torch.tensor([[[0, 0, 1, 1], [2, 2, IGNORE_INDEX, IGNORE_INDEX]]])
    pred = torch.tensor([[[0, 0, 0, 0], [2, 2, 0, 0]]])  # class 0 all right, class 1 all wrong
    y, _ = aux_targets(pred, gt)
    assert y.tolist() == [[[1, 1, 0, 0], [1, 1, 0, 0]]]
    gamma = torch.from_numpy(aux_gamma(np.array([2, 0, 2]), np.array([0, 2, 0])))
    z = torch.tensor([[[[-200.0, 300.0, 500.0, -400.0], [1e4, -1e4, 0.0, 0.0]]]], requires_grad=True)
    loss = aux_loss(z, y, gt, torch.ones(3), gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert z.grad[0, 0, 1, 2:].abs().sum() == 0  # ignore pixels get no gradient
    # wrong-but-confident (500 where y = 0) costs about 500 per pixel: the log terms are not clipped
    assert loss.item() > 100
    empty = aux_loss(z, y, torch.full_like(gt, IGNORE_INDEX), torch.ones(3), gamma)
    assert empty.item() == 0.0


def test_gamma_is_negative_over_positive_and_neutral_without_evidence():
    g = aux_gamma(np.array([90, 0, 50, 0]), np.array([10, 40, 0, 0]))
    assert g.tolist() == pytest.approx([10 / 90, 1.0, 1.0, 1.0])


def test_gate_keeps_confident_pixels_only():
    pred = np.array([[1, 2], [3, 4]], np.uint8)
    conf = np.array([[0.95, 0.9], [0.899, 0.1]], np.float32)
    assert apply(pred, conf, 0.9).tolist() == [[1, 2], [IGNORE_INDEX, IGNORE_INDEX]]
    assert apply(pred, conf, 0.0).tolist() == pred.tolist()


# --- the measurements -------------------------------------------------------------------------------


def test_auroc_and_reliability_from_counts():
    assert auroc(np.array([0, 0, 5]), np.array([5, 0, 0])) == 1.0
    assert auroc(np.array([5, 0, 0]), np.array([0, 0, 5])) == 0.0
    assert auroc(np.array([3, 3]), np.array([3, 3])) == pytest.approx(0.5)
    assert auroc(np.array([1, 2]), np.array([0, 0])) is None
    joint = np.zeros((10, 2, 2), np.int64)
    joint[9, 0, 0], joint[9, 0, 1], joint[2, 1, 1] = 9, 1, 4
    rows = reliability(joint, np.array([0, 0, 4 * 0.25, 0, 0, 0, 0, 0, 0, 10 * 0.95]), bins=10)
    assert rows[9] == {"bin": [0.9, 1.0], "pixels": 10, "mean_confidence": pytest.approx(0.95), "accuracy": 0.9}
    assert rows[2]["accuracy"] == 1.0 and rows[0]["pixels"] == 0


def test_gate_scores_on_a_hand_made_confusion():
    everything = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])  # class 2 never occurs
    kept = np.array([[6, 0, 0], [0, 3, 0], [0, 0, 0]])
    s = gate_scores(kept, everything, ["a", "b", "c"])
    assert s["kept_miou"] == 1.0 and s["selected_share"] == pytest.approx(9 / 20)
    assert s["class_semi_ratio"] == pytest.approx((6 / 10 + 3 / 10) / 2)
    assert s["per_class"]["c"] == {"iou": None, "semi_ratio": None}
    assert gate_scores(np.zeros_like(kept), everything, ["a", "b", "c"])["kept_miou"] is None


def test_gate_counts_agree_with_a_direct_numpy_computation():
    rng = np.random.default_rng(1)
    c, thresholds = 4, (0.0, 0.5, 0.9)
    counts = GateCounts(c, thresholds, torch.device("cpu"))
    gts, preds, confs = [], [], []
    for _ in range(3):
        gt = rng.integers(0, c, (1, 9, 11))
        gt[0, 0] = IGNORE_INDEX
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, c, gt.shape)) % c
        z = rng.normal(size=(1, 1, 9, 11)) * 3
        counts.add(torch.from_numpy(z), torch.from_numpy(pred), torch.from_numpy(gt))
        gts.append(gt.ravel()), preds.append(pred.ravel()), confs.append(1 / (1 + np.exp(-z.ravel())))
    gt, pred, conf = (np.concatenate(a) for a in (gts, preds, confs))
    valid = gt != IGNORE_INDEX
    s = counts.summary(["a", "b", "c", "d"])
    for g in s["gates"]:
        keep = valid & (conf.astype(np.float32) >= g["threshold"])
        assert g["selected_share"] == pytest.approx(keep.sum() / valid.sum())
    right = (gt == pred)[valid]
    cv = conf[valid]
    pairs = (cv[right][:, None] > cv[~right][None, :]).mean() + 0.5 * (cv[right][:, None] == cv[~right][None, :]).mean()
    assert s["auroc"] == pytest.approx(pairs, abs=2e-3)  # logits binned at 0.01
    assert s["curve"][0]["coverage"] == 1.0 and len(s["curve"]) == CONF_BINS
    assert s["gates"][0]["kept_miou"] == pytest.approx(s["segmenter_miou"])
    assert sum(r["pixels"] for r in s["reliability"]) == valid.sum()


# --- the three stages -------------------------------------------------------------------------------

TINY = "synthetic:size=64x64,train=12,val=4,test=4"


def aux_cfg(out, **kw):
    base = dict(data=TINY, method="aux", labeled_fraction=0.5, out=out, epochs=3, aux_epochs=2, batch_size=3, lr=0.05,
                workers=0, device="cpu", t_aux=0.5)
    return TrainConfig(**{**base, **kw})


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_stages_end_to_end_then_skip_and_redo(tmp_path, folder_root):
    before = {p: digest(p) for p in folder_root.rglob("*") if p.is_file()}
    data = f"folder:{folder_root}"
    logs: list[str] = []
    run = train(aux_cfg(tmp_path / "run", data=data), log=logs.append)
    for stage in ("stage1", "stage2", "stage3"):
        assert (run / stage / "done.json").is_file() and (run / stage / "best.pt").is_file()
    terms = json.loads((run / "stage2" / "aux_terms.json").read_text())
    assert terms["c"] == 1.04 and len(terms["gamma"]) == 9
    labeled = (run / "splits" / "labeled.txt").read_text().split()
    unlabeled = (run / "splits" / "unlabeled.txt").read_text().split()
    manifest = json.loads((run / "stage3" / "pseudo" / "manifest.json").read_text())
    assert manifest["threshold"] == 0.5 and manifest["images"] == len(unlabeled) == 2
    assert manifest["segmenter"] == "stage1/best.pt" and manifest["aux"] == "stage2/best.pt"
    for row in manifest["per_image"]:
        label = np.asarray(Image.open(run / "stage3" / "pseudo" / "labels" / f"{row['id']}.png"))
        conf = np.asarray(Image.open(run / "stage3" / "pseudo" / "confidence" / f"{row['id']}.png"))
        image = np.asarray(Image.open(folder_root / "train" / "images" / f"{row['id']}.png"))
        assert label.shape == conf.shape == image.shape[:2]
        assert row["kept"] == int((label != IGNORE_INDEX).sum())
        assert row["class_pixels"] == np.bincount(label[label != 255].ravel(), minlength=9)[:9].tolist()
        # the gate: no kept pixel below the threshold, no dropped pixel clearly above it (8-bit rounding)
        assert (conf[label != IGNORE_INDEX] >= 127).all() and (conf[label == IGNORE_INDEX] <= 128).all()
    assert not set(labeled) & {r["id"] for r in manifest["per_image"]}
    stage3 = load_checkpoint(run / "stage3" / "last.pt")
    # stage 1 saw the 2 labeled images (one short batch per epoch), stage 3 2 labeled + 2 pseudo (one full batch)
    assert load_checkpoint(run / "stage1" / "last.pt")["iteration"] == 3
    assert stage3["stage"] == 3 and stage3["iteration"] == 3
    assert resolve_checkpoint(run) == run / "stage3" / "best.pt"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"stage1_val_miou", "stage3_val_miou", "gain", "pseudo_kept_share"}
    assert {p: digest(p) for p in folder_root.rglob("*") if p.is_file()} == before  # ground truth untouched

    # re-running skips every finished stage
    stamps = {s: digest(run / s / "best.pt") for s in ("stage1", "stage2", "stage3")}
    logs.clear()
    train(aux_cfg(tmp_path / "run", data=data, resume=True), {"resume"}, log=logs.append)
    assert sum("is finished; skipped" in line for line in logs) == 3
    assert {s: digest(run / s / "best.pt") for s in stamps} == stamps

    # --from-stage 3 may change stage-3 options only; earlier stages stay, the old stage 3 is set aside
    with pytest.raises(ConfigError, match="--from-stage 3 cannot change --aux-epochs"):
        train(aux_cfg(tmp_path / "run", data=data, from_stage=3, aux_epochs=5), {"from_stage", "aux_epochs"})
    with pytest.raises(ConfigError, match="--from-stage 1 cannot change --labeled-fraction"):
        train(aux_cfg(tmp_path / "run", data=data, from_stage=1, labeled_fraction=0.25),
              {"from_stage", "labeled_fraction"})
    train(aux_cfg(tmp_path / "run", data=data, from_stage=3, t_aux=0.0), {"from_stage", "t_aux"}, log=logs.append)
    assert json.loads((run / "stage3" / "pseudo" / "manifest.json").read_text())["kept_share"] == 1.0
    assert (digest(run / "stage1" / "best.pt") == stamps["stage1"]
            and digest(run / "stage2" / "best.pt") == stamps["stage2"])
    assert [p.name for p in (run / "replaced").glob("*/*")] == ["stage3"]
    assert json.loads((run / "config.json").read_text())["t_aux"] == 0.0


def test_strong_view_changes_only_stage_two_and_stays_reproducible(tmp_path):
    runs = {}
    for name, strong in (("plain", False), ("strong", True), ("again", True)):
        runs[name] = train(aux_cfg(tmp_path / name, epochs=1, aux_epochs=1, until_stage=2, aux_strong_view=strong),
                           log=lambda *_: None)
    weights = {k: {s: torch.load(r / s / "last.pt", weights_only=False)["state_dict"] for s in ("stage1", "stage2")}
               for k, r in runs.items()}
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(weights["plain"]["stage1"], weights["strong"]["stage1"])
    assert not same(weights["plain"]["stage2"], weights["strong"]["stage2"])
    assert same(weights["strong"]["stage2"], weights["again"]["stage2"])


def test_stages_one_and_two_need_no_unlabeled_images_but_stage_three_does(tmp_path):
    """An auxiliary net for a segmenter trained on every labeled image: stages 1-2 read labeled images only."""
    run = train(aux_cfg(tmp_path / "all", labeled_fraction=1.0, epochs=1, aux_epochs=1, until_stage=2),
                log=lambda *_: None)
    assert (run / "stage2" / "done.json").is_file() and not (run / "stage3").exists()
    with pytest.raises(ConfigError, match="needs unlabeled images"):
        train(aux_cfg(tmp_path / "three", labeled_fraction=1.0), log=lambda *_: None)


def test_a_light_auxiliary_net_costs_a_fraction_of_the_segmenter_and_exports(tmp_path):
    from ssseg.config import ExportConfig
    from ssseg.export import run_export
    from ssseg.models import count_macs, create_model
    from ssseg.runtime.model import read_model

    seg = count_macs(create_model("dsnet-fast-ss", num_classes=11), torch.zeros(1, 3, 360, 480))
    light = create_model("aux-confidence", num_classes=11, **width_kwargs(0.125))
    assert count_macs(light, torch.zeros(1, 11, 360, 480)) < 0.15 * seg  # the budget for a cheap gate
    run = train(aux_cfg(tmp_path / "light", epochs=1, aux_epochs=1, until_stage=2, aux_width=0.125),
                log=lambda *_: None)
    ckpt = torch.load(run / "stage2" / "best.pt", weights_only=False)
    assert tuple(ckpt["model"]["kwargs"]["widths"]) == (4, 8, 16, 32, 32)
    spec = read_model(run_export(ExportConfig(run=run, out=tmp_path / "m", gate="net", verify_images=2),
                                 say=lambda *_: None))
    assert spec.gate.available and spec.data["verification"]["passed"] and "aux" in spec.data["graphs"]


@pytest.mark.slow
def test_pseudo_labeling_resumes_image_by_image(tmp_path):
    run = train(aux_cfg(tmp_path / "run"), log=lambda *_: None)
    pseudo = run / "stage3" / "pseudo"
    records = read_jsonl(pseudo / "manifest.rank0.jsonl")
    assert len(records) == 6
    # simulate a kill after two images: later files gone, their lines never written
    keep = records[:2]
    (pseudo / "manifest.rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    for r in records[2:]:
        (pseudo / "labels" / f"{r['id']}.png").unlink()
    (pseudo / "manifest.json").unlink()
    for name in ("done.json", "last.pt", "best.pt", "metrics.jsonl"):
        (run / "stage3" / name).unlink()
    kept_mtime = (pseudo / "labels" / f"{keep[0]['id']}.png").stat().st_mtime_ns
    logs: list[str] = []
    train(aux_cfg(tmp_path / "run", resume=True), {"resume"}, log=logs.append)
    assert any("2 image(s) already written, 4 to go" in line for line in logs)
    assert (pseudo / "labels" / f"{keep[0]['id']}.png").stat().st_mtime_ns == kept_mtime
    manifest = json.loads((pseudo / "manifest.json").read_text())
    assert manifest["images"] == 6 and [r["id"] for r in manifest["per_image"]] == sorted(r["id"] for r in records)


@pytest.mark.slow
def test_kill_during_stage_two_then_resume_equals_uninterrupted(tmp_path):
    args = ["--data", TINY, "--labeled-fraction", "0.5", "--epochs", "2", "--aux-epochs", "4", "--batch-size", "3",
            "--workers", "0", "--device", "cpu", "--t-aux", "0.5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    full = subprocess.run([sys.executable, "-m", "ssseg", "train", *args, "--out", str(tmp_path / "full")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr
    victim = tmp_path / "killed"
    done = kill_when([sys.executable, "-m", "ssseg", "train", *args, "--out", str(victim)],
                     victim / "stage2" / "metrics.jsonl", 1, env)
    assert 1 <= done < 4, "the kill should land inside stage 2"
    resumed = subprocess.run([sys.executable, "-m", "ssseg", "train", "--out", str(victim), "--resume"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "stage1 is finished; skipped" in resumed.stdout and "resuming" in resumed.stdout
    for stage in ("stage2", "stage3"):
        a, b = load_checkpoint(tmp_path / "full" / stage / "last.pt"), load_checkpoint(victim / stage / "last.pt")
        for k, v in a["state_dict"].items():
            assert torch.equal(v, b["state_dict"][k]), (stage, k)
    ma, mb = (json.loads((d / "stage3" / "pseudo" / "manifest.json").read_text()) for d in (tmp_path / "full", victim))
    assert ma["per_image"] == mb["per_image"]


@pytest.mark.slow
def test_eval_gate_through_the_cli(tmp_path):
    run = train(aux_cfg(tmp_path / "run"), log=lambda *_: None)
    proc = run_cli("eval", str(run), "--gate", "0,0.5,0.9", "--split", "test", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run / "gate_test.json").read_text())
    assert (run / "gate_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["segmenter"].endswith("stage1/best.pt") and result["images"] == 4
    assert [g["threshold"] for g in result["gates"]] == [0.0, 0.5, 0.9]
    g0 = result["gates"][0]
    assert g0["selected_share"] == 1.0 and g0["class_semi_ratio"] == 1.0
    shares = [g["selected_share"] for g in result["gates"]]
    assert shares == sorted(shares, reverse=True)
    plain = run_cli("eval", str(run / "stage1" / "best.pt"), "--split", "test", "--device", "cpu",
                    "--json", str(tmp_path / "plain.json"))
    assert plain.returncode == 0, plain.stderr
    assert g0["kept_miou"] == pytest.approx(json.loads((tmp_path / "plain.json").read_text())["miou"])
    assert "Table 3" in proc.stdout and "AUROC" in proc.stdout
    # every source on the same pixels: the auxiliary net and the free ones beside it
    assert list(result["sources"]) == ["aux-confidence", *FREE_SOURCES] and result["primary"] == "aux-confidence"
    for src in result["sources"].values():
        assert [a["accuracy"] for a in src["at_accuracy"]] == [0.95, 0.97, 0.99]
        assert src["curve"][-1]["coverage"] == pytest.approx(1.0)
        assert src["curve"][-1]["risk"] == pytest.approx(1 - g0["kept_pixel_acc"])
    assert result["sources"]["aux-confidence"]["auroc"] == pytest.approx(result["auroc"], abs=1e-2)
    assert "confidence sources on the same pixels" in proc.stdout

    final = run_cli("eval", str(run), "--gate", "0.9", "--segmenter", str(run / "stage3" / "best.pt"),
                    "--split", "test", "--device", "cpu", "--json", str(tmp_path / "final.json"))
    assert final.returncode == 0, final.stderr
    assert json.loads((tmp_path / "final.json").read_text())["segmenter"].endswith("stage3/best.pt")
    bad = run_cli("eval", str(run), "--gate", "0,1.5", "--device", "cpu")
    assert bad.returncode == 1 and "[0, 1]" in bad.stderr
    sup = tmp_path / "sup"
    assert run_cli("train", "--method", "supervised", "--data", TINY, "--out", str(sup), "--epochs", "1",
                   "--workers", "0", "--device", "cpu").returncode == 0
    # a run without a confidence net: its segmenter's free sources, max softmax the primary one
    proc = run_cli("eval", str(sup), "--gate", "0.9", "--device", "cpu", "--target-precision", "0.5")
    assert proc.returncode == 0, proc.stderr
    free = json.loads((sup / "gate_val.json").read_text())
    assert free["aux"] is None and free["primary"] == "softmax" and list(free["sources"]) == list(FREE_SOURCES)
    assert free["auroc"] == pytest.approx(free["sources"]["softmax"]["auroc"], abs=1e-2)  # bins 0.005 apart
    assert set(free["target_precision"]) == set(FREE_SOURCES) and "per-class thresholds" in proc.stdout
    proc = run_cli("train", "--out", str(sup), "--from-stage", "2")
    assert proc.returncode == 1 and "--from-stage applies to the staged methods" in proc.stderr


@pytest.mark.slow
def test_two_process_gloo_aux_run(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ssseg",
           "train", "--data", TINY, "--labeled-fraction", "0.5", "--epochs", "2", "--aux-epochs", "2",
           "--batch-size", "2", "--workers", "0", "--device", "cpu", "--t-aux", "0.0", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("run directory:") == 1
    pseudo = out / "stage3" / "pseudo"
    per_rank = [len(read_jsonl(pseudo / f"manifest.rank{r}.jsonl")) for r in (0, 1)]
    assert per_rank == [3, 3]  # 6 unlabeled images shared by the two processes
    manifest = json.loads((pseudo / "manifest.json").read_text())
    assert manifest["images"] == 6 and manifest["kept_share"] == 1.0
    assert [r["epoch"] for r in read_jsonl(out / "stage2" / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(out / "stage3" / "last.pt")["iteration"] == 2 * 3  # 12 images / (2 x 2) per epoch
