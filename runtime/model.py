"""``model.json``: the single description of an exported model, and the one module that writes (``write_model``),
reads (``read_model``) and validates (``validate_model``) it; export assembles its contents (export/describe.py),
the Python runtime, ``ssseg label``, ``ssseg bench`` read it here, the C++ runtime in model.hpp. Nothing it states
is hard-coded elsewhere.

Schema (format ``ssseg.model``, version 2; version 1 files, which lack the optional per-class gate keys, are
read as they are), every key required unless marked optional:

    format, format_version, ssseg_version, created
    classes        {name, names[C], colors[C][3]}
    input          {name, dtype "uint8", layout "NHWC", color "RGB", height, width,
                    batch {min, opt, max}, resize "bilinear"}
    normalization  {in_graph true, scale 255, mean[3], std[3]}: x = (pixel / scale - mean) / std, done
                   inside every graph that takes the image, recorded so other tools can reproduce it
    graphs         {segmenter, labeler, aux (optional)}: {file, sha256, inputs, outputs}, each tensor
                   {dtype, shape} with "batch" for a dynamic batch dimension
    gate           {available, kind (aux, adversarial, dual-disc: a confidence net; softmax, margin, entropy:
                    computed from the segmenter's softmax in the labeler graph), model (the gater or null),
                    threshold, ignore_value, reason (when not available),
                    thresholds (optional: one per class, null = never kept; used instead of threshold),
                    calibration (optional: {split, images, target_precision, coverage, unreachable, unmeasured,
                    total_coverage, kept_pixel_acc, tables {precision: thresholds}} of --target-precision)}
    segmenter      (optional: older exports lack it) the segmenter's declared spec
                   (ssseg/segmenters.py): {name, summary, stride, input_multiple, mean, std, feature_strides,
                   feature_channels, fused_channels, pretrained {package, licence, origin, ...} or null, recipe}
    method, opset, source {run, segmenter {...}, aux {...} or null}, tools {name: version}
    verification   (optional) the export-time parity table against PyTorch
    reduced        (optional) [{graph, precision (fp16, int8), form (fp16, s8s8, u8s8), runtimes (tensorrt,
                    onnxruntime), file, sha256, fp32_sha256, inputs, outputs, how, check, tolerances}]:
                    reduced-precision ONNX graphs beside the FP32 ones (INT8 as Q/DQ), each checked against its
                    FP32 graph at export; a runtime takes the one made for the fewest runtimes that lists it
    engines        [{file, graph, precision, sha256, onnx_sha256, tensorrt, gpu {name, compute_capability},
                    batch {min, opt, max}, workspace_mb, trtexec, rebuild, calibration (int8), check}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ssseg.classes import ClassSet
from ssseg.errors import ModelError
from ssseg.gate import Gate, gate_problems
from ssseg.io import check_format, sha256_file, write_json
from ssseg.segmenters import PAPER

MODEL_FORMAT = "ssseg.model"
MODEL_FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MODEL_FILE = "model.json"

_TENSOR = {"dtype": str, "shape": list}
_GRAPH = {"file": str, "sha256": str, "inputs": dict, "outputs": dict}
_BATCH = {"min": int, "opt": int, "max": int}
SCHEMA: dict[str, Any] = {
    "format": str,
    "format_version": int,
    "ssseg_version": str,
    "created": str,
    "classes": {"name": str, "names": list, "colors": list},
    "input": {"name": str, "dtype": str, "layout": str, "color": str, "height": int, "width": int,
              "batch": _BATCH, "resize": str},
    "normalization": {"in_graph": bool, "scale": (int, float), "mean": list, "std": list},
    "graphs": {"segmenter": _GRAPH, "labeler": _GRAPH},
    "gate": dict,  # its keys: ssseg.gate.gate_problems
    "method": str,
    "opset": int,
    "source": {"run": str, "segmenter": dict},
    "tools": dict,
    "engines": list,
}
_SEGMENTER = {"name": str, "stride": int, "input_multiple": int, "mean": list, "std": list}
_REDUCED = {**_GRAPH, "graph": str, "precision": str, "fp32_sha256": str}
_ENGINE = {"file": str, "graph": str, "precision": str, "sha256": str, "onnx_sha256": str, "tensorrt": str,
           "gpu": dict, "batch": _BATCH, "trtexec": str, "rebuild": str}


def _check(d: Any, schema: dict, where: str, problems: list[str]) -> None:
    if not isinstance(d, dict):
        problems.append(f"{where or 'the file'} must be an object")
        return
    for key, kind in schema.items():
        name = f"{where}.{key}" if where else key
        if key not in d:
            problems.append(f"missing {name}")
        elif isinstance(kind, dict):
            _check(d[key], kind, name, problems)
        elif isinstance(d[key], bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            problems.append(f"{name} must be a number, not a boolean")
        elif not isinstance(d[key], kind):
            problems.append(f"{name} has the wrong type ({type(d[key]).__name__})")


def validate_model(d: Any) -> list[str]:
    """Every way ``d`` departs from the schema; empty when it is a valid model.json."""
    problems: list[str] = []
    _check(d, SCHEMA, "", problems)
    if problems:
        return problems
    n = len(d["classes"]["names"])
    if len(d["classes"]["colors"]) != n or not all(isinstance(c, list) and len(c) == 3 for c in d["classes"]["colors"]):
        problems.append("classes.colors must hold one [r, g, b] per class name")
    b = d["input"]["batch"]
    if not 1 <= b["min"] <= b["opt"] <= b["max"]:
        problems.append("input.batch needs 1 <= min <= opt <= max")
    if d["input"]["dtype"] != "uint8" or d["input"]["layout"] != "NHWC":
        problems.append("input must be uint8 NHWC")
    if len(d["normalization"]["mean"]) != 3 or len(d["normalization"]["std"]) != 3:
        problems.append("normalization.mean and .std need 3 values")
    if not d["normalization"]["in_graph"]:
        problems.append("normalization.in_graph must be true (every runtime feeds the graphs raw uint8 pixels)")
    if "segmenter" in d:
        _check(d["segmenter"], _SEGMENTER, "segmenter", problems)
    if "aux" in d["graphs"]:
        _check(d["graphs"]["aux"], _GRAPH, "graphs.aux", problems)
    for name, g in d["graphs"].items():
        for side in ("inputs", "outputs"):
            for tname, t in g.get(side, {}).items():
                _check(t, _TENSOR, f"graphs.{name}.{side}.{tname}", problems)
    problems += gate_problems(d["gate"], n)
    if d["gate"].get("available") is True and "confidence" not in d["graphs"]["labeler"]["outputs"]:
        problems.append("gate.available is true but the labeler has no confidence output")
    for i, e in enumerate(d["engines"]):
        _check(e, _ENGINE, f"engines[{i}]", problems)
    reduced = d.get("reduced", [])
    if not isinstance(reduced, list):
        problems.append("reduced must be a list")
        reduced = []
    for i, r in enumerate(reduced):
        _check(r, _REDUCED, f"reduced[{i}]", problems)
        if isinstance(r, dict) and r.get("graph") not in d["graphs"]:
            problems.append(f"reduced[{i}].graph names no graph of this model")
    return problems


def pick_reduced(reduced: list[dict], name: str, precision: str, runtime: str) -> dict | None:
    """The reduced graph of ``name`` in ``precision`` made for ``runtime`` (onnxruntime, tensorrt): of those
    that list it, the one made for the fewest runtimes (INT8: U8S8 for ONNX Runtime, S8S8 for TensorRT).
    ssseg-cpp's ModelSpec::graph makes the same choice."""
    every = ("tensorrt", "onnxruntime")
    fits = [r for r in reduced if r["graph"] == name and r["precision"] == precision
            and runtime in r.get("runtimes", every)]
    return min(fits, key=lambda r: len(r.get("runtimes", every)), default=None)


