"""--method latent: the conditional entropy's extremes, the co-occurrence EMA and P(l|c), the consistency loss,
the latent-class table, and a short run gated afterwards by an auxiliary net trained on it (--init)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ssseg.segmenters import DEFAULT_SEGMENTER
from ssseg.train.config import TrainConfig
from ssseg.train.losses import (
    conditional_entropy,
    cooccurrence_update,
    latent_consistency,
    latent_given_class,
    latent_joint,
)

TARGET = torch.tensor([[[0, 0, 1, 2], [0, 1, 2, 255]]])  # 3 classes (3/7, 2/7, 2/7 of the valid pixels), one ignore


def class_entropy(target: torch.Tensor) -> float:
    counts = torch.bincount(target[target != 255].flatten()).double()
    p = counts / counts.sum()
    return float(-(p * p.log()).sum())


def test_latent_joint_counts_valid_pixels_per_class():
    probs = torch.softmax(torch.randn(1, 4, 2, 4), 1)
    joint = latent_joint(probs, TARGET, 3)
    expected = torch.zeros(3, 4)
    for y in range(2):
        for x in range(4):
            if TARGET[0, y, x] != 255:
                expected[TARGET[0, y, x]] += probs[0, :, y, x]
    assert torch.allclose(joint, expected, atol=1e-6)


def test_conditional_entropy_is_zero_for_a_one_to_one_assignment_and_maximal_for_one_latent_class():
    one_to_one = torch.nn.functional.one_hot(TARGET.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    single = torch.zeros(1, 3, 2, 4)
    single[:, 0] = 1.0
    h_min = conditional_entropy(latent_joint(one_to_one, TARGET, 3)).item()
    h_max = conditional_entropy(latent_joint(single, TARGET, 3)).item()
    assert h_min == pytest.approx(0.0, abs=1e-6)
    assert h_max == pytest.approx(class_entropy(TARGET), rel=1e-5)  # H(c|l) = H(c): the latent class tells nothing
    for seed in range(5):  # anything else lies between
        soft = torch.softmax(torch.randn(1, 3, 2, 4, generator=torch.Generator().manual_seed(seed)), 1)
        h = conditional_entropy(latent_joint(soft, TARGET, 3)).item()
        assert h_min < h < h_max + 1e-6


def test_conditional_entropy_descent_makes_latent_classes_purer():
    logits = torch.randn(1, 3, 2, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    opt = torch.optim.SGD([logits], lr=5.0)
    losses = []
    for _ in range(50):
        loss = conditional_entropy(latent_joint(torch.softmax(logits, 1), TARGET, 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]  # each latent class ends up holding (nearly) one semantic class


def test_cooccurrence_ema_and_latent_given_class():
    m = torch.zeros(3, 2)
    j1 = torch.tensor([[4.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    j2 = torch.tensor([[0.0, 2.0], [3.0, 1.0], [0.0, 0.0]])
    m = cooccurrence_update(m, j1, 0.25)
    m = cooccurrence_update(m, j2, 0.25)
    assert torch.allclose(m, 0.75 * 0.25 * j1 + 0.25 * j2)  # M <- (1 - a) M + a J, from M = 0
    p = latent_given_class(m)
    assert torch.allclose(p.sum(1), torch.ones(3))
    assert torch.allclose(p[0], torch.tensor([0.75, 0.5]) / 1.25)  # row 0: 0.1875 * 4 = 0.75 and 0.25 * 2 = 0.5
    assert torch.allclose(p[2], torch.tensor([0.5, 0.5]))  # a class not seen yet: uniform, not 0/0


def test_latent_consistency_matches_the_formula_and_trains_the_semantic_branch_only():
    sem_logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    lat_logits = torch.randn(1, 2, 2, 2, requires_grad=True)
    p_l_c = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    s_c = torch.softmax(sem_logits, 1)
    loss = latent_consistency(lat_logits, s_c, p_l_c)
    s_l = torch.softmax(lat_logits, 1)
    s_lc = torch.einsum("nchw,cl->nlhw", s_c, p_l_c)
    expected = -(s_l * s_lc.log()).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert sem_logits.grad.abs().sum() > 0 and lat_logits.grad is None  # the latent branch is the target


def test_latent_groups_table():
    from ssseg.train.methods.latent import latent_groups

    m = torch.tensor([[10.0, 0.0, 0.0], [8.0, 1.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]])
    rows = latent_groups(m, ["car", "truck", "road", "sign"])
    assert [r["latent"] for r in rows] == [0, 1]  # latent class 2 holds no pixels: unused
    assert rows[0]["groups"] == ["car", "truck"] and rows[1]["groups"] == ["road"]  # "sign" never seen: nowhere
    assert rows[0]["composition"] == {"car": pytest.approx(10 / 18, abs=1e-4), "truck": pytest.approx(8 / 18, abs=1e-4)}
    assert rows[0]["share"] == pytest.approx(18 / 24)


@pytest.mark.slow
def test_short_run_then_an_auxiliary_net_for_its_segmenter(tmp_path):
    from ssseg.config import ExportConfig
    from ssseg.errors import ConfigError
    from ssseg.export import run_export
    from ssseg.train.engine import train

    data = "synthetic:size=64x64,train=8,val=4,test=4"
    run = tmp_path / "latent"
    cfg = TrainConfig(data=data, method="latent", labeled_fraction=0.5, out=run, epochs=2, batch_size=4, lr=0.05,
                      workers=0, device="cpu", latent_classes=4)
    train(cfg, log=lambda *_: None)
    assert (run / "done.json").is_file() and not (run / "gater").exists()
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["cooccurrence"].shape == (9, 4) and last["cooccurrence"].sum() > 0
    assert set(last["latent_branch"]) == {"classifier.weight", "classifier.bias"}
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["model"]["name"] == DEFAULT_SEGMENTER and not any("latent" in k for k in best["state_dict"])
    table = json.loads((run / "latent_classes.json").read_text())
    assert sum(r["share"] for r in table["latent"]) == pytest.approx(1.0, abs=1e-3)
    assert "latent class" in (run / "latent_classes.md").read_text()

    gated = tmp_path / "latent-aux"  # the recipe: stage 2 of --method aux on this segmenter
    train(TrainConfig(data=data, method="aux", out=gated, from_stage=2, init=run, until_stage=2, aux_epochs=1,
                      batch_size=4, workers=0, device="cpu"),
          explicit={"data", "method", "out", "from_stage", "init", "until_stage", "aux_epochs", "batch_size"},
          log=lambda *_: None)
    config = json.loads((gated / "config.json").read_text())
    assert config["labeled_fraction"] == 0.5 and config["init"] == str(run / "best.pt")
    assert (gated / "splits" / "labeled.txt").read_text() == (run / "splits" / "labeled.txt").read_text()
    assert (gated / "stage1" / "best.pt").read_bytes() == (run / "best.pt").read_bytes()
    assert (gated / "stage2" / "done.json").is_file() and not (gated / "stage3").exists()
    summary = json.loads((gated / "summary.json").read_text())
    assert summary["stage2_val_auroc"] is not None and "stage3_val_miou" not in summary

    logs: list[str] = []  # --resume with --init as first given (a run directory, stored resolved): nothing to redo
    train(TrainConfig(data=data, method="aux", out=gated, init=run, until_stage=2, resume=True),
          explicit={"data", "method", "out", "init", "until_stage", "resume"}, log=logs.append)
    assert any("stage2 is finished; skipped" in line for line in logs)
    with pytest.raises(ConfigError, match="stage 1 of this run is .*--init"):
        train(TrainConfig(data=data, method="aux", out=gated, from_stage=1), explicit={"from_stage"},
              log=lambda *_: None)

    spec = json.loads(run_export(ExportConfig(run=gated, out=tmp_path / "model", gate="net", verify_images=2),
                                 say=lambda *_: None).read_text())
    assert spec["gate"]["available"] and spec["gate"]["kind"] == "aux"
    assert spec["source"]["segmenter"]["sha256"] == json.loads((gated / "stage1" / "done.json").read_text())["sha256"]
    assert spec["source"]["aux"]["trained_against"] == str((gated / "stage1" / "best.pt").resolve())


def test_init_refuses_another_split_and_a_non_segmenter(tmp_path):
    from ssseg.errors import CheckpointError, ConfigError
    from ssseg.train.engine import train

    data = "synthetic:size=64x64,train=8,val=4,test=4"
    run = tmp_path / "sup"
    train(TrainConfig(data=data, method="supervised", labeled_fraction=0.5, out=run, epochs=1, batch_size=4, workers=0,
                      device="cpu"), log=lambda *_: None)
    with pytest.raises(ConfigError, match="--labeled-fraction 0.25 differs from the --init run's"):
        train(TrainConfig(data=data, method="aux", labeled_fraction=0.25, out=tmp_path / "a", from_stage=2, init=run,
                          device="cpu"), explicit={"labeled_fraction", "from_stage", "init"}, log=lambda *_: None)
    aux = tmp_path / "aux"
    train(TrainConfig(data=data, method="aux", out=aux, from_stage=2, init=run, until_stage=2, aux_epochs=1,
                      batch_size=4, workers=0, device="cpu"), explicit={"from_stage", "init", "until_stage"},
          log=lambda *_: None)
    with pytest.raises(CheckpointError, match="holds a aux-confidence, not the segmenter"):
        train(TrainConfig(data=data, method="aux", out=tmp_path / "b", from_stage=2, init=aux / "stage2" / "best.pt",
                          device="cpu"), explicit={"from_stage", "init"}, log=lambda *_: None)
    assert math.isfinite(json.loads((aux / "summary.json").read_text())["stage1_val_miou"])
