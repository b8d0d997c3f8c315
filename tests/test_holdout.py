"""Cross-fitted calibration: ``ssseg train --holdout DRIVE`` keeps a drive's labeled images out of training and
export calibrates the gate on them, never on a split the segmenter trained on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ssseg.config import ExportConfig
from ssseg.data import holdout_ids, open_split
from ssseg.errors import ConfigError, DataError, ExportError
from ssseg.export import run_export
from ssseg.runtime.model import read_model
from ssseg.train.config import TrainConfig
from ssseg.train.data import read_list
from ssseg.train.engine import train


@pytest.fixture
def two_drives(tmp_path: Path) -> Path:
    """A folder dataset whose train split holds two drives, ``drA_*`` (8 frames) and ``drB_*`` (4)."""
    from ssseg.data.synthetic import write_synthetic

    root = tmp_path / "data"
    write_synthetic(root, (48, 64), 0, {"train": 12, "val": 2, "test": 2})
    for sub in ("images", "labels"):
        for i, p in enumerate(sorted((root / "train" / sub).iterdir())):
            p.rename(p.with_name(f"{'drA' if i < 8 else 'drB'}_{i:03d}.png"))
    return root


def tiny(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=f"folder:{data}", method="supervised", model="dsnet-fast-ss", out=out, epochs=1,
                       batch_size=4, workers=0, device="cpu", report=False, **kw)


def test_holdout_drive_never_trains_and_export_calibrates_on_it_alone(two_drives, tmp_path):
    run = train(tiny(two_drives, tmp_path / "run", holdout=("drB",), labeled_fraction=0.5), log=lambda *_: None)
    held = read_list(run / "splits" / "holdout.txt")
    trained = read_list(run / "splits" / "labeled.txt") + read_list(run / "splits" / "unlabeled.txt")
    assert held == [f"drB_{i:03d}" for i in range(8, 12)]
    assert len(trained) == 8 and not set(trained) & set(held)

    shutil.rmtree(two_drives / "val")  # calibrating anywhere but the holdout would now fail
    said: list[str] = []
    run_export(ExportConfig(run=run, out=tmp_path / "m", verify_images=2), say=said.append)
    calibration = read_model(tmp_path / "m").data["gate"]["calibration"]
    assert calibration["split"] == "holdout" and calibration["images"] == 4
    assert any(line.startswith("calibrated the softmax gate on 4 holdout images") for line in said)
    with pytest.raises(ExportError, match="cannot open the val split"):
        run_export(ExportConfig(run=run, out=tmp_path / "v", calib_split="val", verify_images=2), say=lambda *_: None)


def test_holdout_mistakes_are_one_line(two_drives, tmp_path):
    with pytest.raises(ConfigError, match="--holdout drC matches no training image"):
        train(tiny(two_drives, tmp_path / "a", holdout=("drC",)), log=lambda *_: None)
    with pytest.raises(ConfigError, match="holds out every training image"):
        train(tiny(two_drives, tmp_path / "b", holdout=("drA", "drB")), log=lambda *_: None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(DataError, match="no holdout split"):
        open_split(f"folder:{two_drives}", "holdout", ())


def test_holdout_ids_follow_the_prefix_not_the_listing():
    ids = ["0001TP_006690", "0016E5_00390", "0001TP_006720", "Seq05VD_f00030"]
    assert holdout_ids(ids, ("0001TP",)) == ["0001TP_006690", "0001TP_006720"]
    assert holdout_ids(ids, ()) == []
