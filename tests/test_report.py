"""ssseg report: the label job's and the run's report.html and report.json, what they hold, how they stay bounded,
and how they look in a real browser (headless Chromium; skipped with a line saying how to get it)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from label_files import damaged_clip
from PIL import Image

from ssseg.data.synthetic import render_scene, write_synthetic_clip


@pytest.fixture(scope="module")
def label_job(exported, tmp_path_factory) -> Path:
    """Two shards of one job: a damaged clip, a clean clip and an image folder, labeled with --confidence."""
    root = tmp_path_factory.mktemp("report_job")
    damaged_clip(root / "damaged.mp4")
    write_synthetic_clip(root / "clean.mp4", 30, (48, 80))
    stills = root / "stills"
    stills.mkdir()
    for i in range(6):
        Image.fromarray(render_scene(7, "val", i, (48, 80))[0]).save(stills / f"s{i:02d}.png")
    out = root / "job"
    inputs = [str(root / "damaged.mp4"), str(root / "clean.mp4"), str(stills)]
    shards = [run_cli("label", *inputs, "--model", str(exported), "--out", str(out), "--confidence",
                      "--threshold", "0.3", "--shard", f"{i}/2", "--backend", "ort", *(["--report"] if i else []))
              for i in range(2)]
    assert [r.returncode for r in shards] in ([3, 0], [0, 3]), [r.stderr for r in shards]
    return out


def report_data(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_label_report_merges_shards_and_shows_what_was_labeled(label_job):
    r = run_cli("report", str(label_job))
    assert r.returncode == 0, r.stderr
    data = report_data(label_job)
    assert data["format"] == "ssseg.report.label"
    keys = sorted(s["key"] for s in data["sources"])
    assert keys == ["clean", "damaged", "stills"]  # both shards' sources in one report
    by_key = {s["key"]: s for s in data["sources"]}
    # the damage the manifest records, and the frames around it
    damaged = json.loads(next(label_job.glob("damaged/manifest.json")).read_text())
    assert by_key["damaged"]["damage"] == damaged["damage"] and by_key["damaged"]["frames_skipped"] == 3
    assert by_key["damaged"]["frames"] == len(damaged["frames"]) == 37
    # totals streamed from the manifests equal the manifests' own
    for key, s in by_key.items():
        m = json.loads((label_job / key / "manifest.json").read_text())
        assert list(s["per_class"].values()) == list(m["totals"]["per_class"].values())
        assert sum(b["frames"] for b in s["timeline"]) == len(m["frames"])
        lowest = sorted(m["frames"], key=lambda f: (f["coverage"], f["index"]))[: len(s["lowest"])]
        assert [f["index"] for f in s["lowest"]] == [f["index"] for f in lowest]
    # pictures of the frames to label next, from the sources themselves (video seek and image folder)
    pics = data["next_to_label"]
    assert {p["source"] for p in pics} == {"clean", "damaged", "stills"}
    assert all(p["note"] is None for p in pics), [p["note"] for p in pics]
    # the model, its gate and the commands of both shards
    assert data["model"]["found"] and data["model"]["class_names"]
    assert len(data["runs"]) == 2
    assert all("ssseg label" in r["command"] and "--shard" in r["command"] for r in data["runs"])
    html = (label_job / "report.html").read_text()
    for section in ("summary", "timeline", "next", "classes", "damage", "model", "runs"):
        assert f'id="{section}"' in html
    assert "http://" not in html and "https://" not in html and "<script" not in html  # works offline, no script


def test_report_picture_is_the_labeled_frame(label_job, tmp_path):
    """The enlarged picture's middle panel is the written mask over the frame: decode it and compare with the
    label file's colours where the gate kept pixels."""
    import base64
    import io

    from ssseg.report.write import write_report

    write_report(label_job, tmp_path / "r.html", say=lambda m: None)
    data = json.loads((tmp_path / "r.json").read_text())
    n, pic = next((n, p) for n, p in enumerate(data["next_to_label"]) if p["source"] == "stills")
    html = (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.html").stat().st_size < 5e6
    full = html.split(f'id="f{n}"')[1].split('src="data:image/jpeg;base64,')[1].split('"')[0]
    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(full))))
    frame = np.asarray(Image.open(label_job.parent / "stills" / f"{pic['name']}.png").convert("RGB"))
    h, w = frame.shape[:2]
    assert strip.shape[0] == h and strip.shape[1] >= 2 * w  # frame | mask (| confidence) at the frame's size
    assert np.abs(strip[:, :w].astype(int) - frame).mean() < 15  # JPEG of a noisy frame (another frame: ~60)


