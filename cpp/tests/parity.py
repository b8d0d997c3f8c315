"""ctest: `ssseg-cpp label` against `ssseg label` on the same clip and model (CPU backends: OpenCV DNN vs ONNX
Runtime). Trains and exports a tiny model on synthetic data, writes a short H.264 clip at a size other than
the model's (so both resize frames in and masks out), labels it with both, and checks:
labels identical on >= 99.9 % of pixels, never different where both are confident by a wide margin
(confidence >= threshold + 0.1 in both), confidence within 1/255 on >= 99.9 % of pixels, and the same frames,
names and manifest keys; with --threshold, with per-class thresholds in model.json, and with the entropy gate
(--gate entropy: no confidence net). Prints the measured agreement. Then kills an ssseg-cpp job mid-run,
resumes it, and requires exactly the files of an uninterrupted run (manifests without their per-run records).
A clip with a damaged spot mid-file: both skip the same frames, record the same ranges and exit with 3.
Identity and orientation (issue 30): a folder whose names clash once cleaned, a phone video with a display
matrix, an EXIF-6 JPEG, a cut-short MKV, a TS clip whose demuxer drops packets silently, a folder of dated
dash-cam subfolders with --recursive: the same keys, frame names and masks, the same exits; a resume that
adds a same-stem input keeps the old key in both; a mask cut short is redone by both. The
job lock: a live job's lock (Python's format) refuses ssseg-cpp; a dead process's is taken over. A folder
of frames in every pixel format Pillow opens (16-bit grey and RGB, palette, CMYK, alpha): the same labels.
Filesystem faults (a file as --out; as root, read-only and full tmpfs disks): one line with the fix, and a
full-disk job completed by --resume. Ctrl-C: manifest and summary written, one line with the command that
continues, exit status 130; that command completes the job.

    python cpp/tests/parity.py --cpp build/cpp/ssseg-cpp [--backend opencv|ort] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MARGIN = 0.1
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from label_files import (  # noqa: E402  (shared with tests/test_label.py and tests/test_label_identity.py)
    cut_short_mkv,
    damaged_clip,
    exif_jpeg,
    gop_damaged_clip,
    job_files,
    kill_after_files,
    mode_images,
    rotated_clip,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpp", required=True, help="the ssseg-cpp executable")
    p.add_argument("--backend", default="opencv", help="the ssseg-cpp backend to compare (opencv, ort)")
    p.add_argument("--keep", type=Path, help="work here and keep the files (default: a temporary folder)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        problems = check(Path(args.cpp).resolve(), args.backend, work)
        problems += check(Path(args.cpp).resolve(), args.backend, work, variant="per-class")
        problems += check(Path(args.cpp).resolve(), args.backend, work, variant="entropy")
        problems += check_resume(Path(args.cpp).resolve(), args.backend, work)
        problems += check_bad_inputs(Path(args.cpp).resolve(), work)
        problems += check_damaged(Path(args.cpp).resolve(), args.backend, work)
        problems += check_lock(Path(args.cpp).resolve(), work)
        problems += check_modes(Path(args.cpp).resolve(), args.backend, work)
        problems += check_filesystem(Path(args.cpp).resolve(), work)
        problems += check_interrupt(Path(args.cpp).resolve(), args.backend, work)
        problems += check_identity(Path(args.cpp).resolve(), args.backend, work)
    for line in problems:
        print("FAIL:", line)
    return 1 if problems else 0


def check(cpp: Path, backend: str, work: Path, variant: str = "threshold") -> list[str]:
    """``variant`` per-class: model.json's per-class thresholds gate instead of --threshold (one class never
    kept); entropy: the labeler exported with --gate entropy (the confidence from the segmenter's softmax)."""
    from ssseg.config import ExportConfig
    from ssseg.data.synthetic import write_synthetic_clip
    from ssseg.export import run_export
    from ssseg.runtime.backends import OrtBackend
    from ssseg.train.config import TrainConfig
    from ssseg.train.engine import train

    work.mkdir(parents=True, exist_ok=True)
    run = work / "run"
    if not (run / "summary.json").exists():
        train(TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="aux", labeled_fraction=0.5,
                          out=run, epochs=2, aux_epochs=1, batch_size=4, lr=0.05, workers=0, device="cpu",
                          t_aux=0.7, resume=(run / "config.json").exists()), log=lambda *_: None)
    model = work / "model"
    if not (model / "model.json").exists():
        run_export(ExportConfig(run=run, out=model, gate="net", verify=False), say=lambda *_: None)
    clip = work / "clip.mp4"
    if not clip.exists():
        write_synthetic_clip(clip, 24, (48, 80), seed=3)

    import av

    if variant == "entropy":
        model = work / "model_entropy"
        if not (model / "model.json").exists():
            run_export(ExportConfig(run=run, out=model, gate="entropy", threshold=0.5, verify=False),
                       say=lambda *_: None)
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(4), c.decode(video=0))]
    reference = OrtBackend(model)
    conf = np.concatenate([reference.infer([f])[1] for f in frames])
    threshold = round(float(np.median(conf)), 4)  # the tiny model is unsure everywhere: split its pixels

    common = ["--model", str(model), "--confidence", "--threshold", str(threshold), "--every", "2"]
    outs = {"python": work / "out_python", "cpp": work / "out_cpp"}
    if variant == "entropy":
        outs = {"python": work / "out_python_entropy", "cpp": work / "out_cpp_entropy"}
    if variant == "per-class":
        model_pc = work / "model_per_class"
        subprocess.run(["rm", "-rf", str(model_pc)], check=True)
        subprocess.run(["cp", "-r", str(model), str(model_pc)], check=True)
        spec = json.loads((model / "model.json").read_text())
        n = len(spec["classes"]["names"])
        table = [None if c == 1 else round(threshold + 0.05 * (c % 3 - 1), 4) for c in range(n)]
        spec["gate"]["thresholds"] = table
        (model_pc / "model.json").write_text(json.dumps(spec))
        common = ["--model", str(model_pc), "--confidence", "--every", "2"]
        outs = {"python": work / "out_python_per_class", "cpp": work / "out_cpp_per_class"}
        threshold = max(t for t in table if t is not None)  # the "confident by a wide margin" check below
    for out in outs.values():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    subprocess.run([sys.executable, "-m", "ssseg", "label", str(clip), *common, "--backend", "ort",
                    "--out", str(outs["python"])], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(cpp), "label", str(clip), *common, "--backend", backend, "--out", str(outs["cpp"])],
                   check=True, stdout=subprocess.DEVNULL)

    manifests = {k: json.loads((v / "clip" / "manifest.json").read_text()) for k, v in outs.items()}
    problems = []
    py, cc = manifests["python"], manifests["cpp"]
    if sorted(py) != sorted(cc):
        problems.append(f"manifest keys differ: {sorted(set(py) ^ set(cc))}")
    for key in ("frames_decoded", "frames_sampled", "frames_written", "complete", "settings"):
        if py[key] != cc[key]:
            problems.append(f"manifest {key}: python {py[key]} != cpp {cc[key]}")
    if [f["name"] for f in py["frames"]] != [f["name"] for f in cc["frames"]]:
        problems.append("the two runtimes labeled different frames")

    t255 = threshold * 255
    same = total = conf_close = wide_diff = 0
    worst_conf = 0
    for f in py["frames"]:
        lp = np.asarray(Image.open(outs["python"] / f["files"][0]))
        lc = np.asarray(Image.open(outs["cpp"] / f["files"][0]))
        cp = np.asarray(Image.open(outs["python"] / f["files"][1])).astype(int)
        ccf = np.asarray(Image.open(outs["cpp"] / f["files"][1])).astype(int)
        same += int((lp == lc).sum())
        total += lp.size
        conf_close += int((np.abs(cp - ccf) <= 1).sum())
        worst_conf = max(worst_conf, int(np.abs(cp - ccf).max()))
        sure = (cp >= t255 + MARGIN * 255) & (ccf >= t255 + MARGIN * 255)
        wide_diff += int((sure & (lp != lc)).sum())
    agreement, conf_share = same / total, conf_close / total
    print(f"{backend}: {len(py['frames'])} frames of 48x80 through a 64x64 model, "
          f"{'per-class thresholds up to' if variant == 'per-class' else variant + ' gate at'} {threshold}: "
          f"labels identical on {100 * agreement:.4f}% of pixels, confidence within 1/255 on "
          f"{100 * conf_share:.4f}% (max diff "
          f"{worst_conf}/255), {wide_diff} differing labels where both are confident by >= {MARGIN}")
    if agreement < 0.999:
        problems.append(f"labels identical on only {100 * agreement:.3f}% of pixels (need 99.9%)")
    if conf_share < 0.999:
        problems.append(f"confidence within 1/255 on only {100 * conf_share:.3f}% of pixels (need 99.9%)")
    if wide_diff:
        problems.append(f"{wide_diff} pixels differ where both runtimes are confident by a wide margin")
    return problems


