"""ONNX Runtime vs PyTorch eager FP32 on the CPU, the issue's target: the ORT labeler at least 1.5x torch.

For each --sizes entry the run is exported at that size, then ``ssseg bench`` times both backends side by
side (segmenter, labeler, labeler with host pre/post-processing from 1080x1920 frames) with --compare.
Because the target is not reached everywhere, it also profiles the ORT labeler: thread count and graph
optimisation level, ORT's own profiler (time per operator type), and the arithmetic rate reached
(GFLOP/s) to compare with the CPU's peak. Writes <out>.json and <out>.md.

Example (the README's numbers):

    .venv/bin/python benchmarks/cpu_backends.py --run runs/bench/camvid_aux_f0.5_180x240 --sizes 360x480,512x1024
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


def ort_profile(labeler: Path, hw: tuple[int, int], runs: int) -> dict:
    """Mean latency per (threads, optimisation level), and ORT's per-operator-type time shares."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(0).integers(0, 256, (1, *hw, 3), dtype=np.uint8)
    sweep = {}
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        for threads in (1, 2):
            o = ort.SessionOptions()
            o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            o.intra_op_num_threads = threads
            s = ort.InferenceSession(str(labeler), o, providers=["CPUExecutionProvider"])
            s.run(None, {"image": x})
            t0 = time.perf_counter()
            for _ in range(runs):
                s.run(None, {"image": x})
            sweep[f"{level} threads={threads}"] = 1000 * (time.perf_counter() - t0) / runs
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    o.enable_profiling = True
    o.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    s = ort.InferenceSession(str(labeler), o, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        s.run(None, {"image": x})
    trace = json.loads(Path(s.end_profiling()).read_text())
    per_op = defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            per_op[ev["args"]["op_name"]] += ev["dur"]
    total = sum(per_op.values())
    shares = {k: v / total for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}
    return {"latency_ms": sweep, "op_time_share": shares}


def sgemm_gflops(n: int = 4096, runs: int = 5) -> float:
    """The machine's practical FP32 peak: a large matrix product in torch, same thread count as the bench."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(runs):
        a @ b
    return 2 * n ** 3 * runs / (time.perf_counter() - t0) / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--sizes", default="360x480,512x1024")
    p.add_argument("--batch", default="1")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--profile-runs", type=int, default=5)
    p.add_argument("--models", type=Path, default=Path("runs/bench/cpu_models"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu_backends"))
    args = p.parse_args(argv)

    from ssseg.config import BenchConfig, ExportConfig, parse_hw
    from ssseg.export import run_export
    from ssseg.runtime.bench import run_bench

    sizes = [parse_hw(s) for s in args.sizes.split(",")]
    per_size = {}
    for hw in sizes:
        name = f"{hw[0]}x{hw[1]}"
        model = args.models / name
        run_export(ExportConfig(run=args.run, out=model, input_size=hw, verify_images=2), say=lambda *_: None)
        bench = run_bench(BenchConfig(model, backends="ort,torch", batch=args.batch, iters=args.iters,
                                      warmup=args.warmup, compare=True), say=print)
        profile = ort_profile(model / "labeler.onnx", hw, args.profile_runs)
        gflops = bench["model"]["stats"]["labeler"]["gflops"]
        ort_labeler = next(r for r in bench["results"]
                           if r["backend"] == "ort" and r["stage"] == "labeler" and r["batch"] == 1)
        torch_labeler = next(r for r in bench["results"]
                             if r["backend"] == "torch" and r["stage"] == "labeler" and r["batch"] == 1)
        per_size[name] = {"bench": bench, "ort_profile": profile,
                          "labeler_gflop_per_s": {"ort": gflops * ort_labeler["fps"],
                                                  "torch": gflops * torch_labeler["fps"]}}
        print(name, json.dumps(profile["latency_ms"]), "top ops", list(profile["op_time_share"].items())[:4])

    m = machine()
    peak = sgemm_gflops()
    lines = ["# CPU: ONNX Runtime vs PyTorch eager FP32", "",
             f"{m['cpu']} ({m['cores']} cores), torch {m['torch']}, onnxruntime "
             f"{per_size[next(iter(per_size))]['bench']['system']['versions'].get('onnxruntime')}; run `{args.run}`; "
             f"batch {args.batch}, {args.warmup} warm-up + {args.iters} timed calls; "
             f"labeler+host from 1080x1920 frames.", "",
             "| input | stage | ORT FPS | torch FPS | ORT / torch |", "|---|---|---|---|---|"]
    for name, d in per_size.items():
        rows = d["bench"]["results"]
        for stage in ("segmenter", "labeler", "labeler+host"):
            o = next(r for r in rows if r["backend"] == "ort" and r["stage"] == stage and r["batch"] == 1)
            t = next(r for r in rows if r["backend"] == "torch" and r["stage"] == stage and r["batch"] == 1)
            lines.append(f"| {name} | {stage} | {o['fps']:.2f} | {t['fps']:.2f} | {o['fps'] / t['fps']:.2f}x |")
    lines += ["", "ORT labeler profile (batch 1): mean latency by graph optimisation level and threads, the time share "
              "of the top operator types, and the arithmetic rate reached:", ""]
    for name, d in per_size.items():
        prof = d["ort_profile"]
        sweep = ", ".join(f"{k.replace('ORT_ENABLE_', '').lower()} {v:.0f} ms" for k, v in prof["latency_ms"].items())
        ops = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(prof["op_time_share"].items())[:4])
        rate = d["labeler_gflop_per_s"]
        lines.append(f"- {name}: {sweep}. Ops: {ops}. Labeler {d['bench']['model']['stats']['labeler']['gflops']:.1f} "
                     f"GFLOPs/frame: ORT {rate['ort']:.0f} GFLOP/s, torch {rate['torch']:.0f} GFLOP/s.")
    lines += [f"- For scale: a 4096x4096 FP32 matrix product runs at {peak:.0f} GFLOP/s on this machine "
              f"(torch, same threads).", ""]
    js, md = write_results(args.out, {"machine": m, "sgemm_gflop_per_s": peak, "sizes": per_size}, "\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
