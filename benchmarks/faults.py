"""The fault campaign: bad inputs and faults a new user meets, against `ssseg` and `ssseg-cpp` alike, in one
table (case, runtime, exit status, one error line or not, anything lost). Trains and exports a tiny model on
synthetic data first (about a minute); needs nothing from outside. Disk faults mount small tmpfs disks and
need root (skipped otherwise, and said so); without --cpp (or a built ssseg-cpp) only Python runs.

    python benchmarks/faults.py [--cpp build/cpp/ssseg-cpp] [--work DIR] [--out benchmarks/results/faults]

A case passes when the exit status is the expected one, a failure says one line (no traceback), and nothing
that was written is lost (the check named in its "lost" column).

Over 300 lines on purpose: it is a table of cases, one small function per case and runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the damaged clip and frames the tests use
sys.path.insert(0, str(Path(__file__).parent))
import label_files as fixtures  # noqa: E402
from common import machine, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    case: str
    runtime: str
    exit: int | None
    expected: int
    one_line: bool | None  # None: it succeeded, nothing to say
    lost: str  # "nothing", or what was lost
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.exit == self.expected and self.one_line is not False and self.lost == "nothing"


class Campaign:
    def __init__(self, work: Path, cpp: Path | None):
        self.work, self.cpp = work, cpp
        self.results: list[Result] = []
        self.root = os.geteuid() == 0
        self.mounts: list[Path] = []

    # --- running ---
    def run(self, runtime: str, args: list[str], timeout: float = 300, sigint_when: Callable[[], bool] | None = None,
            ) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "ssseg", *args] if runtime == "python" else [str(self.cpp), *args]
        if sigint_when is None:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + timeout
        while proc.poll() is None and not sigint_when() and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def record(self, case: str, runtime: str, r: subprocess.CompletedProcess, expected: int, lost: str = "nothing",
               note: str = "") -> None:
        lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
        ended = r.returncode in (0, 3)  # 3: labeled, damaged stretches skipped (said on stdout)
        one = None if ended else (len(lines) == 1 and "Traceback" not in r.stderr)
        self.results.append(Result(case, runtime, r.returncode, expected, one, lost, note or (lines[-1][:140] if lines
                                                                                                else "")))
        print(f"{'ok  ' if self.results[-1].ok else 'FAIL'} {case} [{runtime}]: exit {r.returncode} "
              f"(expected {expected}), {self.results[-1].note[:110]}", flush=True)

    def runtimes(self) -> list[str]:
        return ["python"] + (["cpp"] if self.cpp else [])

    def tmpfs(self, name: str, opts: str) -> Path | None:
        if not self.root:
            return None
        where = self.work / name
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True).returncode:
            return None
        self.mounts.append(where)
        return where

    def unmount(self) -> None:
        for where in self.mounts:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)

    def fresh(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    # --- setup ---
    def prepare(self) -> None:
        from ssseg.api import train
        from ssseg.config import ExportConfig
        from ssseg.data.synthetic import write_synthetic_clip
        from ssseg.export import run_export
        from ssseg.train.config import TrainConfig

        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.work / "run"
        if not (self.run_dir / "done.json").exists():
            train(TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="supervised", out=self.run_dir,
                              epochs=2, batch_size=4, workers=0, device="cpu", resume=self.run_dir.exists()),
                  say=lambda *_: None)
        self.model = self.work / "model"
        if not (self.model / "model.json").exists():
            run_export(ExportConfig(run=self.run_dir, out=self.model, verify=False), say=lambda *_: None)
        self.clip = self.work / "clip.mp4"
        if not self.clip.exists():
            write_synthetic_clip(self.clip, 24, (48, 80))
        self.long = self.work / "long.mp4"
        if not self.long.exists():
            write_synthetic_clip(self.long, 300, (48, 80), seed=4)
        self.damaged = fixtures.damaged_clip(self.work / "damaged.mp4")

    def label(self, runtime: str, inputs: list, out: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
        return self.run(runtime, ["label", *map(str, inputs), "--model", str(self.model), "--out", str(out), *extra],
                        **kw)

    # --- the cases ---
    def videos(self) -> None:
        bad = self.work / "bad_videos"
        bad.mkdir(exist_ok=True)
        (bad / "empty.mp4").write_bytes(b"")
        import numpy as np

        (bad / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
        data = self.clip.read_bytes()
        (bad / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # index at the start, the end cut off
        for runtime in self.runtimes():
            out = self.fresh(f"damaged_{runtime}")
            r = self.label(runtime, [self.damaged], out)
            m = json.loads((out / "damaged" / "manifest.json").read_text())
            skipped = [(d["first"], d["last"]) for d in m["damage"] if d["skipped"]]
            lost = "nothing" if m["frames_written"] + m["frames_skipped"] == 40 else \
                f"{40 - m['frames_written'] - m['frames_skipped']} decodable frames not labeled"
            self.record("damaged spot mid-video", runtime, r, 3, lost, f"skipped {skipped}, {m['frames_written']} "
                                                                       f"frames labeled")
            for name, what in (("empty.mp4", "empty file"), ("garbage.mp4", "random bytes as .mp4"),
                               ("cut.mp4", "video cut short")):
                out = self.fresh(f"bad_{name}_{runtime}")
                r = self.label(runtime, [bad / name, self.clip], out)
                lost = "nothing" if len(list((out / "clip" / "labels").glob("*.png"))) == 24 else \
                    "the good clip after it was not labeled"
                self.record(f"{what}, then a good clip", runtime, r, 1, lost)

    def frames(self) -> None:
        folder = self.work / "modes"
        shutil.rmtree(folder, ignore_errors=True)
        names = sorted(fixtures.mode_images(folder))
        outs = {}
        for runtime in self.runtimes():
            outs[runtime] = self.fresh(f"modes_{runtime}")
            r = self.label(runtime, [folder], outs[runtime])
            self.record("16-bit/palette/CMYK/alpha frames", runtime, r, 0,
                        "nothing" if len(list((outs[runtime] / "modes" / "labels").glob("*.png"))) == len(names)
                        else "frames missing")
        if len(outs) == 2:
            import numpy as np
            from PIL import Image

            same = [float((np.asarray(Image.open(outs["python"] / "modes" / "labels" / f"{Path(n).stem}.png")) ==
                           np.asarray(Image.open(outs["cpp"] / "modes" / "labels" / f"{Path(n).stem}.png"))).mean())
                    for n in names]
            worst = min(same)
            self.results.append(Result("the same frames: Python vs C++ labels", "both", 0, 0, None,
                                       "nothing" if worst >= 0.999 else f"labels differ on {100 * (1 - worst):.2f}%",
                                       f"identical on >= {100 * worst:.2f}% of pixels in {len(names)} formats"))

    def concurrency(self) -> None:
        for runtime in self.runtimes():
            out = self.fresh(f"locked_{runtime}")
            cmd = [sys.executable, "-m", "ssseg", "label"] if runtime == "python" else [str(self.cpp), "label"]
            first = subprocess.Popen([*cmd, str(self.long), "--model", str(self.model), "--out", str(out), "--batch",
                                      "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while first.poll() is None and not (out / "long" / "labels").is_dir():
                time.sleep(0.02)
            r = self.label(runtime, [self.long], out, "--resume")
            first.communicate(timeout=600)
            m = json.loads((out / "long" / "manifest.json").read_text())
            lost = "nothing" if first.returncode == 0 and m["complete"] and len(m["frames"]) == 300 else \
                f"first job: exit {first.returncode}, {len(m['frames'])} frames in its manifest"
            self.record("second job on the same --out", runtime, r, 1, lost)
            (out / ".ssseg-label.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": 999999,
                                                                "runtime": "ssseg", "started": "a killed job"}))
            r = self.label(runtime, [self.long], out, "--resume")
            self.record("stale lock of a killed job", runtime, r, 0,
                        "nothing" if not (out / ".ssseg-label.lock").exists() else "lock left behind")
        out = self.fresh("shards")
        procs = [subprocess.Popen([sys.executable, "-m", "ssseg", "label", str(self.clip), str(self.long), "--model",
                                   str(self.model), "--out", str(out), "--shard", f"{i}/2"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(2)]
        codes = [p.wait(timeout=600) for p in procs]
        ok = all((out / k / "manifest.json").exists() for k in ("clip", "long"))
        self.results.append(Result("two shards side by side", "python", max(codes), 0, None,
                                   "nothing" if ok else "a shard's manifest is missing", f"exit {codes}"))

    def interrupts(self) -> None:
        for runtime in self.runtimes():
            out = self.fresh(f"killed_{runtime}")
            full = self.fresh(f"unkilled_{runtime}")
            base = ["label", str(self.long), "--model", str(self.model), "--batch", "1"]
            self.run(runtime, [*base, "--out", str(full)])
            cmd = [sys.executable, "-m", "ssseg", *base] if runtime == "python" else [str(self.cpp), *base]
            done = fixtures.kill_after_files([*cmd, "--out", str(out)], out / "long" / "labels", 40, timeout=120)
            r = self.run(runtime, [*base, "--out", str(out), "--resume"])
            a, b = fixtures.job_files(full), fixtures.job_files(out)
            differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            self.record("kill -9 mid-job, then --resume", runtime, r, 0,
                        "nothing" if not differ else f"{len(differ)} files differ from an uninterrupted job",
                        f"killed after {done} frames; resumed files identical: {not differ}")
            out = self.fresh(f"ctrl_c_{runtime}")
            labels = out / "long" / "labels"
            r = self.run(runtime, [*base, "--out", str(out)],
                         sigint_when=lambda: labels.is_dir() and len(list(labels.iterdir())) >= 20)
            m = out / "long" / "manifest.json"
            lost = "nothing" if m.exists() and (out / "summary.json").exists() else "manifest or summary not written"
            self.record("Ctrl-C mid-job", runtime, r, 130, lost)
        run = self.fresh("train_ctrl_c")
        r = self.run("python", ["train", "--method", "supervised", "--data", "synthetic:size=32x32,train=4,val=2",
                                "--epochs", "40", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--out",
                                str(run)], sigint_when=lambda: (run / "last.pt").exists())
        self.record("Ctrl-C during training", "python", r, 130,
                    "nothing" if (run / "last.pt").exists() and "--resume" in r.stderr else "no way forward")

    def options(self) -> None:
        cases = [("--threshold nan", ["--threshold", "nan"]), ("--batch 0", ["--batch", "0"]),
                 ("--every 0", ["--every", "0"]), ("--threshold 1.5", ["--threshold", "1.5"])]
        for runtime in self.runtimes():
            for what, extra in cases:
                out = self.fresh(f"opt_{runtime}")
                r = self.label(runtime, [self.clip], out, *extra)
                self.record(f"label {what}", runtime, r, 1, "nothing" if not out.exists() else "--out was written")
            edited = self.fresh(f"edited_model_{runtime}")
            shutil.copytree(self.model, edited)
            spec = json.loads((edited / "model.json").read_text())
            spec["format_version"] = 99
            (edited / "model.json").write_text(json.dumps(spec))
            r = self.run(runtime, ["label", str(self.clip), "--model", str(edited), "--out",
                                   str(self.fresh("edited_out"))])
            self.record("model.json from a newer version", runtime, r, 1)
            r = self.label(runtime, [self.work / "nope.mp4"], self.fresh("nope_out"))
            self.record("input that does not exist", runtime, r, 1)
        evil = self.work / "evil"
        shutil.rmtree(evil, ignore_errors=True)
        evil.mkdir()
        torch_ckpt = evil / "pickled.pt"
        import torch

        torch.save({"state_dict": {}, "payload": object.__new__(Result)}, torch_ckpt)
        r = self.run("python", ["eval", str(torch_ckpt), "--device", "cpu"])
        self.record("pickled (unsafe) checkpoint", "python", r, 1)

    def disks(self) -> None:
        if not self.root:
            self.results.append(Result("read-only/full disks", "both", None, 0, None, "nothing",
                                       "skipped: mounting a tmpfs needs root"))
            return
        a_file = self.work / "a_file"
        a_file.write_text("mine")
        ro = self.tmpfs("disk_ro", "ro,size=1m")
        train = ["train", "--method", "supervised", "--data", "synthetic:size=32x32,train=4,val=2", "--epochs", "3",
                 "--batch-size", "2", "--workers", "0", "--device", "cpu"]
        for runtime in self.runtimes():
            for what, out in (("read-only --out", ro / "x"), ("--out is a file", a_file)):
                r = self.label(runtime, [self.clip], out)
                self.record(f"label, {what}", runtime, r, 1, "nothing" if a_file.read_text() == "mine" else
                            "the file was overwritten")
            full = self.tmpfs(f"disk_full_{runtime}", "size=1m")
            (full / "filler").write_bytes(bytes(shutil.disk_usage(full).free - 48 * 1024))
            r = self.label(runtime, [self.clip], full / "out")
            (full / "filler").unlink()
            again = self.label(runtime, [self.clip], full / "out", "--resume")
            n = len(list((full / "out" / "clip" / "labels").glob("*.png")))
            self.record("label, disk full mid-job (then --resume)", runtime, r, 1,
                        "nothing" if again.returncode == 0 and n == 24 else f"--resume: exit {again.returncode}, {n}")
        for what, out in (("read-only --out", ro / "x"), ("--out is a file", a_file)):
            self.record(f"train, {what}", "python", self.run("python", [*train, "--out", str(out)]), 1)
            self.record(f"export, {what}", "python", self.run("python", ["export", str(self.run_dir), "--out",
                                                                       str(out)]), 1)
        disk = self.tmpfs("disk_train", "size=36m")  # epoch 1 fits, epoch 2's last.pt does not
        r = self.run("python", [*train, "--out", str(disk / "run")])
        moved = self.fresh("train_moved")
        shutil.copytree(disk / "run", moved)
        again = self.run("python", ["train", "--out", str(moved), "--resume"])
        epochs = [json.loads(line)["epoch"] for line in (moved / "metrics.jsonl").read_text().splitlines()]
        self.record("train, disk full mid-run (then --resume)", "python", r, 1,
                    "nothing" if again.returncode == 0 and epochs == [1, 2, 3] else f"metrics epochs {epochs}")
        small = self.tmpfs("disk_export", "size=1m")
        self.record("export, disk full", "python",
                    self.run("python", ["export", str(self.run_dir), "--out", str(small / "m")]), 1)

    def footage_habits(self) -> None:
        """Footage and photo folders as they come off phones and dash cameras (issue 30): names that clash
        once cleaned, rotation and EXIF, files cut short, masks cut short, dated folders of same-named clips,
        4K, thousands of images. Each labeled with --threshold 0, so every pixel keeps its class."""
        import numpy as np
        from PIL import Image

        from ssseg.data.synthetic import render_scene, write_synthetic_clip

        src = self.fresh("habits")
        src.mkdir(parents=True)

        def folder(name: str) -> Path:
            (src / name).mkdir(parents=True, exist_ok=True)
            return src / name

        def masks(out: Path, key: str) -> dict[str, tuple]:
            m = json.loads((out / key / "manifest.json").read_text())
            return {Path(f.get("source") or f["name"]).name: np.asarray(Image.open(out / f["files"][0])).shape
                    for f in m["frames"] if f["files"]}

        sizes = {"a b.png": (40, 56), "a_b.jpg": (48, 64), "a_b.png": (56, 72), "日本.png": (64, 80),
                 "中文.png": (72, 88)}
        clash = folder("clash")
        for i, (name, hw) in enumerate(sizes.items()):
            Image.fromarray(render_scene(1, "val", i, hw)[0]).save(clash / name, quality=95)
        stems = folder("stems")
        write_synthetic_clip(stems / "h264.mp4", 4, (48, 80))
        phone = fixtures.rotated_clip(src / "phone.mp4")
        exif = fixtures.exif_jpeg(folder("photos") / "upright.jpg")
        cut = fixtures.cut_short_mkv(src / "cut.mkv")
        gop = fixtures.gop_damaged_clip(src / "gop.ts")
        for day in ("2026-01-01", "2026-01-02"):
            write_synthetic_clip(folder(f"dashcam/{day}") / "0001.MP4", 3, (48, 80))
        mp4s = folder("mp4s")
        write_synthetic_clip(mp4s / "a.MP4", 3, (48, 80))
        uhd = folder("uhd")
        Image.fromarray(np.tile(render_scene(2, "val", 0, (540, 960))[0], (4, 4, 1))).save(uhd / "frame.png")
        write_synthetic_clip(src / "uhd_clip.mp4", 2, (2160, 3840))
        many = folder("many")
        tile = render_scene(3, "val", 0, (24, 32))[0]
        for i in range(2000):
            Image.fromarray(np.roll(tile, i, axis=1)).save(many / f"IMG_{i:05d}.JPG", quality=80)
        odd = folder("odd")
        Image.fromarray(tile).save(odd / "good.png")
        (odd / "empty.jpg").write_bytes(b"")
        write_synthetic_clip(src / "Ünïcode clip (1).mp4", 3, (48, 80))
        os.symlink(phone, src / "link.mp4")
        lapse = fixtures.timelapse_clip(src / "lapse.mkv")

        for runtime in self.runtimes():
            def go(name: str, inputs: list, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
                out = self.fresh(f"habit_{name}_{runtime}")
                return self.label(runtime, inputs, out, "--threshold", "0", *extra), out

            r, out = go("clash", [clash])
            got = masks(out, "clash")
            self.record("names that clash once cleaned (a b.png, a_b.jpg, a_b.png, 日本.png, 中文.png)", runtime, r, 0,
                        "nothing" if got == sizes else f"masks under other names: {got}")
            r, out = go("stems", [stems / "h264.mp4"])
            before = (out / "h264" / "manifest.json").read_bytes()
            write_synthetic_clip(stems / "h264.mkv", 3, (48, 80)) if not (stems / "h264.mkv").exists() else None
            r = self.label(runtime, [stems / "h264.mp4", stems / "h264.mkv"], out, "--threshold", "0", "--resume")
            added = [p.name for p in out.iterdir() if p.is_dir() and p.name.startswith("h264-")]
            self.record("--resume adding h264.mkv beside a labeled h264.mp4", runtime, r, 0,
                        "nothing" if (out / "h264" / "manifest.json").read_bytes() == before and len(added) == 1
                        else f"old manifest changed or new source missing ({added})", f"added as {added}")
            r, out = go("phone", [phone])
            shape = np.asarray(Image.open(out / "phone" / "labels" / "000000.png")).shape
            self.record("phone video, display matrix -90 (stored 48x80)", runtime, r, 0,
                        "nothing" if shape == (80, 48) else f"mask {shape}, not as shown", f"mask {shape}")
            r, out = go("exif", [exif.parent])
            shape = masks(out, "photos").get("upright.jpg")
            self.record("JPEG with EXIF orientation 6 (stored 48x80)", runtime, r, 0,
                        "nothing" if shape == (80, 48) else f"mask {shape}, not as shown", f"mask {shape}")
            r, out = go("cut", [cut, self.clip])
            again = self.label(runtime, [cut, self.clip], out, "--threshold", "0", "--resume")
            self.record("MKV cut short (declares 4.0 s, frames end at 2.0 s), then --resume", runtime, r, 1,
                        "nothing" if again.returncode == 1 and len(list((out / "clip" / "labels").glob("*.png"))) == 24
                        else f"--resume exit {again.returncode}")
            r, out = go("mask", [self.clip])
            mask = out / "clip" / "labels" / "000005.png"
            good = mask.read_bytes()
            mask.write_bytes(good[:100])
            again = self.label(runtime, [self.clip], out, "--threshold", "0", "--resume")
            self.record("a mask cut to 100 bytes (header intact), then --resume", runtime, again, 0,
                        "nothing" if mask.read_bytes() == good else "the cut mask was kept")
            r, out = go("gop", [gop])
            m = json.loads((out / "gop" / "manifest.json").read_text())
            self.record("TS clip, 1500 zero bytes mid-file, key frame every 5", runtime, r, 3,
                        "nothing" if m["frames_written"] >= 50 and m["frames_written"] + m["frames_skipped"] == 60
                        else f"{m['frames_written']} of 60 labeled, {m['frames_skipped']} skipped",
                        f"{m['frames_written']} of 60 labeled, damage {[(d['first'], d['last']) for d in m['damage']]}")
            r, out = go("mixed", [cut, self.damaged])
            said = f"DAMAGED {self.damaged}" in r.stdout and f"FAILED {cut}" in r.stdout
            self.record("one failing and one damaged source", runtime, r, 1,
                        "nothing" if said else "a source's outcome line is missing")
            r, out = go("dashcam", [src / "dashcam"], "--recursive")
            keys = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
            self.record("dash cam: 0001.MP4 in two dated folders, --recursive", runtime, r, 0,
                        "nothing" if keys == ["dashcam-2026-01-01-0001", "dashcam-2026-01-02-0001"] else f"keys {keys}")
            r, out = go("mp4s", [mp4s])
            hint = [line for line in r.stdout.splitlines() if "--recursive" in line]
            self.record("a folder of .MP4 files, without --recursive", runtime, r, 1,
                        "nothing" if hint else "no hint", hint[0][-100:] if hint else "")
            r, out = go("uhd", [uhd, src / "uhd_clip.mp4"])
            shapes = [masks(out, "uhd").get("frame.png"), masks(out, "uhd-clip").get("000001")] \
                if r.returncode == 0 else []
            self.record("4K: a 2160x3840 PNG and a 2-frame 4K H.264 clip", runtime, r, 0,
                        "nothing" if shapes == [(2160, 3840)] * 2 else f"masks {shapes}")
            t = time.perf_counter()
            r, out = go("many", [many])
            n = len(list((out / "many" / "labels").glob("*.png"))) if out.is_dir() else 0
            self.record("a folder of 2000 images (.JPG)", runtime, r, 0,
                        "nothing" if n == 2000 else f"{n} of 2000 labeled", f"{time.perf_counter() - t:.0f} s")
            r, out = go("odd", [odd])
            good = (out / "odd" / "labels" / "good.png").exists()
            self.record("an empty .jpg among good images", runtime, r, 1,
                        "nothing" if good else "the good image was not labeled")
            r, out = go("lapse", [lapse])
            m = json.loads((out / "lapse" / "manifest.json").read_text()) if out.is_dir() else {}
            self.record("time-lapse: frames 100-300 ms apart in a 30 fps container", runtime, r, 0,
                        "nothing" if m.get("frames_written") == 30 and not m.get("damage") else
                        f"{m.get('frames_written')} labeled, damage {m.get('damage')}")
            r, out = go("order", [self.clip, phone])
            r = self.label(runtime, [phone, self.clip], out, "--threshold", "0", "--resume")
            self.record("--resume with the inputs in another order", runtime, r, 0,
                        "nothing" if r.stdout.count("complete in an earlier run") == 2 else "labeled again")
            # the link and both spellings of phone.mp4 are one file: one source, named after the first given
            r, out = go("unicode", [src / "Ünïcode clip (1).mp4", src / "link.mp4", phone, f"{src}/./phone.mp4"])
            keys = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
            self.record("unicode and spaces in a name, a symlink, one file given three ways", runtime, r, 0,
                        "nothing" if len(keys) == 2 else f"keys {keys}", f"keys {keys}")

    def training_data(self) -> None:
        from ssseg.data.synthetic import write_synthetic

        root = self.fresh("bad_data")
        write_synthetic(root, (48, 64), 0, {"train": 4, "val": 2, "test": 2})
        for path in (root / "train" / "images" / "train_00002.png", root / "val" / "images" / "val_00001.png"):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        args = ["train", "--method", "weak-strong", "--data", f"folder:{root}", "--epochs", "1", "--batch-size", "2",
                "--workers", "1", "--device", "cpu", "--labeled-fraction", "0.5"]
        run = self.fresh("bad_data_run")
        r = self.run("python", [*args, "--out", str(run)])
        self.record("truncated train and val images", "python", r, 1,
                    "nothing" if not (run / "metrics.jsonl").exists() else "an epoch ran first")
        r = self.run("python", [*args, "--out", str(self.fresh("bad_data_skip")), "--skip-bad"])
        self.record("the same with --skip-bad", "python", r, 0)


def markdown(results: list[Result], info: dict, seconds: float) -> str:
    cpp = " --cpp build/cpp/ssseg-cpp" if any(r.runtime == "cpp" for r in results) else ""
    lines = ["# Fault campaign", "", f"`python benchmarks/faults.py{cpp}`"
             f" on {info['cpu']} ({info['cores']} cores), commit {info['git_commit']}, {seconds:.0f} s. A case passes "
             "when the exit status is the expected one, a failure is one line without a traceback, and nothing "
             "written is lost.", "",
             "| case | runtime | exit (expected) | one line | lost | pass | note |", "|---|---|---|---|---|---|---|"]
    for r in results:
        one = "-" if r.one_line is None else ("yes" if r.one_line else "NO")
        note = r.note.replace("|", "/")
        lines.append(f"| {r.case} | {r.runtime} | {r.exit} ({r.expected}) | {one} | {r.lost} | "
                     f"{'yes' if r.ok else 'NO'} | {note} |")
    passed = sum(r.ok for r in results)
    lines += ["", f"{passed} of {len(results)} cases pass."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpp", type=Path, default=ROOT / "build" / "cpp" / "ssseg-cpp",
                   help="ssseg-cpp (default: build/cpp/ssseg-cpp; skipped when missing)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "faults")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults")
    args = p.parse_args()
    cpp = args.cpp.resolve() if args.cpp and args.cpp.exists() else None
    if cpp is None:
        print(f"{args.cpp} not found: the C++ runtime's cases are skipped (build it with make cpp)")
    t0 = time.perf_counter()
    c = Campaign(args.work.resolve(), cpp)
    c.prepare()
    try:
        for part in (c.videos, c.frames, c.concurrency, c.interrupts, c.options, c.disks, c.footage_habits,
                     c.training_data):
            part()
    finally:
        c.unmount()
    info = machine()
    seconds = time.perf_counter() - t0
    js, md = write_results(args.out, {"machine": info, "seconds": round(seconds, 1),
                                      "cases": [{**r.__dict__, "ok": r.ok} for r in c.results]},
                           markdown(c.results, info, seconds))
    print(f"{sum(r.ok for r in c.results)} of {len(c.results)} cases pass; {md}")
    return 0 if all(r.ok for r in c.results) else 1


if __name__ == "__main__":
    sys.exit(main())
