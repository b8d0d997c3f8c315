"""`ssseg-cpp label` against `ssseg label` (ORT backend) on this machine, in one run.

Target: the C++ runtime end to end at least as fast as `ssseg label` with ONNX Runtime, at 360x480 on the
CPU. The CPU engines differ (OpenCV's DNN module is the C++ backend every build has; ONNX Runtime's C++ API
when the build finds it), so the bare inference time of each is reported too. A clip is assembled from the
--frames folder (CamVid val, 360x480, H.264); each runtime labels it into its own folder (png format, the
model's threshold, confidence maps on), and the C++ outputs are compared with Python's pixel by pixel.

Example (the README's numbers; the ORT-enabled build needs ONNX Runtime's headers, see cpp/README.md):

    .venv/bin/python benchmarks/cpp_vs_python.py --frames ../shared/datasets/camvid/val \\
        --model runs/bench/cpp_models/360x480 --cpp opencv=build/cpp/ssseg-cpp --cpp ort=/tmp/ort/build/cpp/ssseg-cpp
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402
from label_throughput import make_clip  # noqa: E402


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def agreement(a: Path, b: Path) -> dict:
    import numpy as np
    from PIL import Image

    same = total = close = 0
    for f in sorted((a / "labels").iterdir()):
        la, lb = np.asarray(Image.open(f)), np.asarray(Image.open(b / "labels" / f.name))
        ca = np.asarray(Image.open(a / "confidence" / f.name)).astype(int)
        cb = np.asarray(Image.open(b / "confidence" / f.name)).astype(int)
        same += int((la == lb).sum())
        close += int((np.abs(ca - cb) <= 1).sum())
        total += la.size
    return {"labels_identical": same / total, "confidence_within_1": close / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True, help="a model exported with this ssseg (360x480)")
    p.add_argument("--cpp", action="append", required=True, help="BACKEND=PATH of an ssseg-cpp build")
    p.add_argument("--clip-frames", type=int, default=101)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2, help="end-to-end runs per runtime (mean reported)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpp_vs_python")
    args = p.parse_args()
    builds = dict(item.split("=", 1) for item in args.cpp)
    frames = sorted(f for f in args.frames.iterdir() if f.suffix.lower() in (".png", ".jpg"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(frames, args.clip_frames, work / "clip.mp4")
        common = [str(clip), "--model", str(args.model), "--confidence"]
        runs = [("python", "ort", [sys.executable, "-m", "ssseg", "label", *common, "--backend", "ort"])]
        runs += [("cpp", b, [path, "label", *common, "--backend", b]) for b, path in builds.items()]
        for r in range(args.repeats):  # interleaved, so drift in the machine's speed hits every runtime alike
            for i, (runtime, backend, cmd) in enumerate(runs):
                out = work / f"{runtime}-{backend}-{r}"
                wall = timed([*cmd, "--out", str(out)])
                s = json.loads((out / "summary.json").read_text())
                if r == 0:
                    rows.append({"runtime": runtime, "backend": backend, "frames": s["run"]["frames_labeled"],
                                 "pipeline_fps_runs": [], "wall_fps_runs": [], "out": out})
                rows[i]["pipeline_fps_runs"].append(s["run"]["fps"])
                rows[i]["wall_fps_runs"].append(s["run"]["frames_labeled"] / wall)
                print(runtime, backend, r, s["run"]["fps"], flush=True)
        for row in rows:
            row["pipeline_fps"] = sum(row["pipeline_fps_runs"]) / len(row["pipeline_fps_runs"])
            row["wall_fps"] = sum(row["wall_fps_runs"]) / len(row["wall_fps_runs"])
        bare = {}
        bj = work / "py_bench.json"
        subprocess.run([sys.executable, "-m", "ssseg", "bench", str(args.model), "--backend", "ort", "--stages",
                        "labeler", "--iters", str(args.iters), "--warmup", "3", "--json", str(bj)], check=True,
                       stdout=subprocess.DEVNULL)
        bare["python/ort"] = json.loads(bj.read_text())["results"][0]["fps"]
        for b, path in builds.items():
            cj = work / f"cpp_{b}.json"
            subprocess.run([path, "bench", str(args.model), "--backend", b, "--iters", str(args.iters), "--warmup", "3",
                            "--json", str(cj)], check=True, stdout=subprocess.DEVNULL)
            bare[f"cpp/{b}"] = json.loads(cj.read_text())["fps"]
        py_out = rows[0]["out"] / "clip"  # from the first repeat
        for r in rows:
            r["bare_fps"] = bare[f"{r['runtime']}/{r['backend']}"]
            r.update(agreement(py_out, r["out"] / "clip") if r["runtime"] == "cpp" else {})
            r["out"] = str(r["out"].name)
    result = {"machine": machine(), "command": " ".join(sys.argv), "model": str(args.model), "rows": rows}
    m = result["machine"]
    lines = ["# `ssseg-cpp label` vs `ssseg label`\n",
             f"{m['cpu']} ({m['cores']} cores), commit {m['git_commit']}; {args.clip_frames} CamVid val frames as an "
             f"H.264 clip at 360x480, model `{args.model}` (360x480, batch 1), png + confidence maps.\n",
             f"End to end: mean of {args.repeats} interleaved runs (each run's FPS in the JSON).\n",
             "| runtime | backend | end to end FPS (pipeline) | end to end FPS (process, with start-up) "
             "| bare labeler FPS | labels identical to Python | confidence within 1/255 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = (f"{100 * r['labels_identical']:.4f}% | {100 * r['confidence_within_1']:.4f}%"
                 if "labels_identical" in r else "- | -")
        lines.append(f"| {r['runtime']} | {r['backend']} | {r['pipeline_fps']:.2f} | {r['wall_fps']:.2f} | "
                     f"{r['bare_fps']:.2f} | {agree} |")
    js, md = write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