def check_resume(cpp: Path, backend: str, work: Path) -> list[str]:
    from ssseg.data.synthetic import write_synthetic_clip

    clip = work / "long.mp4"
    if not clip.exists():
        write_synthetic_clip(clip, 600, (48, 80), seed=4)
    cmd = [str(cpp), "label", str(clip), "--model", str(work / "model"), "--confidence", "--batch", "1",
           "--backend", backend]
    full, killed = work / "resume_full", work / "resume_killed"
    subprocess.run(["rm", "-rf", str(full), str(killed)], check=True)
    subprocess.run([*cmd, "--out", str(full)], check=True, stdout=subprocess.DEVNULL)
    done = kill_after_files([*cmd, "--out", str(killed)], killed / "long" / "labels", 60, timeout=60)
    if not 0 < done < 600:
        return [f"the kill landed outside the run ({done} of 600 frames written)"]
    subprocess.run([*cmd, "--out", str(killed), "--resume"], check=True, stdout=subprocess.DEVNULL)
    a, b = job_files(full), job_files(killed)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print(f"{backend}: killed after {done} of 600 frames, resumed: {len(a) - len(differing)} of {len(a)} "
          f"files identical to an uninterrupted run")
    return ([f"resumed run differs from an uninterrupted one in {len(differing)} files, e.g. {differing[:3]}"]
            if differing else [])