@dataclass
class ModelSpec:
    """A validated model.json and the directory it lives in."""

    root: Path
    data: dict

    @property
    def classes(self) -> ClassSet:
        return ClassSet.from_dict(self.data["classes"])

    @property
    def segmenter(self) -> str:
        """The segmenter's registered name (exports older than the registry all hold the paper's)."""
        return self.data.get("segmenter", {}).get("name", PAPER.name)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.data["input"]["height"], self.data["input"]["width"]

    @property
    def batch_range(self) -> tuple[int, int, int]:
        b = self.data["input"]["batch"]
        return b["min"], b["opt"], b["max"]

    @cached_property
    def gate(self) -> Gate:
        """The gate as data (ssseg.gate): what every job applies goes through ``gate.choose``."""
        return Gate.read(self.data["gate"], len(self.data["classes"]["names"]), self.root / MODEL_FILE)

    def precisions(self, graph: str = "labeler") -> list[str]:
        """The ONNX precisions of ``graph`` in this model: fp32 and the reduced ones export wrote."""
        reduced = [r["precision"] for r in self.data.get("reduced", []) if r["graph"] == graph]
        return ["fp32"] + sorted(set(reduced), key=reduced.index)

    def reduced_entry(self, name: str, precision: str, runtime: str = "onnxruntime") -> dict | None:
        return pick_reduced(self.data.get("reduced", []), name, precision, runtime)

    def graph(self, name: str, check_hash: bool = True, precision: str = "fp32") -> Path:
        """Path of graph ``name`` in ``precision`` (for ONNX Runtime) after checking it exists and, by default,
        matches its recorded hash."""
        if precision == "fp32":
            entry = self.data["graphs"].get(name)
        else:
            entry = self.reduced_entry(name, precision)
            if entry is None:
                raise ModelError(f"this model has no {precision} {name} graph (has: "
                                 f"{', '.join(self.precisions(name))})", path=self.root / MODEL_FILE,
                                 fix=f"re-export with --precision fp32,{precision} (and --calib-data for int8)")
        if entry is None:
            raise ModelError(f"this model has no {name} graph", path=self.root / MODEL_FILE,
                             fix="re-export the run with its confidence net" if name == "aux" else "re-export the run")
        path = self.root / entry["file"]
        if not path.is_file():
            raise ModelError(f"{entry['file']} named by model.json is missing", path=path, fix="re-run ssseg export")
        if check_hash and sha256_file(path) != entry["sha256"]:
            raise ModelError("file does not match the sha256 in model.json (changed after export)", path=path,
                             fix="re-run ssseg export instead of editing artifacts by hand")
        return path

    def engines(self, graph: str | None = None) -> list[dict]:
        return [e for e in self.data["engines"] if graph is None or e["graph"] == graph]


