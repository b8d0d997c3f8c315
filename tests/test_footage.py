"""Training footage at the scale users have: memory that does not grow with the video, and a frame budget that
bounds the cache on disk while every source keeps a share spread over its whole length."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssseg.classes import SYNTHETIC
from ssseg.data.synthetic import render_scene, write_synthetic_clip
from ssseg.train.footage import extract_footage, frame_budget

pytest.importorskip("av")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """600 frames at 240x320: about 138 MB decoded, if a reader held them all."""
    return write_synthetic_clip(tmp_path_factory.mktemp("clip") / "drive.mp4", 600, size=(240, 320), rate=30)


def test_streaming_extraction_memory_stays_bounded_on_a_long_video(long_clip, tmp_path):
    tracemalloc.start()
    try:
        footage, problems = extract_footage((str(long_clip),), 1, (60, 80), tmp_path / "out", SYNTHETIC,
                                            skip_bad=False, log=lambda *_: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(footage) == 600 and not problems
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MB while extracting 600 frames"


def test_frame_budget_bounds_the_cache_and_spreads_each_share(long_clip, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(render_scene(0, "test", i, (48, 64))[0]).save(folder / f"p{i:03d}.png")
    logs: list[str] = []
    footage, _ = extract_footage((str(long_clip), str(folder)), 1, (24, 32), tmp_path / "out", SYNTHETIC,
                                 skip_bad=False, log=logs.append, max_frames=64)
    per_source = {}
    for s in footage.samples:
        per_source.setdefault(s.image.parent.name, []).append(s.image)
    assert len(footage) <= 64 and len(per_source) == 2
    video = next(v for k, v in per_source.items() if "drive" in k)
    assert 40 <= len(video) <= 60  # its share, 600 of 640 declared frames
    done = json.loads((video[0].parent / "done.json").read_text())
    assert done["every"] == 10 and max(int(p.stem) for p in video) >= 590  # spread to the end, not the first 60
    assert any("--unlabeled-max-frames 64" in line for line in logs)


def test_frame_budget_rule():
    assert frame_budget([100, 50], 2, 1000) == [(2, 50), (2, 25)]  # fits: every 2nd frame of each
    (s1, q1), (s2, q2) = frame_budget([9000, 1000], 1, 100)
    assert q1 + q2 <= 100 and q1 == 90 and q2 == 10 and s1 == 100 and s2 == 100
    (_, q_known), (_, q_unknown) = frame_budget([5000, None], 1, 100)
    assert q_known + q_unknown <= 100 and q_unknown == 50


def test_footage_is_read_as_shown(tmp_path):
    """Training's --unlabeled reader turns frames as ssseg label does (issue 30): a phone video's display
    matrix and a JPEG's EXIF orientation are applied, so pseudo-labels and masks agree with the viewer."""
    from label_files import exif_jpeg, rotated_clip

    folder = tmp_path / "photos"
    folder.mkdir()
    exif_jpeg(folder / "upright.jpg")
    clip = rotated_clip(tmp_path / "phone.mp4")
    footage, problems = extract_footage((str(clip), str(folder)), 1, None, tmp_path / "out", SYNTHETIC,
                                        skip_bad=False, log=lambda *_: None)
    assert not problems
    shapes = {np.asarray(Image.open(p)).shape[:2] for p in (tmp_path / "out").rglob("*.jpg")}
    assert shapes == {(80, 48)}  # stored 48x80, both shown upright
