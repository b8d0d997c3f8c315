import json
import math

import numpy as np
import pytest
import torch

from ssseg.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from ssseg.classes import SYNTHETIC
from ssseg.config import parse_hw
from ssseg.errors import CheckpointError, ConfigError
from ssseg.metrics import confusion, scores
from ssseg.train.config import TrainConfig, build_train_config
from ssseg.train.data import split_labeled
from ssseg.train.losses import enet_class_weights, segmentation_loss
from ssseg.train.schedule import poly_lr
from ssseg.train.transforms import augment


def test_enet_class_weights_follow_the_formula():
    counts = np.array([700, 200, 100, 0])
    w = enet_class_weights(counts, c=1.1)
    expected = [1 / math.log(1.1 + p) for p in (0.7, 0.2, 0.1, 0.0)]
    assert np.allclose(w, expected)
    assert w[3] > w[2] > w[1] > w[0]  # rarer classes weigh more


def test_loss_ignores_255():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.full((1, 4, 4), 255)
    target[0, 0, 0] = 1
    expected = torch.nn.functional.cross_entropy(logits[:, :, 0, 0], torch.tensor([1]))
    assert torch.allclose(segmentation_loss(logits, target, None), expected)


def test_weighted_loss_equals_torch_mean_and_survives_an_all_ignore_batch():
    logits = torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    target[0, :2] = 255
    w = torch.tensor([0.5, 2.0, 5.0])
    expected = torch.nn.functional.cross_entropy(logits, target, weight=w, ignore_index=255)
    assert torch.allclose(segmentation_loss(logits, target, w), expected)
    logits.requires_grad_(True)
    loss = segmentation_loss(logits, torch.full((2, 5, 5), 255), w)  # torch's mean gives NaN here
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_poly_lr():
    assert poly_lr(0.1, 0, 100) == 0.1
    assert poly_lr(0.1, 100, 100) == 0.0
    assert math.isclose(poly_lr(0.1, 50, 100, 0.9), 0.1 * 0.5 ** 0.9)


def test_labeled_split_is_seeded_and_complete():
    ids = [f"i{k}" for k in range(10)]
    lab, unl = split_labeled(ids, 0.5, seed=3)
    assert len(lab) == 5 and sorted(lab + unl) == sorted(ids) and not set(lab) & set(unl)
    assert split_labeled(ids, 0.5, seed=3) == (lab, unl)
    assert split_labeled(ids, 0.5, seed=4)[0] != lab
    assert split_labeled(ids, 1.0, 0) == (sorted(ids), [])


def test_augment_crops_pads_with_ignore_and_keeps_pairs_aligned():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.zeros((40, 60), np.uint8)
    image[:, :30] = 200
    label[:, :30] = 1
    for _ in range(20):
        im, lb = augment(image, label, rng, (0.5, 1.0, 1.5), (40, 60), (124, 116, 104))
        assert im.shape == (40, 60, 3) and lb.shape == (40, 60)
        valid = lb != 255
        assert (im[valid & (lb == 1)][:, 0] > 150).all() and (im[valid & (lb == 0)][:, 0] < 50).all()
        assert (im[~valid] == (124, 116, 104)).all()


def test_scores_from_confusion():
    pred = np.array([[0, 0, 1, 1]])
    target = np.array([[0, 1, 1, 255]])
    s = scores(confusion(pred, target, 3), ["a", "b", "c"])
    assert s["per_class_iou"] == {"a": 0.5, "b": 0.5, "c": None}
    assert s["miou"] == 0.5 and math.isclose(s["pixel_acc"], 2 / 3) and s["pixels"] == 3


def test_parse_hw():
    assert parse_hw("512x1024") == (512, 1024)
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        parse_hw("512")


def test_config_file_and_flag_precedence(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 7\nbatch-size: 2\nlr: 0.01\n")
    cfg = build_train_config({"lr": 0.5, "epochs": None}, tmp_path / "c.yaml")
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (7, 2, 0.5)
    (tmp_path / "c.json").write_text(json.dumps({"crop": "32x48"}))
    assert build_train_config({}, tmp_path / "c.json").crop == (32, 48)
    (tmp_path / "bad.yaml").write_text("epocs: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown option 'epocs'"):
        build_train_config({}, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="labeled-fraction"):
        TrainConfig(labeled_fraction=1.5)


def test_dataset_defaults_fill_only_unset_fields():
    cfg = TrainConfig(data="camvid:/x", model="dsnet-fast-ss", lr=0.01).resolve("camvid")
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (0.01, 5e-4, 8, 150)
    # a pretrained segmenter's recipe comes before the dataset's optimiser rows, not before its schedule
    cfg = TrainConfig(data="camvid:/x", model="efficientnet-lite0").resolve("camvid")
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.optimizer) == (1e-3, 1e-2, 8, 150, "adamw")
    assert TrainConfig().resolve("cityscapes").scale == (512, 1024)


def _save_tiny(path):
    from ssseg.models import create_model

    m = create_model("aux-confidence", num_classes=3)
    return save_checkpoint(path, model_name="aux-confidence", model_kwargs={"num_classes": 3}, classes=SYNTHETIC,
                           state_dict=m.state_dict(), extra={"epoch": 1})


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    p = _save_tiny(tmp_path / "a.pt")
    ckpt = torch.load(p, weights_only=True)
    assert ckpt["epoch"] == 1
    model = build_from_checkpoint(load_checkpoint(p))
    assert model.num_classes == 3


def test_truncated_and_foreign_checkpoints_are_named(tmp_path):
    p = _save_tiny(tmp_path / "a.pt")
    data = p.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"model": torch.nn.Linear(2, 2).state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt: not an ssseg checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    ckpt = torch.load(p, weights_only=True)
    ckpt["format_version"] = 99
    torch.save(ckpt, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
