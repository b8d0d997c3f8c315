"""--method weak-strong, the strong augmentation, pixel selection, --unlabeled footage and --strong-aug."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ssseg.checkpoint import load_checkpoint
from ssseg.classes import SYNTHETIC
from ssseg.errors import DataError
from ssseg.io import read_jsonl
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train
from ssseg.train.footage import extract_footage
from ssseg.train.methods.weak_strong import select_class_balanced, unlabeled_loss
from ssseg.train.mix import cutmix, cutmix_boxes, photometric, step_generator

TINY = "synthetic:size=48x64,train=8,val=2,test=2"


def test_cutmix_moves_image_and_label_with_the_same_box():
    n, h, w = 4, 16, 20
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
    labels = torch.arange(n).view(n, 1, 1).expand(n, h, w).clone()
    boxes = torch.zeros(n, h, w, dtype=torch.bool)
    for seed in range(20):  # some draws without a box (p 0.5), some with
        boxes |= cutmix_boxes(n, h, w, step_generator(seed, 0))
    boxes = cutmix_boxes(n, h, w, step_generator(3, 1))
    assert torch.equal(cutmix_boxes(n, h, w, step_generator(3, 1)), boxes)  # the same step, the same boxes
    mixed_x, mixed_y = cutmix(images, boxes), cutmix(labels, boxes)
    for i in range(n):
        inside = boxes[i]
        assert (mixed_y[i][inside] == (i - 1) % n).all() and (mixed_y[i][~inside] == i).all()
        assert torch.equal(mixed_x[i, 0], mixed_y[i].float())  # image and label moved together
    assert boxes.any()


def test_photometric_keeps_range_and_geometry_and_is_reproducible():
    x = torch.rand(3, 3, 24, 32)
    a, b = photometric(x, step_generator(1, 5)), photometric(x, step_generator(1, 5))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, photometric(x, step_generator(1, 6)))


def test_class_balanced_selection_starves_no_class():
    torch.manual_seed(0)
    pred = torch.randint(0, 3, (2, 20, 20))
    conf = torch.rand(2, 20, 20) * 0.5 + 0.5
    conf[pred == 2] = 0.4  # a class the teacher is never sure of
    valid = torch.ones_like(pred, dtype=torch.bool)
    valid[:, :2] = False
    plain = (conf >= 0.95) & valid
    keep = select_class_balanced(conf, pred, valid, 0.95, 0.3, num_classes=4)
    assert (keep & ~valid).sum() == 0 and (keep >= plain).all()  # only adds, never outside the image
    assert plain[pred == 2].sum() == 0
    for c in range(3):
        mine = (pred == c) & valid
        assert keep[mine].float().mean() >= 0.3 - 1e-6, c
    # the added pixels of a class are its most confident ones
    c0 = (pred == 0) & valid
    assert conf[c0 & keep].min() >= conf[c0 & ~keep].max()


def test_unlabeled_loss_counts_only_selected_pixels_over_all_valid_ones():
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[0, 1, 0, 1]]])
    keep = torch.tensor([[[True, False, False, False]]])
    valid = torch.tensor([[[True, True, True, False]]])
    assert unlabeled_loss(logits, target, keep, valid).item() == pytest.approx(np.log(2) / 3)
    assert unlabeled_loss(logits, target, keep & False, valid).item() == 0.0


def test_footage_from_a_video_a_folder_and_a_bad_file(tmp_path):
    from ssseg.data.synthetic import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "drive.mp4", 9, size=(48, 64))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (80, 60), (i * 40, 10, 10)).save(folder / f"f{i}.png")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    logs: list[str] = []
    footage, problems = extract_footage((str(clip), str(folder), str(bad)), 2, (24, 32), tmp_path / "out", SYNTHETIC,
                                        skip_bad=True, log=logs.append)
    assert len(footage) == 5 + 2  # frames 0, 2, 4, 6, 8 of the clip; images 0 and 2 of the folder
    image, label = footage.load(0)
    assert image.shape == (24, 32, 3) and (label == 255).all()  # at the training scale, nothing labeled
    assert len(problems) == 1 and "broken.mp4" in problems[0] and any("broken.mp4" in line for line in logs)
    done = json.loads((tmp_path / "out" / footage.samples[0].image.parent.name / "done.json").read_text())
    assert done["frames"] == 5 and done["every"] == 2
    # decoded once: a second call reads the frames it wrote, even when the source has changed since
    stored = {s.id: s.image.read_bytes() for s in footage.samples}
    Image.new("RGB", (80, 60), (0, 200, 0)).save(folder / "f0.png")
    again, _ = extract_footage((str(folder),), 2, (24, 32), tmp_path / "out", SYNTHETIC, skip_bad=True, log=logs.append)
    assert {s.id: s.image.read_bytes() for s in again.samples} == {k: v for k, v in stored.items() if k in again.ids}
    assert len(again) == 2
    with pytest.raises(DataError, match="broken.mp4.*--skip-bad"):
        extract_footage((str(bad),), 1, None, tmp_path / "out2", SYNTHETIC, skip_bad=False, log=logs.append)


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_weak_strong_with_footage_resumes_bit_exactly(tmp_path):
    from ssseg.data.synthetic import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "drive.mp4", 12, size=(48, 64), split="test")

    def cfg(out, **kw):
        return TrainConfig(data=TINY, method="weak-strong", labeled_fraction=0.5, out=out, epochs=3, batch_size=2,
                           lr=0.05, workers=0, device="cpu", unlabeled=(str(clip),), unlabeled_every=2,
                           unlabeled_warmup=1 / 3, **kw)

    full = train(cfg(tmp_path / "full"), log=lambda *_: None)
    metrics = read_jsonl(full / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    # epoch 1 is the labeled-only warm-up; the resume below starts exactly where the teacher is born
    assert metrics[0]["selected"] == 0 and all(v is None for v in metrics[0]["pass_share"].values())
    assert metrics[1]["selected"] > 0
    shares = [v for v in metrics[-1]["pass_share"].values() if v is not None]
    assert shares and min(shares) >= 0.3 - 1e-9  # class-balanced: no predicted class starved
    assert len(list((full / "footage").rglob("*.jpg"))) == 6

    def stop_after_epoch_one(line: str) -> None:
        if line.startswith("epoch 1/3"):
            raise Interrupted

    with pytest.raises(Interrupted):
        train(cfg(tmp_path / "killed"), log=stop_after_epoch_one)
    logs: list[str] = []
    train(cfg(tmp_path / "killed", resume=True), explicit={"resume"}, log=logs.append)
    assert any("resuming" in line and "after epoch 1" in line for line in logs)
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("full", "killed"))
    for key in ("state_dict", "teacher"):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert read_jsonl(tmp_path / "killed" / "metrics.jsonl")[-1]["loss"] == metrics[-1]["loss"]


def test_strong_aug_changes_supervised_training_and_only_when_asked(tmp_path):
    base = dict(data=TINY, method="supervised", labeled_fraction=0.5, epochs=1, batch_size=2, lr=0.05, workers=0,
                device="cpu")
    plain = read_jsonl(train(TrainConfig(out=tmp_path / "a", **base), log=lambda *_: None) / "metrics.jsonl")
    strong = read_jsonl(train(TrainConfig(out=tmp_path / "b", strong_aug=True, **base), log=lambda *_: None)
                        / "metrics.jsonl")
    assert plain[0]["loss"] != strong[0]["loss"]
