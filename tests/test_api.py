"""The Python API (ssseg/api.py): ``ssseg.Labeler(...).predict`` gives the masks ``ssseg label`` writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from label_files import exif_jpeg
from PIL import Image

from ssseg.data.synthetic import render_scene


def test_labeler_predicts_what_ssseg_label_writes(exported, tmp_path):
    import ssseg

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(render_scene(2, "val", i, (48, 80))[0]).save(folder / f"f{i}.png")
    exif_jpeg(folder / "turned.jpg")  # read as shown, as the labeler reads it
    out = tmp_path / "out"
    assert run_cli("label", str(folder), "--model", str(exported), "--out", str(out), "--backend", "ort",
                   "--confidence").returncode == 0
    labeler = ssseg.Labeler(exported, backend="ort")
    paths = sorted(folder.iterdir())
    preds = labeler.predict(paths)
    assert len(preds) == 4 and labeler.predict(paths[0]).labels.shape == (48, 80)
    for path, pred in zip(paths, preds):
        written = np.asarray(Image.open(out / "frames" / "labels" / f"{path.stem}.png"))
        np.testing.assert_array_equal(pred.labels, written)
        conf = np.asarray(Image.open(out / "frames" / "confidence" / f"{path.stem}.png"))
        assert np.abs(np.floor(pred.confidence * 255 + 0.5) - conf).max() <= 1
    assert preds[-1].labels.shape == (80, 48)  # the EXIF-6 JPEG, shown upright
    gate = json.loads((exported / "model.json").read_text())["gate"]["threshold"]
    assert ((preds[0].labels == 255) == (preds[0].confidence < gate)).mean() > 0.99
    # arrays work as paths do; a threshold of 0 keeps every pixel
    rgb = np.asarray(Image.open(paths[1]).convert("RGB"))
    np.testing.assert_array_equal(labeler.predict(rgb).labels, preds[1].labels)
    assert (ssseg.Labeler(exported, backend="ort", threshold=0.0).predict(rgb).labels != 255).all()


def test_labeler_refuses_bad_input_in_one_line(exported, tmp_path):
    import ssseg
    from ssseg.errors import BackendError, DataError

    labeler = ssseg.Labeler(exported, backend="ort")
    with pytest.raises(DataError, match="missing"):
        labeler.predict(tmp_path / "nope.png")
    with pytest.raises(BackendError, match="uint8 HxWx3"):
        labeler.predict(np.zeros((4, 4), np.float32)[None])


@pytest.mark.slow
def test_the_docs_example_runs(tmp_path):
    """docs/api.md's runnable example, as written (trains and exports a tiny model)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "render_scene" in b)
    r = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(48, 80)" in r.stdout
