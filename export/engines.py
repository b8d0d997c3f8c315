"""The TensorRT stage of an export: everything that can fail checked first (prepare_trt), then an engine per graph
and precision, each checked against ONNX Runtime's FP32 outputs; and which engines of an earlier export
model.json still lists (merge_engines)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.config import hw_str
from ssseg.errors import ExportError
from ssseg.export.job import Job
from ssseg.io import sha256_file


def prepare_trt(job: Job) -> None:
    """Everything about TensorRT that can fail, checked before any ONNX is written."""
    from ssseg.runtime.trt import TrtApi, gpu_info, import_tensorrt, parse_version

    cfg = job.cfg
    job.trt, job.cuda = import_tensorrt()
    job.trt_api = TrtApi(parse_version(job.trt.__version__))
    for precision in cfg.precision:
        job.trt_api.builder_flags(precision)
    job.gpu = gpu_info(job.cuda)
    buffers: list = []

    def upload(array: np.ndarray) -> int:
        if not buffers or buffers[0][1] != array.nbytes:
            buffers[:] = [(job.cuda.mem_alloc(array.nbytes), array.nbytes)]
        job.cuda.memcpy_htod(buffers[0][0], array)
        return int(buffers[0][0])

    job.upload = upload

def build_trt_engines(job: Job) -> list[Path]:
    from ssseg.export.tensorrt import (
        CalibrationSource,
        build_engine,
        calibration_key,
        engine_file,
        make_calibrator,
        split_frames,
        trtexec_command,
    )
    from ssseg.runtime.ort import ort_session
    from ssseg.runtime.trt import TrtRunner, precision_advice

    cfg, trt, cuda, api, gpu = job.cfg, job.trt, job.cuda, job.trt_api, job.gpu
    timing_cache = cfg.timing_cache or job.out / "trt.timing.cache"
    frames, frames_text, held_out = job.check_frames()
    lo, opt, hi = cfg.batch_range
    written = []
    for precision in cfg.precision:
        advice = precision_advice(gpu["compute_capability"], precision)
        if advice:
            job.say(f"  note: {advice}")
    for graph in ("segmenter", "labeler"):
        session = ort_session(job.onnx_path(graph))
        reference = _by_batch(lambda x: session.run(None, {"image": x}), frames, opt)
        for precision in cfg.precision:
            name = engine_file(graph, precision)
            onnx_path, onnx_sha = job.onnx_source(graph, api.graph_precision(precision))
            calibration, calibrator = None, None
            if api.calibrates(precision):
                calib_paths, _, _ = split_frames(job.frame_paths, cfg.calib_images, cfg.verify_images)
                cache = job.out / f"{graph}.int8.calib"
                key = calibration_key(onnx_sha, calib_paths, job.hw, opt)
                calib_source = CalibrationSource(calib_paths, job.hw, opt, cache, key, job.upload)
                calibrator = make_calibrator(trt, calib_source)
                calibration = {"algorithm": "entropy2", "frames": len(calib_paths) // opt * opt, "batch": opt,
                               "source": str(cfg.calib_data), "cache": cache.name,
                               "reused_cache": calib_source.read_cache() is not None}
            t0 = time.perf_counter()
            plan = build_engine(trt, api, onnx_path, precision, job.hw, cfg.batch_range, cfg.workspace_mb, timing_cache,
                                calibrator)
            path = job.staging / name
            path.write_bytes(plan)
            runner = TrtRunner(path, trt, cuda)
            outputs = dict(zip(runner.outputs, _by_batch(lambda x: [runner({"image": x})[n] for n in runner.outputs],
                                                         frames, opt)))
            check = _engine_check(graph, reference, outputs, frames_text, held_out)
            job.say(f"  {name:<24} {len(plan) / 1e6:5.1f} MB  built in {time.perf_counter() - t0:.0f} s; "
                    f"vs ONNX Runtime FP32: {100 * check['argmax_agreement']:.3f}% arg-max agreement")
            if precision == "fp32" and check["argmax_agreement"] < 0.999:
                raise ExportError(f"the FP32 engine {name} disagrees with ONNX Runtime on "
                                  f"{100 - 100 * check['argmax_agreement']:.2f}% of pixels", path=job.out,
                                  fix="nothing was replaced; report this with the TensorRT version")
            flags = f" --input-size {hw_str(job.hw)}" + (f" --dynamic-batch {lo}:{opt}:{hi}" if lo != hi
                                                         else f" --batch {lo}")
            trtexec = trtexec_command(onnx_path.name, name, precision, job.hw, cfg.batch_range, cfg.workspace_mb,
                                      timing_cache.name, f"{graph}.int8.calib" if calibration else None,
                                      strongly_typed=api.explicit_precision)
            job.say(f"    same build with trtexec, in {job.out}: {trtexec}")
            job.engines.append({
                "file": name, "graph": graph, "precision": precision, "sha256": sha256_file(path),
                "onnx_sha256": onnx_sha, "tensorrt": trt.__version__, "gpu": gpu,
                "batch": {"min": lo, "opt": opt, "max": hi}, "workspace_mb": cfg.workspace_mb,
                "timing_cache": timing_cache.name, "calibration": calibration, "check": check,
                "trtexec": trtexec,
                "rebuild": f"ssseg export {cfg.run} --out {job.out} --trt --precision {precision}{flags}",
            })
            written.append(path)
    return written

def _by_batch(run: Callable[[np.ndarray], list[np.ndarray]], frames: np.ndarray, batch: int) -> list[np.ndarray]:
    """``run`` on ``frames`` in calls of exactly ``batch`` frames (the last padded by repeating its last frame,
    as a fixed-batch graph needs; padding cut), its outputs concatenated."""
    n = len(frames)
    padded = np.concatenate([frames, np.repeat(frames[-1:], -n % batch, 0)])
    parts = [run(padded[i:i + batch]) for i in range(0, len(padded), batch)]
    return [np.concatenate([p[k] for p in parts])[:n] for k in range(len(parts[0]))]

def _engine_check(graph: str, reference: list[np.ndarray], outputs: dict[str, np.ndarray], source: str,
                  held_out: bool) -> dict:
    if graph == "segmenter":
        ref, got = reference[0], outputs["logits"]
        check = {"argmax_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
                 "logits_max_abs_diff": float(np.abs(ref - got).max())}
    else:
        check = {"argmax_agreement": float((reference[0] == outputs["labels"]).mean())}
        if "confidence" in outputs:
            check["confidence_max_abs_diff"] = float(np.abs(reference[1] - outputs["confidence"]).max())
    return {"reference": "onnxruntime fp32", "frames": source, "held_out_from_calibration": held_out, **check}

def merge_engines(previous: list[dict], new: list[dict], graphs: dict, out: Path) -> tuple[list[dict], list[dict]]:
    """Engines of an earlier export into the same MODEL_DIR stay listed while they were built from the
    very ONNX graphs now described and their files exist; rebuilt ones are replaced. Returns (engines, stale)."""
    rebuilt = {e["file"] for e in new}
    kept, stale = [], []
    for e in previous:
        if e["file"] in rebuilt:
            continue
        current = (e["graph"] in graphs and e["onnx_sha256"] == graphs[e["graph"]]["sha256"]
                   and (Path(out) / e["file"]).is_file())
        (kept if current else stale).append(e)
    return kept + list(new), stale
