"""``ssseg export``: a run directory in, a model directory out (ONNX graphs, optional TensorRT engines,
model.json). Like a table of formats: each stage is a function that writes into the staging folder and
returns the paths it wrote (export/onnx_stage.py, export/engines.py). Everything is checked before the long
work starts; artifacts are staged and moved into MODEL_DIR only when every check has passed, model.json last,
so a failed or killed export leaves the previous model directory as it was."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from ssseg.config import ExportConfig, hw_str
from ssseg.errors import ExportError
from ssseg.export.calibrate import calibrate_gate
from ssseg.export.describe import describe
from ssseg.export.engines import build_trt_engines, prepare_trt
from ssseg.export.job import Job
from ssseg.export.onnx_stage import export_onnx_graphs
from ssseg.gate import FREE_SOURCES
from ssseg.runtime.model import check_model, read_model, write_model

FORMATS: dict[str, Callable[[Job], list[Path]]] = {
    "onnx": export_onnx_graphs,
    "trt": build_trt_engines,
}

def run_export(cfg: ExportConfig, say: Callable[[str], None] = print) -> Path:
    """Export ``cfg.run`` into ``cfg.out``; returns the path of the model.json written."""
    t0 = time.perf_counter()
    job = Job(cfg, say)
    src = job.sources
    if cfg.trt:
        prepare_trt(job)
    if not cfg.onnx:
        _reuse_onnx(job)
    if cfg.target_precision:
        job.calibration = calibrate_gate(job)
    say(f"exporting {src.segmenter_path}" + (f" + {src.aux_path}" if job.aux_ckpt is not None else "")
        + (f", gated by its {job.gate}" if job.gate in FREE_SOURCES else "")
        + f" at {hw_str(job.hw)}, batch {_batch_text(cfg.batch_range)}, opset {cfg.opset} -> {job.out}")
    remove_dead_staging(job.out)
    job.staging.mkdir(parents=True, exist_ok=True)
    try:
        written = []
        for name, exporter in FORMATS.items():
            if getattr(cfg, name):
                written += exporter(job)
        model = describe(job)
        check_model(model, job.out)  # before anything moves into place
        for path in written:
            os.replace(path, job.out / path.name)
        model_path = write_model(job.out, model)
    except OSError as e:  # a full disk: writers that name no file are named by the folder being written
        e.filename = e.filename or str(job.out)
        raise
    finally:
        shutil.rmtree(job.staging, ignore_errors=True)
    say(f"wrote {model_path} ({len(written)} artifact(s)) in {time.perf_counter() - t0:.0f} s")
    return model_path

def remove_dead_staging(out: Path) -> None:
    """Staging folders of killed exports (their process is gone) hold nothing anyone needs."""
    for folder in Path(out).glob(".staging-*"):
        try:
            os.kill(int(folder.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass

def _batch_text(batch_range: tuple[int, int, int]) -> str:
    lo, opt, hi = batch_range
    return str(lo) if lo == hi else f"{lo}:{opt}:{hi} (dynamic)"

def _reuse_onnx(job: Job) -> None:
    """--no-onnx: build engines from the graphs a previous export wrote (their hashes are checked)."""
    if job.previous is None:
        raise ExportError("--no-onnx needs an earlier export in --out", path=job.out, fix="drop --no-onnx")
    spec = read_model(job.out)
    if (spec.input_hw != job.hw) or (spec.batch_range != job.cfg.batch_range):
        raise ExportError(f"the existing ONNX is {hw_str(spec.input_hw)}, batch {_batch_text(spec.batch_range)}; "
                          f"asked for {hw_str(job.hw)}, batch {_batch_text(job.cfg.batch_range)}", path=job.out,
                          fix="drop --no-onnx to re-export at the new size")
    for name in spec.data["graphs"]:
        spec.graph(name)  # exists and matches its hash
    job.graphs = dict(spec.data["graphs"])
    job.reduced = list(spec.data.get("reduced", []))
    job.verification = spec.data.get("verification")
