"""``ssseg export``: a run directory in, a model directory out (ONNX graphs, optional TensorRT engines,
model.json). Like a table of formats: each exporter is a function that writes into the staging folder and
returns the paths it wrote. Everything is checked before the long work starts; artifacts are staged and
moved into MODEL_DIR only when every check has passed, model.json last, so a failed or killed export
leaves the previous model directory as it was."""

from __future__ import annotations

import os
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ssseg.checkpoint import checkpoint_segmenter
from ssseg.config import ExportConfig, hw_str
from ssseg.data import HOLDOUT, open_split
from ssseg.errors import ConfigError, ExportError, ModelError
from ssseg.export.graphs import build_graphs
from ssseg.export.onnx import export_onnx, tensor_specs
from ssseg.export.reduced import REDUCED
from ssseg.export.sources import Sources, resolve_sources, training_size
from ssseg.gating import FREE_SOURCES
from ssseg.io import sha256_file, write_json
from ssseg.runtime.frames import batches, load_frame, readable_images, resize_labels, resize_rgb, threshold_table
from ssseg.runtime.model import (
    IGNORE_VALUE,
    MODEL_FILE,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    pick_reduced,
    read_model,
    validate_model,
)
from ssseg.segmenters import nearest_input
from ssseg.versions import __version__, installed_versions

GRAPH_IO = {
    "segmenter": (["image"], ["logits"]),
    "labeler": (["image"], ["labels", "confidence"]),
}


def tool_versions(*extra: str) -> dict[str, str]:
    return {"ssseg": __version__, "python": platform.python_version(),
            **installed_versions("torch", "onnx", "onnxruntime", "onnxslim", *extra)}


class Job:
    """One export: the resolved sources, sizes and frames, and what has been written so far."""

    def __init__(self, cfg: ExportConfig, say: Callable[[str], None]):
        self.cfg, self.say = cfg, say
        self.sources: Sources = resolve_sources(cfg.run, cfg.segmenter)
        self.segmenter = checkpoint_segmenter(self.sources.segmenter_ckpt, self.sources.segmenter_path)
        self.hw = self._input_size()
        self.out: Path = cfg.out
        self.staging = self.out / f".staging-{os.getpid()}"
        self.frame_paths: list[Path] = []
        if cfg.calib_data is not None:
            self.frame_paths, bad = readable_images(cfg.calib_data, "--calib-data folder")
            if bad:
                say(f"warning: {len(bad)} unreadable image(s) in {cfg.calib_data} left out, e.g. {bad[0][0].name}")
        self.previous = self._previous_model()
        self.gate = self._gate()
        self.calib_split = self._calib_split()
        self.calibration: dict | None = None  # --target-precision's tables, from calibrate_gate
        self.graphs: dict[str, dict] = {}
        self.reduced: list[dict] = []  # model.json's reduced-precision graphs
        self.reference = None  # FP32 outputs the reduced graphs are checked against (export_reduced)
        self.engines: list[dict] = []
        self.verification: dict | None = None
        self.trt = self.cuda = self.trt_api = self.gpu = self.upload = None  # set by _prepare_trt

    def onnx_path(self, graph: str) -> Path:
        """The graph this export wrote (staged), or with --no-onnx the one already in MODEL_DIR."""
        staged = self.staging / self.graphs[graph]["file"]
        return staged if staged.is_file() else self.out / self.graphs[graph]["file"]

    def onnx_source(self, graph: str, precision: str) -> tuple[Path, str]:
        """(path, sha256) of the ONNX graph of ``graph`` in ``precision`` that an engine is built from."""
        if precision == "fp32":
            return self.onnx_path(graph), self.graphs[graph]["sha256"]
        entry = pick_reduced(self.reduced, graph, precision, "tensorrt")
        if entry is None:
            raise ExportError(f"TensorRT {self.trt.__version__} builds {precision} engines from "
                              f"{graph}.{precision}.onnx, which this model does not have", path=self.out,
                              fix=f"export it in the same run: drop --no-onnx and keep {precision} in --precision")
        staged = self.staging / entry["file"]
        return (staged if staged.is_file() else self.out / entry["file"]), entry["sha256"]

    def _input_size(self) -> tuple[int, int]:
        """--input-size as given, else the training size moved to the nearest one the segmenter accepts."""
        multiple = self.segmenter.input_multiple
        if self.cfg.input_size is not None:
            if any(v % multiple for v in self.cfg.input_size):
                raise ConfigError(f"--input-size {hw_str(self.cfg.input_size)} is not a multiple of {multiple}",
                                  fix=f"pass e.g. {hw_str(nearest_input(self.cfg.input_size, multiple))} "
                                      f"({self.segmenter.name}'s graphs and TensorRT kernels want multiples of "
                                      f"{multiple})")
            return self.cfg.input_size
        hw = training_size(self.sources)
        if any(v % multiple for v in hw):
            near = nearest_input(hw, multiple)
            self.say(f"exporting at {hw_str(near)}: the training size {hw_str(hw)} is not a multiple of {multiple} "
                     f"({self.segmenter.name}); pass --input-size to choose another")
            return near
        return hw

    def _previous_model(self) -> dict | None:
        if not (self.out / MODEL_FILE).is_file():
            return None
        try:
            data = read_model(self.out).data
        except ModelError:
            return None
        if Path(data["source"]["run"]).resolve() != self.cfg.run.resolve():
            raise ExportError(f"holds the export of another run ({data['source']['run']})", path=self.out,
                              fix="choose another --out, or move that model directory away first")
        return data

    def _gate(self) -> str:
        """What gates the labeler: "net" (the run's confidence net), a free source, or "none"."""
        src, gate = self.sources, self.cfg.gate
        if gate == "net" and src.aux_path is None:
            raise ExportError(f"--gate net, but the run has no confidence net ({src.no_aux_reason})", path=self.cfg.run,
                              fix=f"finish it (ssseg train --resume --out {self.cfg.run}) or train one, or choose "
                                  "--gate softmax (or margin, entropy), the default")
        return gate

    def _calib_split(self) -> str:
        """--calib-split auto: the drive training held out (--holdout) when there is one, else val."""
        if self.cfg.calib_split != "auto":
            return self.cfg.calib_split
        return HOLDOUT if self.sources.config.get("holdout") else "val"

    def open_calib_split(self):
        return open_split(self.sources.config["data"], self.calib_split, self.sources.config.get("holdout", ()))

    @property
    def aux_ckpt(self) -> dict | None:
        """The confidence net that goes into the graphs: only when it gates."""
        return self.sources.aux_ckpt if self.gate == "net" else None

    # --- the torch modules -----------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return build_graphs(self.sources.segmenter_ckpt, self.aux_ckpt, *self.sources.normalization,
                            str(self.sources.segmenter_path), free=self.gate if self.gate in FREE_SOURCES else None)

    def check_frames(self) -> tuple[np.ndarray, str, bool]:
        """Frames for parity checks: the last --verify-images of --calib-data (held out from INT8
        calibration when there are enough), else synthetic road scenes."""
        n = self.cfg.verify_images
        if self.frame_paths:
            from ssseg.export.tensorrt import split_frames

            _, check, held_out = split_frames(self.frame_paths, self.cfg.calib_images, n)
            return (np.stack([load_frame(p, self.hw) for p in check]), f"{len(check)} frames of {self.cfg.calib_data}",
                    held_out)
        from ssseg.data.synthetic import render_scene

        frames = [render_scene(1234, "val", i, self.hw)[0] for i in range(n)]
        return np.stack(frames), f"{n} synthetic frames (no --calib-data)", True


