"""The fault campaign: bad inputs and faults a new user meets, against `ssseg` and `ssseg-cpp` alike, in one
table (case, runtime, exit status, one error line or not, anything lost). Trains and exports a tiny model on
synthetic data first (about a minute); needs nothing from outside. Disk faults mount small tmpfs disks and
need root (skipped otherwise, and said so); without --cpp (or a built ssseg-cpp) only Python runs.

    python benchmarks/faults.py [--cpp build/cpp/ssseg-cpp] [--work DIR] [--out benchmarks/results/faults]

A case passes when the exit status is the expected one, a failure says one line (no traceback), and nothing
that was written is lost (the check named in its "lost" column)."""

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
from common import machine, write_results  # noqa: E402
from label_files import damaged_clip, job_files, kill_after_files, mode_images  # noqa: E402

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
        from ssseg.config import ExportConfig
        from ssseg.data.synthetic import write_synthetic_clip
        from ssseg.export import run_export
        from ssseg.train.config import TrainConfig
        from ssseg.train.engine import train

        self.work.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.work / "run"
        if not (self.run_dir / "done.json").exists():
            train(TrainConfig(data="synthetic:size=64x64,train=8,val=4,test=4", method="supervised", out=self.run_dir,
                              epochs=2, batch_size=4, workers=0, device="cpu", resume=self.run_dir.exists()),
                  log=lambda *_: None)
        self.model = self.work / "model"
        if not (self.model / "model.json").exists():
            run_export(ExportConfig(run=self.run_dir, out=self.model, verify=False), say=lambda *_: None)
        self.clip = self.work / "clip.mp4"
        if not self.clip.exists():
            write_synthetic_clip(self.clip, 24, (48, 80))
        self.long = self.work / "long.mp4"
        if not self.long.exists():
            write_synthetic_clip(self.long, 300, (48, 80), seed=4)
        self.damaged = damaged_clip(self.work / "damaged.mp4")

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
        names = sorted(mode_images(folder))
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
            done = kill_after_files([*cmd, "--out", str(out)], out / "long" / "labels", 40, timeout=120)
            r = self.run(runtime, [*base, "--out", str(out), "--resume"])
            a, b = job_files(full), job_files(out)
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
        for part in (c.videos, c.frames, c.concurrency, c.interrupts, c.options, c.disks, c.training_data):
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
