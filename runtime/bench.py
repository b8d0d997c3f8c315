"""``ssseg bench``: FPS and latency of each backend on the same model, stage by stage, in one run.

Stages: ``segmenter`` (the segmenter alone, frames at the model's size), ``labeler`` (segmenter + confidence
net, the fused graph) and ``labeler+host`` (from decoded frames at --frame-size: resize in, gate and
nearest-neighbour resize of the mask back out, as ``ssseg label`` does). Each call is timed between a
synchronised start and stop (CUDA events for the torch backend on a GPU; a monotonic clock after device
synchronisation otherwise) after ``warmup`` untimed calls. FPS counts frames: batch x calls / total time."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from ssseg.config import BenchConfig, hw_str
from ssseg.errors import ConfigError
from ssseg.gate import applied, apply
from ssseg.io import write_json
from ssseg.runtime.backends import Backend, OutOfMemory, open_backend
from ssseg.runtime.frames import resize_labels
from ssseg.runtime.model import ModelSpec, read_model
from ssseg.versions import installed_versions

BENCH_FORMAT, BENCH_FORMAT_VERSION = "ssseg.bench", 1
PRACTICE = ("Convention of the real-time segmentation literature: batch 1 at 512x1024 (Cityscapes half "
            "resolution), warm-up calls, then timed calls; FPS counts frames.")


def measure(call: Callable[[], object], timer, iters: int, warmup: int, synchronize: Callable[[], None]) -> np.ndarray:
    """Seconds of each of ``iters`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    synchronize()
    seconds = np.empty(iters)
    for i in range(iters):
        timer.start()
        call()
        seconds[i] = timer.stop()
    return seconds


def latency_summary(seconds: np.ndarray, batch: int) -> dict:
    ms = seconds * 1000.0
    return {"fps": float(batch * len(seconds) / seconds.sum()), "latency_ms": {
        "mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99))}, "calls": int(len(seconds))}


def stage_call(backend: Backend, stage: str, spec: ModelSpec, batch: int, frame_hw: tuple[int, int],
               rng: np.random.Generator) -> Callable[[], object]:
    hw = spec.input_hw
    if stage == "labeler+host":
        frames = rng.integers(0, 256, (batch, *frame_hw, 3), dtype=np.uint8)
        threshold = applied(spec.gate.choose())

        def call():
            labels, conf = backend.infer(list(frames))  # list: each frame resized to the model's size
            if conf is not None:
                labels = apply(labels, conf, threshold)
            return [resize_labels(m, frame_hw) for m in labels]

        return call
    frames = rng.integers(0, 256, (batch, *hw, 3), dtype=np.uint8)
    return (lambda: backend.segment(frames)) if stage == "segmenter" else (lambda: backend.infer(frames))


def versions() -> dict[str, str]:
    return {"python": platform.python_version(),
            **installed_versions("numpy", "onnxruntime", "tensorrt", "pycuda", "torch")}


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_stats(spec: ModelSpec) -> dict:
    from ssseg.runtime.stats import graph_stats

    out = {}
    for graph in ("segmenter", "labeler"):
        stats = graph_stats(spec.graph(graph, check_hash=False))
        if stats:
            out[graph] = {"params": stats["params"],
                          "gflops": None if stats["macs"] is None else 2 * stats["macs"] / 1e9,
                          "gmacs": None if stats["macs"] is None else stats["macs"] / 1e9}
    return out


def run_bench(cfg: BenchConfig, say: Callable[[str], None] = print) -> dict:
    spec = read_model(cfg.model)
    hw = spec.input_hw
    backends = list(cfg.backends)
    if cfg.input_size and cfg.input_size != hw and any(not b.startswith("torch") for b in backends):
        raise ConfigError(f"--input-size {hw_str(cfg.input_size)}: this model's graphs are static at {hw_str(hw)}",
                          path=spec.root,
                          fix=f"re-export with --input-size {hw_str(cfg.input_size)}, or drop --input-size")
    lo, _, hi = spec.batch_range
    if max(cfg.batch) > hi:
        raise ConfigError(f"--batch {max(cfg.batch)} is above this model's maximum batch {hi}", path=spec.root,
                          fix=f"re-export with --dynamic-batch {lo}:{min(cfg.batch)}:{max(cfg.batch)}, "
                              f"or lower --batch")
    if cfg.compare and not any(b in ("torch", "torch:") for b in backends):
        backends.append("torch")
        say("--compare: added torch (eager FP32) as the baseline")
    say(f"model {spec.root} ({spec.segmenter}, {spec.data['method']}, {spec.classes.num_classes} classes) at "
        f"{hw_str(hw)}; "
        f"batch {','.join(map(str, cfg.batch))}; {cfg.warmup} warm-up + {cfg.iters} timed calls"
        + (f"; labeler+host from {hw_str(cfg.frame_size)} frames" if "labeler+host" in cfg.stages else ""))
    say(PRACTICE)
    rng = np.random.default_rng(0)
    rows, described = [], {}
    for item in backends:
        name, _, variant = item.partition(":")
        backend = open_backend(spec, name, variant or None, run=cfg.run, say=say, threads=cfg.threads)
        label = item if name != "auto" else f"auto={backend.name}"
        rows += bench_backend(backend, label, cfg, spec, rng, say)
        described[label] = backend.describe()
    result = {
        "format": BENCH_FORMAT, "format_version": BENCH_FORMAT_VERSION,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"dir": str(spec.root), "segmenter": spec.segmenter, "method": spec.data["method"],
                  "input_size": list(hw), "batch_range": list(spec.batch_range), "gated": spec.gate.available,
                  "stats": model_stats(spec)},
        "settings": {"backends": backends, "batch": list(cfg.batch), "iters": cfg.iters, "warmup": cfg.warmup,
                     "frame_size": list(cfg.frame_size), "stages": list(cfg.stages), "practice": PRACTICE,
                     "clock": "CUDA events (torch on GPU); monotonic clock after device synchronisation otherwise"},
        "system": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(), "versions": versions(),
                   "backends": described},
        "results": rows,
        "compare": compare(rows) if cfg.compare else None,
    }
    for line in summary_lines(result):
        say(line)
    if cfg.json:
        write_json(cfg.json, result)
        say(f"wrote {cfg.json}")
    return result


def bench_backend(backend: Backend, label: str, cfg: BenchConfig, spec: ModelSpec, rng: np.random.Generator,
                  say: Callable[[str], None]) -> list[dict]:
    """Every stage at every batch size on one backend. Out of device memory at a batch, the batch is halved
    and the run says so (the row keeps the requested batch next to the one that ran)."""
    rows = []
    for batch in cfg.batch:
        ran = batch
        while True:
            try:
                done = []
                for stage in cfg.stages:
                    secs = measure(stage_call(backend, stage, spec, ran, cfg.frame_size, rng), backend.timer(),
                                   cfg.iters, cfg.warmup, backend.synchronize)
                    row = {"backend": label, **backend.describe(), "stage": stage, "batch": ran,
                           "requested_batch": batch, **latency_summary(secs, ran)}
                    done.append(row)
                    say(_row_text(row))
                rows += done
                break
            except OutOfMemory as e:
                if ran == 1:
                    raise
                say(f"{label}: {e}; retrying at batch {ran // 2}")
                ran //= 2
    return rows


def _row_text(row: dict) -> str:
    lat = row["latency_ms"]
    return (f"  {row['backend']:<16} {row['precision']:<5} {row['stage']:<13} batch {row['batch']:<3} "
            f"{row['fps']:8.1f} FPS   p50 {lat['p50']:8.2f} ms  p90 {lat['p90']:8.2f}  p99 {lat['p99']:8.2f}")


def compare(rows: list[dict]) -> list[dict]:
    """Each row's FPS over the torch eager FP32 row of the same stage and batch measured in the same run."""
    base = {(r["stage"], r["batch"]): r["fps"] for r in rows
            if r["backend"] == "torch" and r.get("mode") == "eager" and r["precision"] == "fp32"}
    return [{"backend": r["backend"], "stage": r["stage"], "batch": r["batch"],
             "speedup_vs_torch_eager_fp32": r["fps"] / base[(r["stage"], r["batch"])]}
            for r in rows if (r["stage"], r["batch"]) in base]


def summary_lines(result: dict) -> list[str]:
    stats = result["model"]["stats"]
    lines = []
    for graph, s in stats.items():
        flops = "n/a" if s["gflops"] is None else f"{s['gflops']:.2f} GFLOPs"
        lines.append(f"{graph}: {s['params'] / 1e6:.2f} M parameters (BatchNorm folded), {flops} per frame at "
                     f"{hw_str(result['model']['input_size'])}")
    if result["compare"]:
        lines.append("speed vs torch eager FP32 (same run):")
        for c in result["compare"]:
            lines.append(f"  {c['backend']:<16} {c['stage']:<13} batch {c['batch']:<3} "
                         f"x{c['speedup_vs_torch_eager_fp32']:.2f}")
    return lines
