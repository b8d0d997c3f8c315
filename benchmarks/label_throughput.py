"""`ssseg label` end to end against the bare labeler, and its memory against footage length.

1. Throughput (target: end to end >= 80% of the bare labeler of the same backend, same run). A clip is
   assembled from the --frames folder (CamVid val: 360x480 frames), H.264 at 30 frames/s. The bare labeler
   is timed on the clip's frames already decoded and at the model's size (the backend's `infer`, same batch
   and threads); then `ssseg label` (decode -> infer -> PNG on disk, png format) runs on the clip; then the
   bare labeler again. The pipeline's own timings say where the rest of the time goes.
2. Memory (target: peak RSS labeling a 10-minute clip within 10% of a 1-minute clip). Both clips loop the
   same frames at 30 frames/s and are labeled with --every, each in a fresh process; peak RSS from
   getrusage. Labels every --memory-every-th frame (all frames are still decoded).

Example (the README's numbers):

    .venv/bin/python benchmarks/label_throughput.py --frames ../shared/datasets/camvid/val \\
        --model runs/bench/cpu_models/360x480 --memory-model runs/bench/camvid_export_model
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

RATE = 30


def make_clip(frames: list[Path], count: int, path: Path) -> Path:
    import av
    import numpy as np
    from PIL import Image

    images = [np.asarray(Image.open(f).convert("RGB")) for f in frames]
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=RATE)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i in range(count):
            vf = av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")
            vf.pts = i
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return path


def bare_fps(backend, frames, batch: int, warmup: int = 2) -> float:
    """The backend's infer on prepared batches, nothing else."""
    import numpy as np

    batches = [np.stack(frames[i:i + batch]) for i in range(0, len(frames) - batch + 1, batch)]
    for b in batches[:warmup]:
        backend.infer(b)
    t0 = time.perf_counter()
    for b in batches:
        backend.infer(b)
    return len(batches) * batch / (time.perf_counter() - t0)


def throughput(args, clip: Path, work: Path) -> dict:
    import av

    from ssseg.config import LabelConfig
    from ssseg.label import run_label
    from ssseg.runtime.backends import OrtBackend
    from ssseg.runtime.frames import resize_rgb

    backend = OrtBackend(args.model, threads=args.threads).load()
    hw = backend.spec.input_hw
    batch = args.batch or backend.spec.batch_range[1]
    with av.open(str(clip)) as c:
        frames = [resize_rgb(f.to_ndarray(format="rgb24"), hw)
                  for _, f in zip(range(args.bare_frames), c.decode(video=0))]
    before = bare_fps(backend, frames, batch)
    out = work / "labels"
    t0 = time.perf_counter()
    run_label(LabelConfig(inputs=(str(clip),), model=args.model, out=out, batch=batch, backend="ort",
                          threads=args.threads, writers=args.writers), say=lambda m: print(m, flush=True))
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    run, key = summary["run"], summary["per_source"][0]["key"]
    after = bare_fps(backend, frames, batch)
    bare = (before + after) / 2
    n, secs, t = run["frames_labeled"], run["seconds"], run["timings"]
    per_frame_bare = 1 / bare
    return {
        "model": str(args.model), "input": f"{hw[0]}x{hw[1]}", "batch": batch, "threads": backend.threads,
        "writers": args.writers, "frames": n, "bare_fps_before": before, "bare_fps_after": after, "bare_fps": bare,
        "e2e_fps": run["fps"], "e2e_over_bare": run["fps"] / bare, "pipeline_seconds": secs,
        "wall_seconds_with_startup": wall,
        "where_time_goes_ms_per_frame": {
            "bare_infer": 1000 * per_frame_bare,
            "infer_in_pipeline": 1000 * t["infer_s"] / n,
            "waiting_for_frames": 1000 * t["wait_frames_s"] / n,
            "waiting_for_writers": 1000 * t["wait_writers_s"] / n,
            "other": 1000 * (secs - t["infer_s"] - t["wait_frames_s"] - t["wait_writers_s"]) / n,
        },
        "label_bytes_per_frame": sum(p.stat().st_size for p in (out / key / "labels").iterdir()) / n,
    }


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall time of ``cmd`` run in a fresh process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, rc)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed with {out[2]}")
    return int(out[0]) / 1024, float(out[1])