def check_bad_inputs(cpp: Path, work: Path) -> list[str]:
    """An empty file and a folder without images are recorded as failed sources; the good clip is still
    labeled; the exit status is 1 with one error line. A folder given with a trailing slash keeps its name."""
    bad = work / "bad"
    subprocess.run(["rm", "-rf", str(bad), str(work / "bad_out")], check=True)
    (bad / "empty_dir").mkdir(parents=True)
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "frames").mkdir()
    Image.new("RGB", (80, 48), (90, 120, 60)).save(bad / "frames" / "a.png")
    r = subprocess.run([str(cpp), "label", str(bad / "empty.mp4"), f"{bad / 'empty_dir'}/", f"{bad / 'frames'}/",
                        str(work / "clip.mp4"), "--model", str(work / "model"), "--out", str(work / "bad_out")],
                       capture_output=True, text=True)
    problems = []
    if r.returncode != 1 or "2 of 4 sources failed" not in r.stderr or r.stderr.count("\n") != 1:
        problems.append(f"bad inputs: exit {r.returncode}, stderr {r.stderr.strip()[:300]!r}")
    summary = json.loads((work / "bad_out" / "summary.json").read_text())
    failed = sorted(f["source"] for f in summary["failures"])
    if failed != ["empty", "empty-dir"]:
        problems.append(f"bad inputs: failed sources {failed}, expected ['empty', 'empty-dir']")
    if not (work / "bad_out" / "frames" / "labels" / "a.png").is_file():
        problems.append("a folder given as frames/ was not labeled under OUT/frames/")
    if len(list((work / "bad_out" / "clip" / "labels").iterdir())) != 24:
        problems.append("the good clip after the bad inputs was not labeled in full")
    print(f"bad inputs: exit {r.returncode}, failed sources {failed}, the others labeled")
    return problems


def check_lock(cpp: Path, work: Path) -> list[str]:
    import os
    import socket

    out = work / "locked_out"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir()
    lock = out / ".ssseg-label.shard-0-of-2.lock"  # a Python shard's lock: ssseg-cpp has no shards, so it conflicts
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "runtime": "ssseg", "started": "x"}))
    cmd = [str(cpp), "label", str(work / "clip.mp4"), "--model", str(work / "model"), "--out", str(out)]
    live = subprocess.run(cmd, capture_output=True, text=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "runtime": "ssseg", "started": "x"}))
    stale = subprocess.run(cmd, capture_output=True, text=True)
    print(f"job lock: live holder -> exit {live.returncode}; dead holder -> exit {stale.returncode}")
    problems = []
    if live.returncode != 1 or f"process {os.getpid()}" not in live.stderr or live.stderr.count("\n") != 1:
        problems.append(f"a live job's lock did not refuse ssseg-cpp: exit {live.returncode}, {live.stderr.strip()!r}")
    if stale.returncode != 0 or "removed a stale lock" not in stale.stdout or any(out.glob(".ssseg-label*")):
        problems.append(f"a dead job's lock was not taken over: exit {stale.returncode}, {stale.stderr.strip()!r}")
    return problems


