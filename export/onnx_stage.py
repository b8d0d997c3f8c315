"""The ONNX stage of an export: the FP32 graphs (segmenter, confidence net, labeler), their check against PyTorch,
and the reduced-precision graphs checked against them. Each writes into the job's staging folder and returns
the paths it wrote."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ssseg.errors import ExportError
from ssseg.export.job import Job
from ssseg.export.onnx import export_onnx, tensor_specs
from ssseg.export.reduced import REDUCED
from ssseg.gate import applied, kept
from ssseg.io import sha256_file
from ssseg.runtime.frames import batches, load_frame, resize_labels, resize_rgb

GRAPH_IO = {
    "segmenter": (["image"], ["logits"]),
    "labeler": (["image"], ["labels", "confidence"]),
}

def export_onnx_graphs(job: Job) -> list[Path]:
    cfg = job.cfg
    lo, opt, hi = cfg.batch_range
    dynamic = lo != hi
    mods = job.modules()
    example = torch.zeros((opt, *job.hw, 3), dtype=torch.uint8)
    written = []
    for name, module in mods.items():
        if name == "aux":
            c = job.sources.classes.num_classes
            args = (torch.full((opt, c, *job.hw), 1.0 / c),)
            inputs = ["probs"]
            if module.aux.with_rgb:
                args, inputs = args + (example,), inputs + ["image"]
            outputs = ["confidence"]
        else:
            args = (example,)
            inputs, outputs = GRAPH_IO[name]
            if name == "labeler" and job.gate == "none":
                outputs = ["labels"]
        t0 = time.perf_counter()
        path = export_onnx(module, args, job.staging / f"{name}.onnx", inputs, outputs, cfg.opset, dynamic,
                           cfg.simplify)
        ins, outs = tensor_specs(path)
        job.graphs[name] = {"file": path.name, "sha256": sha256_file(path), "inputs": ins, "outputs": outs}
        job.say(f"  {path.name:<15} {path.stat().st_size / 1e6:5.1f} MB  inputs {_io(ins)} -> {_io(outs)}  "
                f"({time.perf_counter() - t0:.1f} s)")
        written.append(path)
    if cfg.verify:
        verify_onnx(job, mods)
    for precision in (p for p in cfg.precision if p in REDUCED):
        written += export_reduced(job, precision)
    return written

def export_reduced(job: Job, precision: str) -> list[Path]:
    """segmenter.<precision>.onnx and labeler.<precision>.onnx from the FP32 graphs just written, checked
    against them on the held-out check frames and, when the run's labeled --calib-split is readable, by its
    mIoU (ssseg.export.reduced)."""
    from ssseg.export.reduced import Reference, write_reduced
    from ssseg.export.tensorrt import split_frames

    cfg = job.cfg
    lo = cfg.batch_range[0]
    frames, source, _ = job.check_frames()
    if job.reference is None:  # FP32's side of the checks, shared by every precision and form
        job.reference = Reference({g: job.onnx_path(g) for g in ("segmenter", "labeler")},
                                  list(batches(list(frames), lo, fill=True)), labeled_batches(job, lo),
                                  job.sources.classes.num_classes)
    calib = []
    if precision == "int8":
        paths = split_frames(job.frame_paths, cfg.calib_images, cfg.verify_images)[0]
        calib = list(batches((load_frame(p, job.hw) for p in paths), lo, fill=True))
    job.say(f"  {precision}: " + (f"calibrating on {len(paths)} frames of {cfg.calib_data}, " if calib else "")
            + f"checking on {source}")
    entries, written = write_reduced(precision, job.reference, job.staging, calib, gate_decision(job), job.say)
    job.reduced = [e for e in job.reduced if e["precision"] != precision] + entries
    return written

def gate_decision(job: Job):
    """The exported gate as a function of (labels, confidence) -> kept, for checking reduced graphs."""
    if job.gate == "none":
        return None
    if job.calibration is not None:
        t = applied(job.calibration["tables"][f"{job.cfg.target_precision[0]:g}"])
    else:
        t = job.cfg.threshold if job.cfg.threshold is not None else job.sources.gate_threshold
    return lambda labels, conf: kept(conf, t, labels)

def labeled_batches(job: Job, size: int) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None:
    """The run's labeled --calib-split at the export size, in batches of ``size``, read anew on each call
    (streamed: a large split never sits in memory); None when it cannot be read."""
    try:
        ds = job.open_calib_split()
    except Exception as e:  # noqa: BLE001 - the dataset may have moved or lack the split
        job.say(f"  no mIoU check: cannot open the {job.calib_split} split ({str(e).splitlines()[0][:80]})")
        return None

    def read() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        frames, labels = [], []
        for i in range(len(ds)):
            image, label = ds.load(i)
            frames.append(resize_rgb(image, job.hw))
            labels.append(resize_labels(label, job.hw))
            if len(frames) == size:
                yield np.stack(frames), np.stack(labels)
                frames, labels = [], []

    return read

def _io(specs: dict) -> str:
    return ", ".join(f"{k} {v['dtype']}[{','.join(map(str, v['shape']))}]" for k, v in specs.items())

def verify_onnx(job: Job, mods: dict[str, torch.nn.Module]) -> None:
    from ssseg.export.verify import TOLERANCES, compare, failures, format_table

    frames, source, _ = job.check_frames()
    lo, opt, hi = job.cfg.batch_range
    sizes = sorted({lo, opt, hi})
    stats = compare({name: (mods[name], job.staging / job.graphs[name]["file"]) for name in job.graphs}, frames, sizes)
    job.say(f"  ONNX Runtime vs PyTorch on {source}, batch {', '.join(map(str, sizes))}:")
    for line in format_table(stats):
        job.say(line)
    bad = failures(stats)
    job.verification = {"frames": len(frames), "source": source, "batch_sizes": sizes, "tolerances": TOLERANCES,
                        "graphs": stats, "passed": not bad}
    if bad:
        raise ExportError(f"ONNX Runtime disagrees with PyTorch: {'; '.join(bad)}", path=job.out,
                          fix="nothing was replaced in the model directory; report this with the run")