# --- exporters: each writes into job.staging and returns the paths it wrote -----------------------------

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
        table = threshold_table(job.calibration["tables"][f"{job.cfg.target_precision[0]:g}"])
        return lambda labels, conf: conf >= table[labels]
    t = job.cfg.threshold if job.cfg.threshold is not None else job.sources.gate_threshold
    return lambda labels, conf: conf >= t


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


def calibrate_gate(job: Job) -> dict:
    """--target-precision: the labeler's own confidence (as exported, at the export size) on the run's labeled
    --calib-split, and per predicted class the lowest threshold at which its kept pixels reach each precision
    (ssseg.gating). Classes that reach it nowhere are named: they are never kept."""
    from ssseg.calibration import SourceCounts, score_logit
    from ssseg.gating import per_class_thresholds
    from ssseg.runtime.frames import resize_labels, resize_rgb

    cfg, src = job.cfg, job.sources
    if job.gate == "none":
        raise ExportError("--target-precision needs a confidence source, and this export is ungated", path=cfg.run,
                          fix="choose --gate softmax (or margin, entropy; net when the run has a confidence net)")
    try:
        ds = job.open_calib_split()
    except Exception as e:  # noqa: BLE001 - the dataset may have moved or lack the split
        raise ExportError(f"cannot open the {job.calib_split} split of {src.config.get('data')} to calibrate "
                          f"({str(e).splitlines()[0][:100]})", path=cfg.run,
                          fix="restore the dataset, name another labeled split with --calib-split, or set a "
                              "fixed --threshold T") from None
    t0 = time.perf_counter()
    labeler = job.modules()["labeler"]
    names = src.classes.names
    counts = SourceCounts(len(names), ("gate",), torch.device("cpu"))
    with torch.no_grad():
        for i in range(len(ds)):
            image, label = ds.load(i)
            labels, conf = labeler(torch.from_numpy(resize_rgb(image, job.hw)[None].copy()))  # PIL gives read-only
            counts.add({"gate": score_logit(conf)}, labels.long(), torch.from_numpy(resize_labels(label, job.hw)[None]))
    joint = counts.joint_of("gate")
    results = {f"{p:g}": per_class_thresholds(joint, p, names) for p in cfg.target_precision}
    first = results[f"{cfg.target_precision[0]:g}"]
    job.say(f"calibrated the {job.gate} gate on {len(ds)} {job.calib_split} images at {hw_str(job.hw)} in "
            f"{time.perf_counter() - t0:.0f} s: at precision {first['precision']:g} per class it keeps "
            f"{100 * first['total_coverage']:.1f} % of pixels"
            + (f"; never kept: {', '.join(first['unreachable'] + first['unmeasured'])}"
               if first["unreachable"] or first["unmeasured"] else ""))
    return {"split": job.calib_split, "images": len(ds), "size": list(job.hw), "target_precision": first["precision"],
            "coverage": first["coverage"], "unreachable": first["unreachable"], "unmeasured": first["unmeasured"],
            "total_coverage": first["total_coverage"], "kept_pixel_acc": first["kept_pixel_acc"],
            "tables": {p: r["thresholds"] for p, r in results.items()},
            "by_precision": {p: {k: r[k] for k in ("coverage", "unreachable", "unmeasured", "total_coverage",
                                                   "kept_pixel_acc")} for p, r in results.items()}}


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


