"""--method self-train: the consistency loss, the mean teacher's update, strong augmentation keeping image and
target aligned, the task-2 heads' sharing, and a short three-stage run with --from-stage and --until-stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssseg.train.config import TrainConfig
from ssseg.train.strong import StrongSet, geometric, strong_view, to_theta, warp, warp_labels, warp_valid

FILL = (124, 116, 104)


def blocks(h: int = 60, w: int = 80) -> np.ndarray:
    label = np.zeros((h, w), np.uint8)
    label[10:40, 20:50] = 1
    label[:, 60:] = 2
    label[45:, :30] = 3
    return label


def test_soft_cross_entropy_matches_the_formula_over_valid_pixels():
    from ssseg.train.losses import soft_cross_entropy

    logits = torch.randn(2, 3, 4, 5)
    target = torch.softmax(torch.randn(2, 3, 4, 5), 1)
    valid = torch.rand(2, 4, 5) > 0.3
    per = -(target * torch.log_softmax(logits, 1)).sum(1)
    assert soft_cross_entropy(logits, target, valid).item() == pytest.approx(per[valid].mean().item(), rel=1e-5)
    assert soft_cross_entropy(logits, target, torch.zeros_like(valid)).item() == 0.0


def test_ema_teacher_update():
    from ssseg.models import create_model
    from ssseg.train.methods.self_train import ema_update

    torch.manual_seed(0)
    student, teacher = create_model("dsnet-fast-ss", num_classes=3), create_model("dsnet-fast-ss", num_classes=3)
    student.train()(torch.randn(2, 3, 64, 64))  # moves BatchNorm statistics and step counts
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 0.9)
    after, s = teacher.state_dict(), student.state_dict()
    for k, v in after.items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.9 * before[k] + 0.1 * s[k], atol=1e-6), k
        else:
            assert torch.equal(v, s[k]), k  # num_batches_tracked is copied
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(v, s[k]) for k, v in teacher.state_dict().items())  # decay 0: the student itself


def test_geometric_warp_moves_image_and_target_together():
    label = blocks()
    image = np.repeat((label * 60)[..., None], 3, 2).astype(np.uint8)  # colour encodes the class
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(label)[None].long()
    a = geometric("rotate", 0.8, 1.0) @ geometric("shear_x", 0.5, -1.0)
    theta = torch.from_numpy(to_theta(a, (0.1, -0.05), label.shape))[None]
    moved_image, moved_label = warp(x, theta)[0, 0], warp_labels(y, theta)[0]
    valid = warp_valid(theta, 1, label.shape, torch.device("cpu"))[0]
    assert 0.5 < valid.float().mean() < 1.0  # the transform pushed part of the frame out
    assert bool((moved_label[~valid] == 255).all())  # what came from outside is not a target
    agree = ((moved_image / 60).round().long() == moved_label)[valid].float().mean()
    assert agree > 0.97  # bilinear blends at class edges only
    unmoved = warp_labels(y, torch.from_numpy(to_theta(np.eye(3), (0.0, 0.0), label.shape))[None])[0]
    assert torch.equal(unmoved, y[0])  # the identity is exact
    assert ((moved_image / 60).round().long() == unmoved)[valid].float().mean() < 0.9  # a misaligned target is caught


def test_theta_lands_pixels_where_the_geometry_says_on_a_non_square_crop():
    image = torch.arange(60 * 80, dtype=torch.float32).reshape(1, 1, 60, 80)
    shift = torch.from_numpy(to_theta(np.eye(3), (0.25, 0.0), (60, 80)))[None]  # a quarter of the width: 20 px
    assert torch.equal(warp(image, shift, "nearest")[0, 0, :, :60], image[0, 0, :, 20:])
    quarter_turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # output -> input, centred pixels
    turned = warp(image, torch.from_numpy(to_theta(quarter_turn, (0.0, 0.0), (60, 80)))[None], "nearest")[0, 0]
    # output pixel (row 30, col 50) sits at (u, v) = (10.5, 0.5) from the centre and samples (-0.5, 10.5): (40, 39)
    assert (turned[30, 50] == image[0, 0, 40, 39]
            and turned[10, 40] == image[0, 0, 30, 59])  # (0.5, -19.5) -> (19.5, 0.5)


def test_strong_view_recolours_without_moving_and_is_reproducible():
    label = blocks()
    image = np.random.default_rng(0).integers(0, 256, (*label.shape, 3), dtype=np.uint8)
    a, theta_a = strong_view(image, np.random.default_rng([1, 2]), FILL)
    b, theta_b = strong_view(image, np.random.default_rng([1, 2]), FILL)
    assert a.shape == image.shape and a.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(theta_a, theta_b)
    assert theta_a.shape == (2, 3)
    views = [strong_view(image, np.random.default_rng([7, k]), FILL) for k in range(20)]
    assert any(not np.allclose(t, [[1, 0, 0], [0, 1, 0]]) for _, t in views)  # geometric ops occur
    assert any((v == FILL).all(-1).sum() > 100 for v, _ in views)  # and Cutout squares


def test_strong_set_pairs_views_of_one_crop():
    from ssseg.data import open_dataset
    from ssseg.train.data import TrainSet

    ds = open_dataset("synthetic:size=64x64,train=4,val=1,test=1", "train")
    cfg = TrainConfig(data="synthetic", aug_scales=(1.0,), seed=3)
    strong = StrongSet(TrainSet(ds, cfg, (64, 64)), cfg.seed, FILL)
    weak, view, target, theta = strong[1]
    again = strong[1]
    assert torch.equal(view, again[1]) and torch.equal(theta, again[3]) and torch.equal(target, again[2])
    assert weak.shape == view.shape == (64, 64, 3) and target.shape == (64, 64) and theta.shape == (2, 3)
    strong.epoch = 1
    assert not torch.equal(strong[1][1], view) or not torch.equal(strong[1][3], theta)  # a new epoch, new views


@pytest.mark.parametrize("own_blocks, shared_block4", [(2, False), (1, True)])
def test_task2_head_shares_all_but_its_own_blocks(own_blocks, shared_block4):
    from ssseg.models import BranchHead, WithHead, create_model

    seg = create_model("dsnet-fast-ss", num_classes=3)
    net = WithHead(seg, BranchHead(seg, own_blocks))
    logits, head_logits = net(torch.randn(1, 3, 64, 96))
    assert logits.shape == head_logits.shape == (1, 3, 64, 96)
    head_logits.sum().backward()  # the task-2 loss alone
    grad = lambda m: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())  # noqa: E731
    assert grad(seg.block3) and grad(seg.initial)  # shared
    assert grad(seg.block4) == shared_block4
    assert not grad(seg.decoder) and not grad(seg.classifier)  # the segmenter's own head is untouched
    assert not torch.allclose(net.head.classifier.weight, seg.classifier.weight)  # initialised afresh


@pytest.mark.slow
def test_three_stages_redo_and_stop(tmp_path):
    from ssseg.config import ExportConfig
    from ssseg.export import run_export
    from ssseg.rundir import resolve_checkpoint
    from ssseg.train.engine import train
    from ssseg.train.evaluate import run_gate_eval

    out = tmp_path / "st"
    cfg = TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="self-train", labeled_fraction=0.5,
                      out=out, epochs=2, batch_size=4, lr=0.05, workers=0, device="cpu")
    train(TrainConfig(**{**cfg.to_dict(), "until_stage": 2}), log=lambda *_: None)
    assert (out / "stage2" / "done.json").is_file() and not (out / "stage3").exists()
    assert resolve_checkpoint(out) == out / "stage2" / "best.pt"
    train(TrainConfig(**{**cfg.to_dict(), "resume": True}), explicit={"resume"}, log=lambda *_: None)  # on to stage 3
    for k in (1, 2, 3):
        assert (out / f"stage{k}" / "done.json").is_file()
    for k in (1, 2):  # pseudo-masks of every training image, ungated
        manifest = json.loads((out / f"stage{k}" / "pseudo" / "manifest.json").read_text())
        assert manifest["images"] == 8 and manifest["kept_share"] == 1.0
        assert not (out / f"stage{k}" / "pseudo" / "confidence").exists()
    metrics = [json.loads(line) for line in (out / "stage2" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(m["l_con"] > 0 and m["l_pl"] > 0 for m in metrics)
    last = torch.load(out / "stage3" / "last.pt", weights_only=False)
    assert {k.split(".")[0] for k in last["head"]} == {"decoder", "classifier"}
    assert resolve_checkpoint(out) == out / "stage3" / "best.pt"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"stage1_val_miou", "stage2_val_miou", "stage3_val_miou"}

    spec = json.loads(run_export(ExportConfig(run=out, out=tmp_path / "model", gate="none", verify_images=2),
                                 say=lambda *_: None).read_text())
    assert spec["source"]["segmenter"]["stage"] == 3 and not spec["gate"]["available"]
    # stage2/best.pt is a segmenter, not a gater: the final segmenter's free sources are measured
    result, _ = run_gate_eval(out, None, "val", None, (0.5,), device="cpu")
    assert result["aux"] is None and result["segmenter"].endswith("stage3/best.pt")

    stage1 = (out / "stage1" / "best.pt").read_bytes()
    train(TrainConfig(**{**cfg.to_dict(), "from_stage": 3}), explicit={"from_stage"}, log=lambda *_: None)
    assert (out / "stage1" / "best.pt").read_bytes() == stage1  # earlier stages kept
    assert len(list((out / "replaced").glob("*/stage3/done.json"))) == 1 and (out / "stage3" / "done.json").is_file()


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_interrupted_stage_two_resumes_to_the_uninterrupted_result(tmp_path):
    from ssseg.checkpoint import load_checkpoint
    from ssseg.train.engine import train

    def cfg(out, **kw):
        return TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="self-train", labeled_fraction=0.5,
                           out=out, epochs=3, batch_size=2, lr=0.05, workers=0, device="cpu", until_stage=2, **kw)

    train(cfg(tmp_path / "full"), log=lambda *_: None)

    def stop_in_stage_two(line: str) -> None:  # after epoch 1 of stage 2 is saved: what a kill leaves behind
        if line.startswith("epoch 1/3") and "con" in line:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(cfg(tmp_path / "killed"), log=stop_in_stage_two)
    assert not (tmp_path / "killed" / "stage2" / "done.json").exists()
    logs: list[str] = []
    train(cfg(tmp_path / "killed", resume=True), explicit={"resume"}, log=logs.append)
    assert any("resuming" in line and "after epoch 1" in line for line in logs)
    a, b = (load_checkpoint(tmp_path / d / "stage2" / "last.pt") for d in ("full", "killed"))
    for key in ("state_dict", "head", "teacher"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