def check_model(data: dict, out: Path) -> None:
    """Refuse to write an invalid model.json into ``out`` (a bug in the writer, export/describe.py, not a user's
    mistake): checked before an export moves anything into place."""
    problems = validate_model(data)
    if problems:
        raise ModelError(f"internal error: model.json would be invalid ({problems[0]})", path=Path(out) / MODEL_FILE,
                         fix="nothing was replaced in the model directory; report this with the run")


def write_model(out: Path, data: dict) -> Path:
    """MODEL_DIR/model.json, validated first and written atomically; returns its path."""
    check_model(data, out)
    return write_json(Path(out) / MODEL_FILE, data)


def read_model(path: Path) -> ModelSpec:
    """Load and validate MODEL_DIR/model.json (``path`` may be the directory or the file)."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise ModelError("no model.json here", path=file, fix="pass a directory written by ssseg export --out")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read model.json ({str(e).splitlines()[0][:100]})", path=file,
                         fix="re-run ssseg export; the file is damaged") from None
    check_format(data, MODEL_FORMAT, READABLE_VERSIONS, what="an ssseg model.json", path=file, error=ModelError,
                 foreign_fix="pass a directory written by ssseg export",
                 version_fix="re-export the run with this ssseg, or use ssseg {written}")
    problems = validate_model(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelError(f"invalid model.json: {problems[0]}{more}", path=file, fix="re-run ssseg export")
    return ModelSpec(file.parent, data)