FORMATS: dict[str, Callable[[Job], list[Path]]] = {
    "onnx": export_onnx_graphs,
    "trt": build_trt_engines,
}


# --- the command ---------------------------------------------------------------------------------------

def run_export(cfg: ExportConfig, say: Callable[[str], None] = print) -> Path:
    """Export ``cfg.run`` into ``cfg.out``; returns the path of the model.json written."""
    t0 = time.perf_counter()
    job = Job(cfg, say)
    src = job.sources
    if cfg.trt:
        _prepare_trt(job)
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
        problems = validate_model(model)
        if problems:  # a bug in describe(), not a user error; never write an invalid model.json
            raise ExportError(f"internal error: model.json would be invalid ({problems[0]})", path=job.out)
        for path in written:
            os.replace(path, job.out / path.name)
        model_path = write_json(job.out / MODEL_FILE, model)
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


def _prepare_trt(job: Job) -> None:
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


def describe(job: Job) -> dict:
    """The model.json of this export."""
    cfg, src = job.cfg, job.sources
    lo, opt, hi = cfg.batch_range
    seg_ckpt, aux_ckpt = src.segmenter_ckpt, job.aux_ckpt
    if job.gate == "net":
        threshold = cfg.threshold if cfg.threshold is not None else src.gate_threshold
        gate = {"available": True, "kind": src.method, "model": aux_ckpt["model"]["name"], "threshold": threshold,
                "ignore_value": IGNORE_VALUE,
                "aux_input": "probs+rgb" if aux_ckpt["model"]["kwargs"].get("with_rgb") else "probs"}
    elif job.gate in FREE_SOURCES:
        gate = {"available": True, "kind": job.gate, "model": None, "threshold": cfg.threshold,
                "ignore_value": IGNORE_VALUE}
    else:
        gate = {"available": False, "kind": None, "threshold": None, "ignore_value": IGNORE_VALUE,
                "reason": "exported with --gate none"}
    if job.calibration is not None:
        gate["thresholds"] = job.calibration["tables"][f"{cfg.target_precision[0]:g}"]
        gate["calibration"] = job.calibration
    source = {
        "run": str(cfg.run.resolve()),
        "segmenter": {"path": str(src.segmenter_path.resolve()), "sha256": sha256_file(src.segmenter_path),
                      "stage": seg_ckpt.get("stage"), "epoch": seg_ckpt.get("epoch"),
                      "val_miou": seg_ckpt.get("best_miou")},
        "aux": None,
    }
    if aux_ckpt is not None:
        trained_against = (src.aux_path.parent / aux_ckpt["segmenter"]).resolve() if aux_ckpt.get("segmenter") else None
        source["aux"] = {"path": str(src.aux_path.resolve()), "sha256": sha256_file(src.aux_path),
                         "val_auroc": aux_ckpt.get("best_auroc"),
                         "trained_against": str(trained_against) if trained_against else None,
                         "trained_against_sha256": aux_ckpt.get("segmenter_sha256")}
    engines, stale = merge_engines((job.previous or {}).get("engines", []), job.engines, job.graphs, job.out)
    if stale:
        job.say(f"note: model.json no longer lists {', '.join(e['file'] for e in stale)}: built from other ONNX "
                f"graphs or missing (files left in place)")
    extra = ("tensorrt", "pycuda") if cfg.trt else ()
    return {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "ssseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": src.classes.to_dict(),
        "input": {"name": "image", "dtype": "uint8", "layout": "NHWC", "color": "RGB", "height": job.hw[0],
                  "width": job.hw[1], "batch": {"min": lo, "opt": opt, "max": hi}, "resize": "bilinear"},
        "normalization": {"in_graph": True, "scale": 255.0, "mean": list(src.normalization[0]),
                          "std": list(src.normalization[1])},
        "segmenter": job.segmenter.to_dict(),
        "graphs": job.graphs,
        "gate": gate,
        "method": src.method,
        "opset": cfg.opset,
        "source": source,
        "tools": tool_versions(*extra),
        "verification": job.verification,
        **({"reduced": job.reduced} if job.reduced else {}),
        "engines": engines,
    }


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
