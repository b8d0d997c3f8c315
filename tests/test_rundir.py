"""RunDir, the one reader of a run directory's layout: runs written by this ssseg (run.json) and runs written
before run.json and before checkpoints recorded their normalisation keep loading in export and eval."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ssseg.checkpoint import load_checkpoint, normalization
from ssseg.errors import CheckpointError, ExportError
from ssseg.export.sources import resolve_sources
from ssseg.rundir import LAYOUT_FILE, RunDir, legacy_layout, resolve_checkpoint
from ssseg.segmenters import DEFAULT_SEGMENTER, get_spec
from ssseg.segmenters import IMAGENET_MEAN as MEAN
from ssseg.segmenters import IMAGENET_STD as STD


def test_a_new_run_records_its_layout(aux_run):
    rundir = RunDir(aux_run)
    assert json.loads((aux_run / LAYOUT_FILE).read_text())["method"] == "aux"
    assert rundir.staged and rundir.layout["segmenter_stages"] == [3, 1]
    assert rundir.final_segmenter() == aux_run / "stage3" / "best.pt"
    assert rundir.gater() == aux_run / "stage2" / "best.pt" and rundir.no_gater_reason() is None
    assert rundir.gate_threshold == 0.7  # the run's --t-aux
    assert resolve_checkpoint(aux_run) == aux_run / "stage3" / "best.pt"
    assert rundir.unfinished() is None


def test_a_run_written_before_run_json_reads_the_same(aux_run, tmp_path):
    """Older ssseg wrote no run.json, and checkpoints without their normalisation: the layout comes from the
    method in config.json, and the constants are ImageNet's, which every older run was trained with."""
    old = tmp_path / "old"
    shutil.copytree(aux_run, old, ignore=shutil.ignore_patterns("model"))
    (old / LAYOUT_FILE).unlink()
    for path in old.rglob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        del ckpt["normalization"], ckpt["segmenter_spec"]
        torch.save(ckpt, path)
    new, legacy = resolve_sources(aux_run), resolve_sources(old)
    assert legacy.segmenter_path == old / "stage3" / "best.pt" and legacy.aux_path == old / "stage2" / "best.pt"
    assert legacy.gate_threshold == new.gate_threshold == 0.7
    assert legacy.method == "aux" and legacy.normalization == (MEAN, STD)
    assert new.normalization == (get_spec(DEFAULT_SEGMENTER).mean, get_spec(DEFAULT_SEGMENTER).std)
    assert RunDir(old).layout == RunDir(aux_run).layout


@pytest.mark.parametrize("method, stages, gater, threshold", [
    ("supervised", 0, None, None), ("aux", 3, "stage2", 0.9), ("adversarial", 0, "gater", 0.2),
    ("dual-disc", 0, "gater", 0.5), ("latent", 0, None, None), ("self-train", 3, None, None)])
def test_legacy_layouts_of_the_six_methods(method, stages, gater, threshold):
    lay = legacy_layout({"method": method, "t_aux": 0.9, "t_semi": 0.2})
    assert (lay["stages"], lay["gater"], lay["gate_threshold"]) == (stages, gater, threshold)


def test_checkpoints_record_the_normalisation_they_were_trained_with(aux_run):
    spec = get_spec(DEFAULT_SEGMENTER)
    for stage in ("stage1", "stage2"):  # the confidence net reads the segmenter's inputs: the same record
        ckpt = load_checkpoint(aux_run / stage / "best.pt")
        assert ckpt["normalization"] == {"mean": list(spec.mean), "std": list(spec.std)}
        assert normalization(ckpt) == (spec.mean, spec.std) and ckpt["segmenter_spec"]["name"] == spec.name


def test_unfinished_and_foreign_directories_say_why(aux_run, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(aux_run, half, ignore=shutil.ignore_patterns("model"))
    (half / "stage3" / "done.json").unlink()
    with pytest.raises(ExportError, match="stage3 has no done.json.*--resume"):
        RunDir(half).final_segmenter(ExportError)
    assert RunDir(half).latest_segmenter() == half / "stage1" / "best.pt"  # the most advanced finished one
    with pytest.raises(CheckpointError, match="not a run directory"):
        RunDir(tmp_path / "nothing").final_segmenter()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    with pytest.raises(Exception, match="config.json is not valid JSON"):
        RunDir(tmp_path / "bad").layout
