"""`ssseg label` end to end on clips made here with PyAV, and its pure parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from label_files import damaged_clip, kill_after_files
from label_files import job_files as tree
from PIL import Image

from ssseg.data.synthetic import render_scene, write_synthetic_clip

FRAME_HW = (48, 80)  # not the model's 64x64: frames are resized in and masks resized back


def write_clip(path: Path, frames: int, codec: str = "libx264", fmt: str | None = None) -> Path:
    return write_synthetic_clip(path, frames, FRAME_HW, codec=codec, container=fmt)


def decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def label(*args, model: Path, out: Path, timeout: float = 300):
    return run_cli("label", *map(str, args), "--model", str(model), "--out", str(out), timeout=timeout)


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "drive.mp4", 12)


# --- end to end ---

def test_video_is_labeled_gated_and_resized_back(exported, clip, tmp_path):
    from ssseg.gate import apply
    from ssseg.label.layouts import confidence_u8
    from ssseg.runtime.backends import OrtBackend
    from ssseg.runtime.frames import resize_labels

    # Reference: the same frames through the runtime, gated at 64x64, resized back with nearest. The tiny test
    # model is unsure everywhere, so the threshold is set where it splits the pixels.
    frames = decoded(clip)
    labels, conf = OrtBackend(exported).infer(frames[:4])
    t = round(float(np.median(conf)), 4)
    out = tmp_path / "out"
    r = label(clip, "--confidence", "--batch", "4", "--threshold", t, model=exported, out=out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "drive" / "manifest.json").read_text())
    assert (m["frames_decoded"], m["frames_sampled"], m["frames_written"], m["complete"]) == (12, 12, 12, True)
    assert m["settings"]["threshold"] == t
    gated = 0.0
    for i in range(4):
        written = png(out / "drive" / "labels" / f"{i:06d}.png")
        assert written.shape == FRAME_HW
        np.testing.assert_array_equal(written, resize_labels(apply(labels[i], conf[i], t), FRAME_HW))
        conf_png = png(out / "drive" / "confidence" / f"{i:06d}.png")
        np.testing.assert_array_equal(conf_png, resize_labels(confidence_u8(conf[i]), FRAME_HW))
        # the gate itself: exactly the pixels below the threshold are 255
        assert ((written == 255) == (resize_labels((conf[i] < t).astype(np.uint8), FRAME_HW) == 1)).all()
        gated += (written == 255).mean() / 4
    assert 0.2 < gated < 0.8

    default = tmp_path / "default"
    assert label(clip, "--every", "6", model=exported, out=default).returncode == 0
    manifest = json.loads((default / "drive" / "manifest.json").read_text())
    assert manifest["settings"]["threshold"] == 0.7  # the run's t_aux, from model.json

    rec = json.loads(json.dumps(m["frames"][0]))
    assert rec["coverage"] == pytest.approx((png(out / rec["files"][0]) != 255).mean(), abs=1e-6)
    assert sum(rec["classes"]) == (png(out / rec["files"][0]) != 255).sum()
    s = json.loads((out / "summary.json").read_text())
    assert s["frames_written"] == 12 and s["failures"] == []
    covs = [f["coverage"] for f in s["next_to_label"]]
    assert covs == sorted(covs) and covs[0] == min(f["coverage"] for f in m["frames"])
    assert "frames labeled" in r.stdout


def test_every_threshold_and_min_coverage(exported, clip, tmp_path):
    out = tmp_path / "out"
    r = label(clip, "--every", "5", "--threshold", "0", model=exported, out=out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "drive" / "labels").iterdir()) == ["000000.png", "000005.png", "000010.png"]
    assert (png(out / "drive" / "labels" / "000005.png") != 255).all()  # threshold 0 keeps every pixel

    out2 = tmp_path / "out2"
    r = label(clip, "--min-coverage", "1.0", model=exported, out=out2)
    assert r.returncode == 0, r.stderr
    m = json.loads((out2 / "drive" / "manifest.json").read_text())
    assert m["frames_written"] == 0 and m["frames_below_min_coverage"] == 12
    assert not (out2 / "drive" / "labels").exists()
    assert len(json.loads((out2 / "summary.json").read_text())["next_to_label"]) == 12


def test_cityscapes_and_camvid_layouts(exported, clip, tmp_path):
    out = tmp_path / "cs"
    assert label(clip, "--every", "4", "--format", "cityscapes", "--confidence", model=exported,
                 out=out).returncode == 0
    gt = sorted(p.name for p in (out / "gtFine" / "train" / "drive").iterdir())
    assert gt == [f"drive_000000_{i:06d}_gtFine_{k}.png" for i in (0, 4, 8) for k in ("confidence", "labelTrainIds")]
    imgs = sorted((out / "leftImg8bit" / "train" / "drive").iterdir())
    assert [p.name for p in imgs] == [f"drive_000000_{i:06d}_leftImg8bit.png" for i in (0, 4, 8)]
    np.testing.assert_array_equal(png(imgs[1]), decoded(clip)[4])  # the frame itself, lossless
    assert (out / "meta" / "drive" / "manifest.json").is_file()

    out = tmp_path / "camvid"
    assert label(clip, "--every", "6", "--format", "camvid", model=exported, out=out).returncode == 0
    assert sorted(p.name for p in (out / "trainannot").iterdir()) == ["drive_000000.png", "drive_000006.png"]
    lbl = png(out / "trainannot" / "drive_000006.png")
    assert lbl.max() == 9 and 255 not in lbl  # 9 synthetic classes: void is 9, never 255
    lines = (out / "train.txt").read_text().splitlines()
    assert lines == [f"/SegNet/CamVid/train/drive_{i:06d}.png /SegNet/CamVid/trainannot/drive_{i:06d}.png"
                     for i in (0, 6)]


def test_overlay_is_a_video_of_the_sampled_frames(exported, clip, tmp_path):
    import av

    out = tmp_path / "out"
    assert label(clip, "--overlay", "--every", "2", model=exported, out=out).returncode == 0
    with av.open(str(out / "drive" / "overlay.mp4")) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        assert Fraction(s.average_rate) == 5  # 10 fps, every 2nd frame
    assert len(frames) == 6 and frames[0].shape == (*FRAME_HW, 3)
    assert json.loads((out / "drive" / "manifest.json").read_text())["overlay"] == "drive/overlay.mp4"


def test_label_folders_globs_lists_and_streams(exported, clip, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        Image.fromarray(render_scene(1, "val", i, (40, 60))[0]).save(shots / f"s{i}.jpg")
    lst = tmp_path / "inputs.txt"
    lst.write_text(f"# a list file\nshots/s0.jpg\n{clip}\n")
    out = tmp_path / "out"
    r = label(lst, str(shots / "s[12].jpg"), f"file://{clip}", model=exported, out=out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "shots" / "labels").iterdir()) == ["s0.png", "s1.png", "s2.png"]
    assert png(out / "shots" / "labels" / "s2.png").shape == (40, 60)
    streams = [p for p in out.iterdir() if p.name.startswith("drive.mp4-")]  # a stream: named by its start time
    assert len(streams) == 1 and len(list((streams[0] / "labels").iterdir())) == 12
    assert len(list((out / "drive" / "labels").iterdir())) == 12


def test_shards_share_one_output_folder(exported, clip, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        Image.fromarray(render_scene(1, "val", i, (40, 60))[0]).save(shots / f"s{i}.png")
    other = write_clip(tmp_path / "other.mp4", 6)
    out = tmp_path / "out"
    keys = []
    shards = [subprocess.Popen([sys.executable, "-m", "ssseg", "label", str(clip), str(shots), str(other), "--shard",
                                f"{i}/2", "--format", "camvid", "--model", str(exported), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for i, proc in enumerate(shards):  # side by side: each holds its own shard's lock
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = json.loads((out / f"summary.shard-{i}-of-2.json").read_text())
        keys.append({s["key"] for s in summary["per_source"]})
    r = label(clip, shots, other, "--shard", "1/2", "--format", "camvid", "--resume", model=exported, out=out)
    assert r.returncode == 0, r.stderr  # the last shard to finish lists every source
    assert keys[0] | keys[1] == {"drive", "shots", "other"} and not keys[0] & keys[1]
    assert len((out / "train.txt").read_text().splitlines()) == 12 + 3 + 6  # the last shard lists every source


def test_one_job_per_output_folder(exported, tmp_path):
    # Before: a second job on the same --out exited 0 and the two left a manifest listing no frames.
    from ssseg.label.lock import LOCK

    long_clip = write_clip(tmp_path / "long.mp4", 600)  # long enough to outlast two refused starts
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "ssseg", "label", str(long_clip), "--batch", "1", "--model",
                              str(exported), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    while not (out / "long" / "labels").is_dir() and first.poll() is None:
        time.sleep(0.01)
    for extra in ((), ("--resume",)):
        r = label(long_clip, *extra, model=exported, out=out)
        assert r.returncode == 1 and "is labeling into this folder" in r.stderr and len(r.stderr.splitlines()) == 1
        assert f"process {first.pid}" in r.stderr and LOCK in r.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    m = json.loads((out / "long" / "manifest.json").read_text())
    assert m["complete"] and m["frames_written"] == 600 and len(m["frames"]) == 600
    assert not (out / LOCK).exists()  # released

    # A lock left by a killed process on this host is taken over, and says so.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "runtime": "ssseg",
                                        "started": "earlier"}))
    r = label(long_clip, "--resume", model=exported, out=out)
    assert r.returncode == 0 and "removed a stale lock" in r.stdout and not (out / LOCK).exists()
    # One from another machine (a shared disk) cannot be checked: refused, naming the holder and the fix.
    (out / LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1, "runtime": "ssseg-cpp", "started": "now"}))
    r = label(long_clip, "--resume", model=exported, out=out)
    assert r.returncode == 1 and "ssseg-cpp job (process 1 on elsewhere" in r.stderr and "delete" in r.stderr


def test_bad_inputs_are_recorded_and_the_job_goes_on(exported, clip, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    # fixed bytes: a random draw once looked like an audio-only file to FFmpeg (now handled, see below)
    (bad / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    mkv = write_clip(tmp_path / "long.mkv", 40, codec="mpeg4", fmt="matroska")
    (bad / "truncated.mkv").write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2 + 77])
    (bad / "nothing_here").mkdir()
    frames = bad / "frames"
    frames.mkdir()
    Image.fromarray(render_scene(0, "val", 0, FRAME_HW)[0]).save(frames / "a.png")
    (frames / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    r = label(bad / "empty.mp4", bad / "garbage.mp4", bad / "truncated.mkv", bad / "nothing_here", frames, clip,
              model=exported, out=out)
    assert r.returncode == 1
    assert "5 of 6 sources failed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    s = json.loads((out / "summary.json").read_text())
    failed = {f["source"]: f["errors"] for f in s["failures"]}
    assert set(failed) == {"empty", "garbage", "truncated", "nothing-here", "frames"}
    assert "empty" in failed["empty"][0]["source"]
    assert failed["frames"] == [{"index": 1, "name": "b", "error": failed["frames"][0]["error"]}]
    trunc = json.loads((out / "truncated" / "manifest.json").read_text())
    assert 0 < trunc["frames_written"] < 40 and "truncated" in trunc["errors"][0]["source"]
    assert len(list((out / "frames" / "labels").iterdir())) == 1
    assert len(list((out / "drive" / "labels").iterdir())) == 12  # the good clip after the bad ones
    for line in ("FAILED", "garbage.mp4", "truncated.mkv"):
        assert line in r.stdout

    # The empty file replaced by a real clip: --resume labels it and leaves the finished sources alone.
    (bad / "empty.mp4").write_bytes(clip.read_bytes())
    r = label(bad / "empty.mp4", bad / "garbage.mp4", bad / "truncated.mkv", bad / "nothing_here", frames, clip,
              "--resume", model=exported, out=out)
    assert r.returncode == 1 and "4 of 6 sources failed" in r.stderr
    assert len(list((out / "empty" / "labels").iterdir())) == 12
    assert "drive: complete in an earlier run, skipped" in r.stdout


def test_damaged_spot_mid_video_costs_only_its_frames(exported, tmp_path):
    # Before: decoding stopped at the damage and the rest of the file was never labeled, even with --resume.
    clip = damaged_clip(tmp_path / "cam.mp4")
    out = tmp_path / "out"
    r = label(clip, model=exported, out=out)
    assert r.returncode == 3, r.stderr
    m = json.loads((out / "cam" / "manifest.json").read_text())
    assert m["complete"] and not m["errors"] and m["frames_skipped"] == 3
    assert [(d["first"], d["last"], d["skipped"]) for d in m["damage"]] == [(21, 23, True)]
    names = [f["name"] for f in m["frames"]]
    assert names == [f"{i:06d}" for i in range(40) if not 21 <= i <= 23]  # later frames keep their numbers
    assert [f["time"] for f in m["frames"]][-1] == 3.9
    assert len(list((out / "cam" / "labels").iterdir())) == 37
    assert "DAMAGED" in r.stdout and "21-23" in r.stdout and "exit status 3" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["frames_skipped"] == 3 and s["damaged"][0]["damage"][0]["first"] == 21 and not s["failures"]
    before = tree(out)
    r = label(clip, "--resume", model=exported, out=out)  # nothing left to do; the damage is still reported
    assert r.returncode == 3 and "complete in an earlier run" in r.stdout
    assert tree(out) == before


def test_user_errors_before_any_work(exported, clip, tmp_path):
    out = tmp_path / "out"
    r = label(tmp_path / "nope.mp4", model=exported, out=out)
    assert r.returncode == 1 and "nope.mp4: input does not exist" in r.stderr and not out.exists()
    r = label(clip, "--batch", "8", model=exported, out=out)
    assert r.returncode == 1 and "--batch 8 is above the model's maximum batch 4" in r.stderr
    r = label(clip, "--backend", "trt", model=exported, out=out)
    assert r.returncode == 1 and "tensorrt" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()  # a job that could not start leaves --out as it was

    ungated = tmp_path / "ungated"
    ungated.mkdir()
    for f in exported.iterdir():
        if f.is_file():
            (ungated / f.name).write_bytes(f.read_bytes())
    spec = json.loads((ungated / "model.json").read_text())
    spec["gate"] = {"available": False, "threshold": None, "ignore_value": 255, "reason": "supervised run"}
    (ungated / "model.json").write_text(json.dumps(spec))
    r = label(clip, "--threshold", "0.5", model=ungated, out=out)
    assert r.returncode == 1 and "--threshold need a confidence net" in r.stderr and "supervised run" in r.stderr

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    r = label(clip, model=exported, out=foreign)
    assert r.returncode == 1 and "not written by ssseg label" in r.stderr

    assert label(clip, "--every", "6", model=exported, out=out).returncode == 0
    r = label(clip, "--every", "6", model=exported, out=out)
    assert r.returncode == 1 and "already labeled here" in r.stderr and "--resume" in r.stderr
    r = label(clip, "--every", "3", "--resume", model=exported, out=out)
    assert r.returncode == 1 and "every 6 -> 3" in r.stderr
    r = label(clip, "--every", "6", "--resume", model=exported, out=out)
    assert r.returncode == 0 and "complete in an earlier run, skipped" in r.stdout


@pytest.mark.slow
def test_resume_after_kill_equals_an_uninterrupted_run(exported, tmp_path):
    long_clip = write_clip(tmp_path / "long.mp4", 400)
    args = [str(long_clip), "--model", str(exported), "--confidence", "--overlay", "--batch", "2"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert label(*args[:1], *args[3:], model=exported, out=full).returncode == 0

    cmd = [sys.executable, "-m", "ssseg", "label", *args, "--out", str(killed)]
    done = kill_after_files(cmd, killed / "long" / "labels", 60, timeout=120)
    assert 60 <= done < 400, "the kill should land mid-run"
    assert not (killed / "long" / "manifest.json").exists()

    r = label(*args[:1], *args[3:], "--resume", model=exported, out=killed)
    assert r.returncode == 0, r.stderr
    a, b = tree(full), tree(killed)
    assert sorted(a) == sorted(b)
    for name in a:
        if not name.endswith(".mp4"):  # the overlay is re-encoded whole; its frames are compared below
            assert a[name] == b[name], name
    np.testing.assert_array_equal(np.stack(decoded(full / "long" / "overlay.mp4")),
                                  np.stack(decoded(killed / "long" / "overlay.mp4")))
    m = json.loads((killed / "long" / "manifest.json").read_text())
    # only the missing frames were labeled again (a frame killed between its rename and its journal line, too)
    assert len(m["runs"]) == 1 and 400 - done <= m["runs"][0]["frames_labeled"] <= 400 - done + 8


# --- pure parts ---

def test_shards_cover_every_source_once(tmp_path):
    from ssseg.label.inputs import Source, assign_keys, shard

    sources = [Source(str(tmp_path / f"v{i}.mp4"), "video") for i in range(11)]
    for i, s in enumerate(sources):
        s.path.write_bytes(b"x" * (100 * (i % 4) + 1))
    assign_keys(sources)
    for n in (1, 2, 3, 11, 13):
        parts = [[s.key for s in shard(sources, i, n)] for i in range(n)]
        flat = [k for p in parts for k in p]
        assert sorted(flat) == sorted(s.key for s in sources) and len(flat) == len(set(flat))
        assert parts == [[s.key for s in shard(sources, i, n)] for i in range(n)]  # deterministic
    weights = [sum(s.weight() for s in shard(sources, i, 3)) for i in range(3)]
    assert max(weights) - min(weights) <= 301  # balanced by bytes


def test_output_names_stay_inside_out(tmp_path):
    from ssseg.label.inputs import Source, assign_keys, frame_names, safe_name, short_hash

    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("..") == "input" and safe_name(".hidden") == "hidden"
    assert safe_name("a b\n c", allow_underscore=False) == "a-b-c"
    h = lambda p: short_hash(os.path.abspath(p))  # noqa: E731
    srcs = [Source("x/cam.mp4", "video"), Source("y/cam.mp4", "video"), Source("rtsp://h:554/live/1", "stream")]
    assign_keys(srcs)
    assert [s.key for s in srcs] == [f"cam-{h('x/cam.mp4')}", f"cam-{h('y/cam.mp4')}", "h-554-1"]
    assert frame_names([Path("a.png"), Path("a.jpg"), Path("../b c.png"), Path("c.png")]) == [
        f"a-{short_hash('a.png')}", f"a-{short_hash('a.jpg')}", f"b_c-{short_hash('b c.png')}", "c"]
    # names of the job's own files, and names that look like the rule's own, are never plain
    srcs = [Source("summary.json.mp4", "video"), Source("job.json.avi", "video"), Source("summary.json", "images"),
            Source("cam-0123abcd.mp4", "video")]
    assign_keys(srcs)
    assert [s.key for s in srcs] == [f"summary.json-{h('summary.json.mp4')}", f"job.json-{h('job.json.avi')}",
                                     f"summary.json-{h('summary.json')}", f"cam-0123abcd-{h('cam-0123abcd.mp4')}"]
    # The order of the inputs changes nothing; `sub/..` is named after its folder; names equal but for case clash.
    srcs = [Source("y/cam.mp4", "video"), Source("x/cam.mp4", "video"), Source(f"{tmp_path}/sub/..", "images"),
            Source("Road.mp4", "video"), Source("road.mkv", "video")]
    assign_keys(srcs)
    assert [s.key for s in srcs] == [f"cam-{h('y/cam.mp4')}", f"cam-{h('x/cam.mp4')}",
                                     safe_name(tmp_path.name, allow_underscore=False),
                                     f"Road-{h('Road.mp4')}", f"road-{h('road.mkv')}"]
    # A resume keeps the recorded key of a source, and a new one clashing with it is hashed
    srcs = [Source("h264.mp4", "video"), Source("h264.mkv", "video")]
    assign_keys(srcs, recorded={os.path.abspath("h264.mp4"): "h264"})
    assert [s.key for s in srcs] == ["h264", f"h264-{h('h264.mkv')}"]


def test_a_backend_failure_mid_run_stops_cleanly(exported, tmp_path, monkeypatch):
    """The error reaches the caller (no hang with decoders blocked on a full queue), finished frames stay."""
    import threading

    import ssseg.runtime.backends as backends
    from ssseg.config import LabelConfig
    from ssseg.errors import BackendError
    from ssseg.label import run_label

    real = backends.open_backend

    def failing(*args, **kwargs):
        backend = real(*args, **kwargs)
        infer, calls = backend.infer, []

        def infer_then_fail(frames):
            calls.append(1)
            if len(calls) == 6:
                raise BackendError("out of memory at batch 2 (simulated)", fix="use a smaller --batch")
            return infer(frames)

        backend.infer = infer_then_fail
        return backend

    monkeypatch.setattr(backends, "open_backend", failing)
    clip = write_clip(tmp_path / "long.mp4", 200)
    out = tmp_path / "out"
    errors = []

    def job():
        try:
            run_label(LabelConfig(inputs=(str(clip),), model=exported, out=out, overlay=True, batch=2),
                      say=lambda m: None)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=job, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "label hung after a backend error"
    assert len(errors) == 1 and isinstance(errors[0], BackendError)
    m = json.loads((out / "long" / "manifest.json").read_text())
    assert m["interrupted"] and not m["complete"] and m["frames_written"] == 10  # 5 batches of 2 made it
    assert m["overlay"] is None and not [p for p in (out / "long").iterdir() if p.name.startswith(".")]


def test_fps_sampling_follows_timestamps():
    from ssseg.label.decode import Sampler

    times = [0.0, 0.03, 0.1, 0.21, 0.29, 0.4, 1.5, 1.52, 1.61]  # variable frame rate with a gap
    s = Sampler(None, 10)
    assert [t for i, t in enumerate(times) if s.take(i, t)] == [0.0, 0.1, 0.21, 0.4, 1.5, 1.61]
    s = Sampler(3, None)
    assert [i for i in range(10) if s.take(i, None)] == [0, 3, 6, 9]


def test_overlay_marks_uncertain_pixels_distinctly():
    from ssseg.classes import SYNTHETIC
    from ssseg.label.overlay import HATCH, blend

    rgb = np.full((12, 12, 3), 200, np.uint8)
    labels = np.zeros((12, 12), np.uint8)
    labels[:, 6:] = 255
    out = blend(rgb, labels, SYNTHETIC.palette())
    np.testing.assert_array_equal(out[0, 0], (rgb[0, 0].astype(int) + SYNTHETIC.colors[0]) // 2)
    right = out[:, 6:].reshape(-1, 3)
    hatch = (right == HATCH).all(axis=1)
    assert 0 < hatch.mean() < 0.5 and (right[~hatch] == 100).all()  # dim grey between thin white lines


def test_cityscapes_label_ids_for_cityscapes_models(tmp_path):
    from ssseg.classes import CITYSCAPES, CITYSCAPES_LABEL_IDS
    from ssseg.label.layouts import make_layout

    layout = make_layout("cityscapes", tmp_path, CITYSCAPES, confidence=False)
    labels = np.array([[0, 13, 18, 255]], np.uint8)
    files, _ = layout.write("city", 3, "x", labels, None, np.zeros((1, 4, 3), np.uint8))
    assert files[0] == "gtFine/train/city/city_000000_000003_gtFine_labelTrainIds.png"
    ids = png(tmp_path / "gtFine/train/city/city_000000_000003_gtFine_labelIds.png")
    assert ids.tolist() == [[CITYSCAPES_LABEL_IDS[0], CITYSCAPES_LABEL_IDS[13], CITYSCAPES_LABEL_IDS[18], 0]]


@pytest.mark.parametrize("fmt", ["cityscapes", "camvid"])
def test_dataset_layouts_read_back_as_training_data(tmp_path, fmt):
    from ssseg.classes import CAMVID, CITYSCAPES
    from ssseg.data.readers import CamVid, Cityscapes
    from ssseg.label.layouts import make_layout

    classes, reader = (CITYSCAPES, Cityscapes) if fmt == "cityscapes" else (CAMVID, CamVid)
    layout = make_layout(fmt, tmp_path, classes, confidence=False)
    labels = np.array([[0, 3, 10, 255]], np.uint8)
    rgb = np.arange(12, dtype=np.uint8).reshape(1, 4, 3)
    files, _ = layout.write("drive-1", 7, "000007", labels, None, rgb)
    if fmt == "camvid":
        manifest = tmp_path / "meta" / "drive-1" / "manifest.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"frames": [{"files": files}]}))
        layout.finish([manifest, tmp_path / "meta" / "never-finished" / "manifest.json"])
    data = reader(tmp_path, "train")
    assert len(data) == 1
    np.testing.assert_array_equal(data.load_label(0), labels)  # gated pixels come back as ignore (255)
    np.testing.assert_array_equal(np.asarray(Image.open(data.samples[0].image)), rgb)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from ssseg.io import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".a_1.png.tmp{dead.pid}").write_bytes(b"half")
    (tmp_path / f".b_1.png.tmp{dead.pid}").write_bytes(b"half")
    (tmp_path / f".a_2.png.tmp{os.getppid()}").write_bytes(b"in flight")  # a live process's
    (tmp_path / "a_0.png").write_bytes(b"done")
    assert remove_stale_temporaries(tmp_path, "a_") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a_0.png", f".b_1.png.tmp{dead.pid}", f".a_2.png.tmp{os.getppid()}"])


def test_label_runs_with_torch_blocked(exported, clip, tmp_path):
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
sys.argv = ["ssseg", "label", {str(clip)!r}, "--model", {str(exported)!r}, "--out", {str(tmp_path / "out")!r},
            "--overlay", "--format", "cityscapes"]
from ssseg.cli import main
main()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "drive: 12/12 frames written" in r.stdout


def test_a_file_ffmpeg_reads_without_a_video_stream_is_a_recorded_failure(tmp_path):
    """Random bytes sometimes look like an audio-only file to FFmpeg: no frame rate, then one DecodeError."""
    import av

    from ssseg.label.decode import DecodeError, frame_rate, video_frames

    audio = tmp_path / "sound.wav"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
    with av.open(str(audio)) as container:
        assert frame_rate(container) is None
        with pytest.raises(DecodeError, match="no video stream"):
            next(video_frames(container))