def test_a_running_job_is_reported_from_its_journal(label_job, tmp_path):
    """A source still being labeled (or stopped) has no manifest yet: its journal is read, lines torn by a kill
    skipped, a frame journaled twice counted once."""
    from ssseg.report.write import write_report

    job = tmp_path / "job"
    shutil.copytree(label_job, job)
    manifest = json.loads((job / "clean" / "manifest.json").read_text())
    (job / "clean" / "manifest.json").unlink()
    lines = [json.dumps({"identity": manifest["source"]["identity"], "input": manifest["source"]["input"]})]
    lines += [json.dumps(f) for f in manifest["frames"][:20]] + [json.dumps(manifest["frames"][3]), '{"index": 2']
    (job / "clean" / "frames.jsonl").write_text("\n".join(lines))
    write_report(job, say=lambda m: None)
    clean = next(s for s in report_data(job)["sources"] if s["key"] == "clean")
    assert clean["state"].startswith("in progress") and clean["frames"] == 20
    assert clean["per_class"] == dict(zip(clean["per_class"], np.sum([f["classes"] for f in manifest["frames"][:20]],
                                                                      axis=0).tolist()))
    pics = [p for p in report_data(job)["next_to_label"] if p["source"] == "clean"]
    assert pics and all(p["note"] is None for p in pics)  # frames found in the video the journal names


def test_frames_below_min_coverage_are_shown_without_a_mask(exported, label_job, tmp_path):
    """--min-coverage writes no files for the least confident frames, which are the ones to label next: the
    report shows the frame itself and says why there is no mask."""
    from ssseg.config import LabelConfig
    from ssseg.label import run_label
    from ssseg.report.write import write_report

    out = tmp_path / "job"
    run_label(LabelConfig(inputs=(str(label_job.parent / "stills"),), model=exported, out=out, threshold=0.999,
                          min_coverage=1.0, backend="ort"), say=lambda m: None)
    manifest = json.loads((out / "stills" / "manifest.json").read_text())
    assert manifest["frames_below_min_coverage"] > 0
    write_report(out, say=lambda m: None)
    pics = report_data(out)["next_to_label"]
    unwritten = {f["index"] for f in manifest["frames"] if not f["written"]}
    assert pics and {p["index"] for p in pics} <= unwritten
    assert all("below --min-coverage" in p["note"] for p in pics)


def test_timeline_stays_bounded_and_exact(tmp_path):
    from ssseg.report.manifests import Timeline

    line = Timeline(points=50, lowest_count=7)
    rng = np.random.default_rng(0)
    cov = rng.random(10_000)
    for i, c in enumerate(cov):
        line.add({"index": i, "name": f"{i:06d}", "time": i / 30, "coverage": float(c), "size": [4, 5],
                  "classes": [1, 2], "written": True, "files": []})
    series = line.series()
    assert len(series) <= 50 and sum(b["frames"] for b in series) == 10_000
    assert min(b["min"] for b in series) == pytest.approx(cov.min())
    assert sum(b["mean"] * b["frames"] for b in series) == pytest.approx(cov.sum())
    assert [f["index"] for f in line.lowest_frames()] == list(np.argsort(cov)[:7])
    assert line.per_class == [10_000, 20_000] and line.pixels == 200_000


def test_manifest_is_streamed_and_reformatted_ones_read_whole(label_job, tmp_path):
    from ssseg.report.manifests import read_manifest

    path = label_job / "clean" / "manifest.json"
    whole = json.loads(path.read_text())
    head, frames = read_manifest(path)
    assert list(frames) == whole["frames"] and head == {k: v for k, v in whole.items() if k != "frames"}
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps(whole))  # one line: not the runtimes' layout
    head2, frames2 = read_manifest(other)
    assert head2 == head and list(frames2) == whole["frames"]


def test_run_report_written_by_train(aux_run):
    """ssseg train wrote report.html at the end, with the gate measured on val."""
    data = report_data(aux_run)
    assert data["format"] == "ssseg.report.run" and data["method"] == "aux"
    assert [s["folder"] for s in data["stages"]] == ["stage1", "stage2", "stage3"]
    assert data["stages"][1]["score_name"] == "AUROC"
    assert data["gate"]["split"] == "val" and "softmax" in data["gate"]["sources"]
    assert data["pseudo_labels"]["source"] == "stage3/pseudo/manifest.json"
    assert data["split"]["labeled"] == 4 and data["split"]["unlabeled"] == 4
    assert (aux_run / "gate_val.json").is_file()


