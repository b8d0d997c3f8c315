"""--method adversarial and --method dual-disc: losses against direct computations, the discriminators'
shapes, the warm-up and the dynamic threshold, and short end-to-end runs through export and the gate."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ssseg.errors import ConfigError
from ssseg.train.config import TrainConfig, parse_warmup


def test_bce_to_and_bce_map_match_the_formula():
    from ssseg.train.losses import bce_map, bce_to

    z = torch.tensor([[-2.0, 0.0], [1.0, 3.0]]).reshape(1, 1, 2, 2)
    sig = torch.sigmoid(z)
    assert bce_to(z, 1.0).item() == pytest.approx(-torch.log(sig).mean().item(), rel=1e-6)
    assert bce_to(z, 0.0).item() == pytest.approx(-torch.log(1 - sig).mean().item(), rel=1e-6)
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    valid = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # the third pixel is ignored
    per = -(target * torch.log(sig.reshape(1, 2, 2)) + (1 - target) * torch.log(1 - sig.reshape(1, 2, 2)))
    assert bce_map(z, target, valid).item() == pytest.approx(((per * valid).sum() / 3).item(), rel=1e-6)


def test_one_hot_ground_truth_hides_ignore_pixels():
    from ssseg.train.losses import one_hot_probs

    target = torch.tensor([[[0, 2], [255, 1]]])
    fill = torch.full((1, 3, 2, 2), 0.25)
    oh = one_hot_probs(target, 3, fill)
    assert oh[0, :, 0, 0].tolist() == [1, 0, 0] and oh[0, :, 0, 1].tolist() == [0, 0, 1]
    assert oh[0, :, 1, 0].tolist() == [0.25] * 3  # the prediction's softmax, not a giveaway zero vector


def test_semi_loss_uses_only_confident_pixels():
    from ssseg.train.losses import pseudo_label_loss, semi_loss

    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2 classes, 1, 2]: arg-max 0, then 1
    conf = torch.tensor([[[[0.9, 0.1]]]])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))  # pixel 0 against its own arg-max
    assert semi_loss(logits, conf, 0.2).item() == pytest.approx(ce0, rel=1e-6)
    assert semi_loss(logits, conf, 0.95).item() == 0.0  # nothing above the threshold: no signal, no NaN
    mask = torch.tensor([[[[False, True]]]])
    ce1 = -math.log(math.exp(1) / (1 + math.exp(1)))
    assert pseudo_label_loss(logits, mask).item() == pytest.approx(ce1, rel=1e-6)


def test_dynamic_threshold_of_the_two_discriminators():
    from ssseg.models import DualDiscGater
    from ssseg.train.losses import dual_gate

    d2 = torch.tensor([[[[0.5, -1.0]]], [[[0.5, -1.0]]]])
    d1 = torch.tensor([[0.0], [-2.0]])  # image 1 is judged real-looking (0.5), image 2 fake-looking (0.12)
    assert dual_gate(d2, d1).reshape(2, 2).tolist() == [[True, False], [True, True]]
    torch.manual_seed(0)  # fixed weights and inputs: a random draw must not decide the outcome
    gater = DualDiscGater(3).eval()
    probs = torch.softmax(torch.randn(2, 3, 32, 32), 1)
    with torch.no_grad():
        z = gater(probs)
        z2, z1 = gater.d2(probs), gater.d1(probs)
    assert z.shape == (2, 1, 32, 32)
    # the exported confidence sigmoid(z2 - z1) passes 0.5 exactly where sigmoid(z2) reaches sigmoid(z1); within
    # float32 rounding of the boundary (sigmoid(-1e-9) == 0.5) either answer is right, so those pixels are left out
    clear = (z2 - z1.reshape(-1, 1, 1, 1)).abs() > 1e-5
    assert clear.float().mean() > 0.9
    assert torch.equal((torch.sigmoid(z) >= 0.5)[clear], dual_gate(z2, z1)[clear])


@pytest.mark.parametrize("hw", [(64, 96), (45, 61)])
def test_discriminator_shapes(hw):
    from ssseg.models import create_model

    probs = torch.softmax(torch.randn(2, 5, *hw), 1)
    fc = create_model("fc-discriminator", num_classes=5)
    assert fc(probs).shape == (2, 1, *hw)  # bilinear back to the input size
    convs = [m for m in fc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fc.modules())
    assert create_model("pixel-discriminator", num_classes=5)(probs).shape == (2, 1, *hw)
    assert create_model("image-discriminator", num_classes=5)(probs).shape == (2, 1)


def test_warmup_in_iterations_or_epochs():
    assert parse_warmup("5000", 37) == 5000
    assert parse_warmup("2ep", 37) == 74
    assert parse_warmup("0.5ep", 10) == 5
    with pytest.raises(ConfigError, match="--adv-warmup"):
        TrainConfig(method="adversarial", adv_warmup="soon")


@pytest.mark.parametrize("method, model, threshold", [("adversarial", "fc-discriminator", 0.2),
                                                       ("dual-disc", "dual-disc-gater", 0.5)])
@pytest.mark.slow
def test_short_run_exports_and_gates(tmp_path, method, model, threshold):
    from ssseg.config import ExportConfig
    from ssseg.export import run_export
    from ssseg.train.engine import train
    from ssseg.train.evaluate import run_gate_eval

    out = tmp_path / method
    cfg = TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method=method, labeled_fraction=0.5, out=out,
                      epochs=3, batch_size=4, lr=0.05, workers=0, device="cpu", adv_warmup="1ep")
    train(cfg, log=lambda *_: None)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["semi"] for m in metrics] == [False, True, True]  # 2 iterations per epoch, warm-up 1 epoch
    assert (out / "done.json").is_file() and (out / "gater" / "done.json").is_file()
    gater = torch.load(out / "gater" / "best.pt", weights_only=False)
    assert gater["model"]["name"] == model and gater["segmenter"] == "../best.pt"

    result, _ = run_gate_eval(out, None, "val", None, (0.0, threshold), device="cpu")
    assert result["gates"][0]["selected_share"] == 1.0 and result["auroc"] is not None

    model_dir = run_export(ExportConfig(run=out, out=tmp_path / "model", gate="net", verify_images=2),
                           say=lambda *_: None)
    spec = json.loads(model_dir.read_text())
    assert spec["gate"]["kind"] == method and spec["gate"]["model"] == model and spec["gate"]["threshold"] == threshold
    assert spec["verification"]["passed"] and "aux" in spec["graphs"]

    train(TrainConfig(**{**cfg.to_dict(), "resume": True}), explicit={"resume"}, log=lambda *_: None)  # finished: no-op
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