def memory(args, frames: list[Path], work: Path) -> dict:
    rows = []
    for minutes in (1, 10):
        clip = make_clip(frames, minutes * 60 * RATE, work / f"clip_{minutes}min.mp4")
        out = work / f"mem_{minutes}"
        cmd = [sys.executable, "-m", "ssseg", "label", str(clip), "--model", str(args.memory_model), "--out", str(out),
               "--every", str(args.memory_every), "--backend", "ort"]
        rss, secs = peak_rss(cmd)
        key = json.loads((out / "summary.json").read_text())["per_source"][0]["key"]
        m = json.loads((out / key / "manifest.json").read_text())
        rows.append({"minutes": minutes, "frames_decoded": m["frames_decoded"], "frames_labeled": m["frames_written"],
                     "peak_rss_mib": rss, "seconds": secs})
        print(f"{minutes} min: {rows[-1]}", flush=True)
        shutil.rmtree(out)
    return {"model": str(args.memory_model), "every": args.memory_every, "rows": rows,
            "ratio_10_over_1": rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# `ssseg label` throughput and memory\n",
             f"{m['cpu']} ({m['cores']} cores), onnxruntime {result['onnxruntime']}, PyAV {result['av']}; "
             f"commit {m['git_commit']}.\n"]
    t = result.get("throughput")
    if t:
        w = t["where_time_goes_ms_per_frame"]
        lines += [f"## End to end vs bare labeler (ORT CPU, {t['input']}, batch {t['batch']}, "
                  f"{t['threads']} threads)\n",
                  f"Clip: {t['frames']} CamVid val frames (360x480, H.264 at {RATE} frames/s), png format, "
                  f"{t['writers']} writer threads.\n",
                  "| bare labeler FPS (before / after) | `ssseg label` FPS (decode to PNG on disk) | ratio |",
                  "|---|---|---|",
                  f"| {t['bare_fps_before']:.2f} / {t['bare_fps_after']:.2f} | {t['e2e_fps']:.2f} | "
                  f"{100 * t['e2e_over_bare']:.1f}% |\n",
                  "Where a labeled frame's time goes (ms per frame, pipeline thread):\n",
                  f"- bare inference: {w['bare_infer']:.1f}",
                  f"- inference inside the pipeline: {w['infer_in_pipeline']:.1f} (decoding and PNG writing share "
                  f"the same {m['cores']} cores)",
                  f"- waiting for decoded frames: {w['waiting_for_frames']:.1f}",
                  f"- waiting for writers (bounded queue full): {w['waiting_for_writers']:.1f}",
                  f"- other (gating, batching, hand-off): {w['other']:.1f}",
                  f"- label PNG size: {t['label_bytes_per_frame'] / 1024:.1f} KiB per frame\n"]
    mem = result.get("memory")
    if mem:
        lines += [f"## Peak memory vs footage length (`--every {mem['every']}`, model {mem['model']})\n",
                  "| clip | frames decoded | frames labeled | peak RSS MiB | seconds |", "|---|---|---|---|---|"]
        for r in mem["rows"]:
            lines.append(f"| {r['minutes']} min | {r['frames_decoded']} | {r['frames_labeled']} | "
                         f"{r['peak_rss_mib']:.1f} | {r['seconds']:.0f} |")
        lines.append(f"\n10-minute / 1-minute peak RSS: {mem['ratio_10_over_1']:.3f}\n")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=Path, required=True, help="folder of frames to assemble clips from")
    p.add_argument("--model", type=Path, required=True, help="exported model for the throughput part")
    p.add_argument("--memory-model", type=Path, help="exported model for the memory part (default --model)")
    p.add_argument("--clip-frames", type=int, default=202)
    p.add_argument("--bare-frames", type=int, default=40)
    p.add_argument("--batch", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--memory-every", type=int, default=6)
    p.add_argument("--skip", choices=("throughput", "memory"))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "label_throughput")
    args = p.parse_args()
    args.memory_model = args.memory_model or args.model

    import av
    import onnxruntime

    frames = sorted(f for f in args.frames.iterdir() if f.suffix.lower() in (".png", ".jpg"))
    result = {"machine": machine(), "onnxruntime": onnxruntime.__version__, "av": av.__version__,
              "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.skip != "throughput":
            clip = make_clip(frames, args.clip_frames, work / "camvid_val.mp4")
            result["throughput"] = throughput(args, clip, work)
            print(json.dumps(result["throughput"], indent=1), flush=True)
        if args.skip != "memory":
            result["memory"] = memory(args, frames, work)
    js, md = write_results(args.out, result, markdown(result))
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