def test_run_report_of_an_online_method(tmp_path):
    """weak-strong selects pseudo-labels online: the report shows each class's selected share of the last epoch
    (class-balanced selection keeps every predicted class at 30 % or more) and the softmax gate on val."""
    from ssseg.api import train
    from ssseg.train.config import TrainConfig

    out = train(TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="weak-strong", out=tmp_path / "ws",
                            labeled_fraction=0.5, epochs=2, batch_size=4, workers=0, device="cpu"), say=lambda m: None)
    data = report_data(out)
    pseudo = data["pseudo_labels"]
    shares = [v for v in pseudo["pass_share"].values() if v is not None]
    assert pseudo["source"] == "ws/metrics.jsonl epoch 2" and shares and all(0.3 - 1e-6 <= v <= 1 for v in shares)
    assert data["gate"]["primary"] == "softmax" and data["stages"][0]["epochs"] == 2
    assert data["unfinished"] is None
    (out / "done.json").unlink()  # a run stopped before its end: said from its files (no checkpoint is read)
    from ssseg.report.write import write_report

    write_report(out, say=lambda m: None)
    assert report_data(out)["unfinished"] == "no done.json; 2 of 2 epochs in metrics.jsonl"


def test_report_refuses_what_it_cannot_read(tmp_path, label_job):
    r = run_cli("report", str(tmp_path))
    assert r.returncode == 1 and "neither a label job" in r.stderr and "Traceback" not in r.stderr
    copy = tmp_path / "job"
    shutil.copytree(label_job, copy)
    (copy / "clean" / "manifest.json").write_text('{"format": "ssseg.label.manifest", "format_ver')
    r = run_cli("report", str(copy))
    assert r.returncode == 1 and "clean/manifest.json" in r.stderr and "--resume" in r.stderr
    assert "Traceback" not in r.stderr


# --- in a browser -------------------------------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium here: the browser checks of the reports are skipped (make test installs Debian's "
                "chromium as root; elsewhere install chromium)")


def open_in_browser(html: Path, shot: Path) -> dict:
    """Load the page from the file system in headless Chromium with the network off; what the console said,
    the sections and whether every image decoded; a full-page screenshot."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"] if os.getuid() == 0 else [])
        context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url[:80]}"))
        page.goto(html.as_uri(), wait_until="load")
        result = {
            "errors": errors,
            "sections": page.eval_on_selector_all("h2[id]", "hs => hs.map(h => h.id)"),
            "images": page.eval_on_selector_all("img:not([loading=lazy])",
                                                "is => is.map(i => i.complete && i.naturalWidth > 0)"),
        }
        thumbs = page.query_selector_all(".thumbs a")
        if thumbs:  # click to enlarge: the full picture shows, and decodes
            thumbs[0].click()
            box = page.locator(".box:target img")
            box.wait_for(state="visible")
            result["enlarged"] = box.evaluate("i => i.complete && i.naturalWidth > 0") or \
                box.evaluate("i => new Promise(r => i.onload = () => r(i.naturalWidth > 0))")
            page.goto(html.as_uri() + "#_")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return result


def test_label_report_in_a_browser(label_job, tmp_path):
    from ssseg.report.write import write_report

    html = write_report(label_job, tmp_path / "report.html", say=lambda m: None)
    seen = open_in_browser(html, tmp_path / "label_report.png")
    assert seen["errors"] == []
    assert seen["sections"] == ["summary", "timeline", "next", "classes", "damage", "model", "runs"]
    assert len(seen["images"]) >= 8 and all(seen["images"])  # figures and thumbnails all decode
    assert seen["enlarged"]
    assert (tmp_path / "label_report.png").stat().st_size > 20_000


def test_run_report_in_a_browser(aux_run, tmp_path):
    seen = open_in_browser(aux_run / "report.html", tmp_path / "run_report.png")
    assert seen["errors"] == []
    assert seen["sections"] == ["curves", "iou", "gate", "pseudo", "split", "timings", "config"]
    assert len(seen["images"]) == 4 and all(seen["images"])  # curves, IoU, gate, pseudo-label shares
    assert (tmp_path / "run_report.png").stat().st_size > 20_000