def check_modes(cpp: Path, backend: str, work: Path) -> list[str]:
    frames = work / "modes"
    subprocess.run(["rm", "-rf", str(frames), str(work / "modes_python"), str(work / "modes_cpp")], check=True)
    names = sorted(mode_images(frames))
    subprocess.run([sys.executable, "-m", "ssseg", "label", str(frames), "--model", str(work / "model"), "--backend",
                    "ort", "--out", str(work / "modes_python")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(cpp), "label", str(frames), "--model", str(work / "model"), "--backend", backend, "--out",
                    str(work / "modes_cpp")], check=True, stdout=subprocess.DEVNULL)
    problems, shares = [], {}
    for name in names:
        stem = Path(name).stem
        a, b = (np.asarray(Image.open(work / f"modes_{k}" / "modes" / "labels" / f"{stem}.png"))
                for k in ("python", "cpp"))
        shares[stem] = float((a == b).mean())
        if shares[stem] < 0.999:
            problems.append(f"{name}: labels identical on only {100 * shares[stem]:.2f}% of pixels")
    print("pixel formats: labels identical on " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in shares.items()))
    return problems


def check_filesystem(cpp: Path, work: Path) -> list[str]:
    import os
    import shutil

    cmd = [str(cpp), "label", str(work / "clip.mp4"), "--model", str(work / "model"), "--out"]
    a_file = work / "a_file"
    a_file.write_text("mine")
    cases = {"a file as --out": (a_file, "a file is where a folder is needed")}
    mounts = []
    if os.geteuid() == 0:
        for name, opts in (("read-only", "ro,size=1m"), ("full", "size=1m")):
            where = work / f"disk_{name}"
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
            where.mkdir(exist_ok=True)
            if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)]).returncode == 0:
                mounts.append(where)
                if name == "full":
                    (where / "filler").write_bytes(bytes(shutil.disk_usage(where).free - 32 * 1024))
                cases[name] = (where / "out", "read-only" if name == "read-only" else "no space left on device")
    else:
        print("filesystem faults: read-only and full disks skipped (mounting a tmpfs needs root)")
    problems = []
    try:
        for name, (out, want) in cases.items():
            r = subprocess.run([*cmd, str(out)], capture_output=True, text=True)
            if r.returncode != 1 or want not in r.stderr or r.stderr.count("\n") != 1:
                problems.append(f"{name}: exit {r.returncode}, stderr {r.stderr.strip()[:300]!r}")
            if name == "full":
                (out.parent / "filler").unlink()
                r = subprocess.run([*cmd, str(out), "--resume"], capture_output=True, text=True)
                if r.returncode != 0 or len(list((out / "clip" / "labels").iterdir())) != 24:
                    problems.append(f"full disk: --resume did not complete the job (exit {r.returncode})")
        print(f"filesystem faults: {', '.join(cases)}: one line each" + ("" if problems else ", all as expected"))
    finally:
        for where in mounts:
            subprocess.run(["umount", "-l", str(where)], check=False)
    return problems


def check_interrupt(cpp: Path, backend: str, work: Path) -> list[str]:
    import signal
    import time

    out = work / "interrupted"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [str(cpp), "label", str(work / "long.mp4"), "--model", str(work / "model"), "--batch", "1", "--backend",
           backend, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    labels = out / "long" / "labels"
    while proc.poll() is None and (not labels.is_dir() or len(list(labels.iterdir())) < 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    manifest = out / "long" / "manifest.json"
    m = json.loads(manifest.read_text()) if manifest.exists() else {}
    print(f"Ctrl-C: exit {proc.returncode}, manifest interrupted={m.get('interrupted')} with "
          f"{m.get('frames_written')} frames, {err.strip()[:160]!r}")
    problems = []
    if proc.returncode != 130 or "continue with: ssseg-cpp label" not in err or err.count("\n") != 1:
        problems.append(f"Ctrl-C: exit {proc.returncode}, stderr {err.strip()[:300]!r}")
    if not m.get("interrupted") or not (out / "summary.json").exists():
        problems.append("Ctrl-C: the manifest or summary was not written")
    if not problems:
        again = subprocess.run(err.strip().split("continue with: ")[1].replace("ssseg-cpp", str(cpp), 1).split(),
                               capture_output=True, text=True)
        done = json.loads(manifest.read_text())
        if again.returncode != 0 or not done["complete"] or done["frames_written"] != 600:
            problems.append(f"Ctrl-C: the printed command did not finish the job (exit {again.returncode})")
    return problems


def check_damaged(cpp: Path, backend: str, work: Path) -> list[str]:
    """Both runtimes label the rest of a clip with a damaged spot, name the frames alike (later frames keep
    their numbers), record the same skipped ranges and exit with 3. Masks of the frames decoded from damaged
    references may differ (each decoder conceals damage its own way), so they are not compared."""
    clip = damaged_clip(work / "damaged.mp4")
    outs = {"python": work / "damaged_python", "cpp": work / "damaged_cpp"}
    subprocess.run(["rm", "-rf", *map(str, outs.values())], check=True)
    codes = {
        "python": subprocess.run([sys.executable, "-m", "ssseg", "label", str(clip), "--model", str(work / "model"),
                                  "--backend", "ort", "--out", str(outs["python"])], capture_output=True).returncode,
        "cpp": subprocess.run([str(cpp), "label", str(clip), "--model", str(work / "model"), "--backend", backend,
                               "--out", str(outs["cpp"])], capture_output=True).returncode,
    }
    m = {k: json.loads((v / "damaged" / "manifest.json").read_text()) for k, v in outs.items()}
    skipped = {k: [(d["first"], d["last"]) for d in v["damage"] if d["skipped"]] for k, v in m.items()}
    print(f"damaged clip: exit {codes}, skipped {skipped}, {len(m['cpp']['frames'])} frames labeled by each")
    problems = []
    if codes != {"python": 3, "cpp": 3}:
        problems.append(f"damaged clip: exit statuses {codes}, expected 3 from both")
    if skipped["python"] != skipped["cpp"] or not skipped["cpp"]:
        problems.append(f"damaged clip: skipped ranges differ or are missing: {skipped}")
    for key in ("name", "time"):
        if [f[key] for f in m["python"]["frames"]] != [f[key] for f in m["cpp"]["frames"]]:
            problems.append(f"damaged clip: frame {key}s differ between the runtimes")
    # `ssseg report` reads either runtime's job alike: the same damage, the command and model each recorded
    reports = {}
    for k, v in outs.items():
        subprocess.run([sys.executable, "-m", "ssseg", "report", str(v)], capture_output=True, check=True)
        reports[k] = json.loads((v / "report.json").read_text())
    for k, r in reports.items():
        source = r["sources"][0]
        if source["damage"] != m[k]["damage"] or source["frames"] != len(m[k]["frames"]):
            problems.append(f"report of the {k} job: damage or frame count differs from its manifest")
        if not (r["model"]["found"] and (r["runs"][0]["command"] or "").startswith("ssseg")):
            problems.append(f"report of the {k} job: model or command not recorded ({r['runs'][0]})")
        if not r["next_to_label"] or any("frame not found" in (p["note"] or "") for p in r["next_to_label"]):
            problems.append(f"report of the {k} job: pictures missing, or without their frames")
    return problems


def check_identity(cpp: Path, backend: str, work: Path) -> list[str]:
    from ssseg.data.synthetic import render_scene, write_synthetic_clip

    root = work / "identity"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    clash = root / "in" / "clash"
    clash.mkdir(parents=True)
    for i, name in enumerate(["a b.png", "a_b.jpg", "a_b.png", "\u65e5\u672c.png", "plain.png"]):
        Image.fromarray(render_scene(1, "val", i, (40 + 8 * i, 64))[0]).save(clash / name, quality=95)
    photos = root / "in" / "photos"
    photos.mkdir()
    exif_jpeg(photos / "upright.jpg")
    phone = rotated_clip(root / "in" / "phone.mp4")
    gop = gop_damaged_clip(root / "in" / "gop.ts")
    cams = root / "in" / "dashcam"
    for day in ("2026-01-01", "2026-01-02"):
        (cams / day).mkdir(parents=True)
        write_synthetic_clip(cams / day / "0001.MP4", 3, (48, 80))
    cut = cut_short_mkv(root / "in" / "cut.mkv")
    inputs = [clash, photos, phone, gop, cams]
    model = str(work / "model")

    def run(runtime: str, out: Path, *args) -> subprocess.CompletedProcess:
        cmd = ([sys.executable, "-m", "ssseg", "label"] if runtime == "python" else [str(cpp), "label"])
        return subprocess.run([*cmd, *map(str, args), "--model", model, "--threshold", "0", "--backend",
                               "ort" if runtime == "python" else backend, "--out", str(out)],
                              capture_output=True, text=True)

    problems = []
    outs = {k: root / f"out_{k}" for k in ("python", "cpp")}
    codes = {k: run(k, v, *inputs, "--recursive").returncode for k, v in outs.items()}
    if codes != {"python": 3, "cpp": 3}:  # the TS clip's lost packets: damaged, labeled
        problems.append(f"identity: exit statuses {codes}, expected 3 from both")
    keys = {k: sorted(p.name for p in v.iterdir() if p.is_dir()) for k, v in outs.items()}
    if keys["python"] != keys["cpp"]:
        problems.append(f"identity: source keys differ: {keys}")
    same = total = 0
    for key in keys["python"]:
        m = {k: json.loads((v / key / "manifest.json").read_text()) for k, v in outs.items()}
        frames = {k: {f["name"]: (f.get("source"), f.get("turned")) for f in v["frames"]} for k, v in m.items()}
        lost = {k: {n for d in v["damage"] if d["skipped"] for n in range(d["first"], d["last"] + 1)}
                for k, v in m.items()}
        # PyAV hands out a frame the damage delayed, which OpenCV's reader drops: C++ may skip frames of
        # Python's damaged stretch, never any other, and names every frame it keeps alike
        only_python = {int(n) for n in set(frames["python"]) - set(frames["cpp"])}
        if set(frames["cpp"]) - set(frames["python"]) or not only_python <= lost["cpp"] or \
                any(frames["python"][n] != frames["cpp"][n] for n in frames["cpp"]):
            problems.append(f"identity: {key}: frame names, sources or turns differ: {frames}")
            continue
        if not lost["python"] <= lost["cpp"]:
            problems.append(f"identity: {key}: skipped ranges differ: {lost}")
        # frames near damage are rebuilt from damaged references, each decoder its own way: not compared
        near = {n for d in m["python"]["damage"] for n in range(d["first"] - 8, d["last"] + 9)}
        for f in (f for f in m["python"]["frames"] if f["name"] in frames["cpp"] and f["index"] not in near):
            a, b = (np.asarray(Image.open(v / f["files"][0])) for v in outs.values())
            if a.shape != b.shape:
                problems.append(f"identity: {key} frame {f['name']}: mask shapes {a.shape} vs {b.shape}")
                continue
            same += int((a == b).sum())
            total += a.size
    print(f"identity: keys {keys['cpp']}, masks of the frames both labeled equal on {100 * same / max(total, 1):.2f} % "
          f"of pixels")
    if total and same / total < 0.99:
        problems.append(f"identity: masks agree on only {100 * same / total:.2f} % of pixels")
    # a resume that adds a same-stem input: the old key stays, the new one is hashed, in both
    extra = write_synthetic_clip(root / "in" / "phone.mkv", 3, (48, 80))
    for k, v in outs.items():
        r = run(k, v, *inputs, extra, "--recursive", "--resume")
        added = sorted(p.name for p in v.iterdir() if p.is_dir() and p.name.startswith("phone-"))
        if r.returncode not in (0, 3) or len(added) != 1 or not (v / "phone" / "manifest.json").is_file():
            problems.append(f"identity: {k} resume adding phone.mkv: exit {r.returncode}, new keys {added}")
        mask = v / "phone" / "labels" / "000002.png"
        good = mask.read_bytes()
        mask.write_bytes(good[:100])
        r = run(k, v, *inputs, extra, "--recursive", "--resume")
        if mask.read_bytes() != good:
            problems.append(f"identity: {k} resume kept a mask cut short (exit {r.returncode})")
        r = run(k, root / f"cut_{k}", cut)
        if r.returncode != 1:
            problems.append(f"identity: {k} labeled the cut-short MKV with exit {r.returncode}, expected 1")
    return problems


if __name__ == "__main__":
    sys.exit(main())
