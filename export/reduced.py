"""Reduced-precision ONNX graphs beside the FP32 ones: ``--precision fp16`` and ``int8`` write
``segmenter.<p>.onnx`` and ``labeler.<p>.onnx`` (INT8 also ``*.int8.u8s8.onnx``, FORMS), each checked against
the FP32 graph it came from and recorded in model.json's ``reduced`` list with the runtimes it is for, which
``ssseg label``/``bench --backend ort:int8``, ``ssseg-cpp`` and the TensorRT build read.

INT8 is explicit precision (QuantizeLinear/DequantizeLinear pairs), the form ONNX Runtime runs on any CPU and
TensorRT 10/11 builds from (11 has no other INT8 path). ONNX Runtime's static quantizer writes it: per-channel
symmetric INT8 weights, and activations either symmetric signed INT8 with zero point 0 (S8S8, the only kind
TensorRT accepts) or unsigned (U8S8, ONNX Runtime's x86 form), on Conv
and ConvTranspose alone (nearly all the FLOPs; their biases stay FP32), so the in-graph preprocessing, softmax,
arg-max and confidence stay FP32. Activation ranges are the min/max over the calibration frames:
deterministic for the same frames. Where min-max misses the INT8 tolerances, percentile and entropy ranges are
tried, and failing those the layers where the error enters (a per-layer SQNR table, written into model.json) stay
in FP32 until the graph holds (``int8_search``).

FP16 converts every float tensor but the graph's inputs and outputs and the ops listed in FP32_OPS.

Over 300 lines on purpose: making a reduced graph and checking it against its FP32 graph are one concern (the
INT8 search makes candidates and keeps the first that passes the checks), sharing the FP32 reference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ssseg.errors import ExportError
from ssseg.io import sha256_file

REDUCED = ("fp16", "int8")
GRAPHS = ("segmenter", "labeler")
QUANTIZED_OPS = ["Conv", "ConvTranspose"]
# softmax and what reads it stay FP32: the confidence of a 0.97 gate lives in the last 3 % below 1.0, where
# FP16's spacing (2^-11) is a visible step
FP32_OPS = ["Softmax", "ReduceMax", "ArgMax", "TopK", "Log", "Exp", "ReduceSum", "Sigmoid"]
# a reduced graph that agrees less than this with its FP32 graph fails the export (shares of pixels; mIoU
# points on the labeled --calib-split). INT8 may lose half a point of mIoU: more and the search (int8_search) goes on
TOLERANCES = {
    "fp16": {"min_argmax_agreement": 0.995, "min_gate_agreement": 0.995, "max_miou_drop": 0.2},
    "int8": {"min_argmax_agreement": 0.97, "min_gate_agreement": 0.97, "max_miou_drop": 0.5},
}


# activation-range rules tried in this order until one holds TOLERANCES (with their ONNX Runtime options): min-max
# is exact on the calibration frames and deterministic; a percentile clips rare outliers that min-max spends the
# 256 levels on; entropy (KL) fits the range to the distribution. Histogram calibration holds every frame's
# activations at once, so the later ones see at most HISTOGRAM_FRAMES frames
CALIBRATIONS = {"minmax": {}, "percentile": {"CalibPercentile": 99.99}, "entropy": {"CalibNumBins": 512}}
HISTOGRAM_FRAMES = 32
# layers left in FP32 when no calibration holds: the most sensitive first, in these steps
FP32_LAYER_STEPS = (1, 2, 4, 8)


# the forms of each precision: (form, runtimes it is for, unsigned activations). One INT8 graph cannot serve
# both runtimes well: TensorRT takes only signed symmetric activations (S8S8), while ONNX Runtime's x86 kernels
# want unsigned ones (U8S8, its documented choice for x86 CPUs; 1.35x the S8S8 rate on this project's CPU)
FORMS = {"fp16": [("fp16", ("tensorrt", "onnxruntime"), False)],
         "int8": [("s8s8", ("tensorrt", "onnxruntime"), False), ("u8s8", ("onnxruntime",), True)]}


def file_name(graph: str, precision: str, form: str | None = None) -> str:
    """segmenter.int8.onnx (S8S8, what every runtime runs), segmenter.int8.u8s8.onnx (ONNX Runtime's form)."""
    return f"{graph}.{precision}{'.' + form if form and form not in (precision, 's8s8') else ''}.onnx"


def quantize_int8(fp32: Path, out: Path, frames: list[np.ndarray], unsigned_activations: bool = False,
                  calibration: str = "minmax", exclude: tuple[str, ...] = ()) -> dict:
    """Write the Q/DQ INT8 graph of ``fp32`` calibrated on ``frames`` (uint8 NHWC batches of the graph's input);
    returns how it was quantized. ``unsigned_activations``: asymmetric UINT8 activations (U8S8, the form of
    ONNX Runtime's x86 kernels), which TensorRT refuses. ``calibration``: how activation ranges are taken
    (CALIBRATIONS); ``exclude``: Conv nodes left in FP32."""
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        # shapes first, as ONNX Runtime's quantizer expects. Not its graph optimisation: that would fold the
        # labeler's ArgMax -> INT32 -> UINT8 casts into one INT64 -> UINT8 cast, which TensorRT cannot do
        # (export/graphs.py); symbolic shape inference is for transformer graphs
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _reader(frames), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8 if unsigned_activations else QuantType.QInt8,
                        # MinMax keeps one min and max per tensor and frame, so memory stays small (and its
                        # CalibMaxIntermediateOutputs would drop frames in onnxruntime 1.32: left unset)
                        calibrate_method=getattr(CalibrationMethod, {"minmax": "MinMax", "percentile": "Percentile",
                                                                     "entropy": "Entropy"}[calibration]),
                        nodes_to_exclude=list(exclude),
                        # biases stay FP32: onnxruntime would write them as INT32 Q/DQ, which TensorRT rejects
                        extra_options={"ActivationSymmetric": not unsigned_activations, "WeightSymmetric": True,
                                       "QuantizeBias": False, **CALIBRATIONS[calibration]})
    return {"method": "onnxruntime static Q/DQ", "calibration": calibration, "frames": sum(len(f) for f in frames),
            "fp32_layers": list(exclude),
            "activations": "uint8 asymmetric per-tensor" if unsigned_activations else "int8 symmetric per-tensor",
            "weights": "int8 symmetric per-channel",
            "ops": QUANTIZED_OPS, "onnxruntime": onnxruntime.__version__}


def _reader(frames: list[np.ndarray]):
    """ONNX Runtime's calibration input: the frame batches, once."""
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter(frames)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"image": batch}

    return Frames()


def _sqnr(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Signal-to-quantisation-noise ratio in dB (inf: identical)."""
    signal = sum(float(np.square(r.astype(np.float64)).sum()) for r in ref)
    noise = sum(float(np.square(r.astype(np.float64) - g).sum()) for r, g in zip(ref, got))
    return float("inf") if noise == 0 else 10 * float(np.log10(max(signal, 1e-30) / noise))


def layer_sensitivity(fp32: Path, qdq: Path, frames: list[np.ndarray]) -> list[dict]:
    """Where the INT8 error enters: for each quantized Conv of ``qdq``, the SQNR against the FP32 graph of its input
    and of its output on ``frames``; the drop between them is the error that layer adds. Largest drop first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    acts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("fp32", fp32), ("int8", qdq)):
            augmented = Path(tmp) / f"{name}.onnx"
            modify_model_output_intermediate_tensors(str(path), str(augmented), op_types_for_saving=["Conv"])
            acts[name] = collect_activations(str(augmented), _reader(frames),
                                             execution_providers=["CPUExecutionProvider"])
    rows = []
    for node in onnx.load(str(qdq)).graph.node:
        src = node.input[0].removesuffix("_DequantizeLinear_Output") if node.op_type == "Conv" else None
        if src is None or src == node.input[0] or node.output[0] not in acts["fp32"] or src not in acts["fp32"]:
            continue  # not a quantized Conv
        sqnr_in = _sqnr(acts["fp32"][src], acts["int8"][node.input[0]])
        sqnr_out = _sqnr(acts["fp32"][node.output[0]], acts["int8"][node.output[0]])
        rows.append({"node": node.name, "sqnr_in_db": round(sqnr_in, 2), "sqnr_out_db": round(sqnr_out, 2),
                     "drop_db": round(sqnr_in - sqnr_out, 2) if np.isfinite(sqnr_in) else round(-sqnr_out, 2)})
    return sorted(rows, key=lambda r: -r["drop_db"])


def convert_fp16(fp32: Path, out: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True, op_block_list=FP32_OPS)
    onnx.save(model, str(out))
    return {"method": "onnxruntime float16 conversion", "fp32_ops": FP32_OPS, "io": "as FP32"}


class Reference:
    """What every reduced graph is compared with: the FP32 graphs' outputs on the check batches and the FP32
    labeler's confusion on the labeled split, each computed once per export and shared by all forms."""

    def __init__(self, fp32: dict[str, Path], check: list[np.ndarray], labeled, num_classes: int):
        self.fp32, self.check, self.labeled, self.num_classes = fp32, check, labeled, num_classes
        self._outputs: dict[str, list[list[np.ndarray]]] = {}
        self._confusion: np.ndarray | None = None

    def outputs(self, graph: str) -> list[list[np.ndarray]]:
        if graph not in self._outputs:
            session = _session(self.fp32[graph])
            self._outputs[graph] = [session.run(None, {"image": b}) for b in self.check]
        return self._outputs[graph]

    def confusion(self) -> np.ndarray:
        if self._confusion is None:
            self._confusion = _confusion(_session(self.fp32["labeler"]), self.labeled, self.num_classes)[0]
        return self._confusion


def _session(path: Path):
    from ssseg.runtime.ort import ort_session

    return ort_session(path, ["CPUExecutionProvider"])


def _confusion(session, labeled, num_classes: int) -> tuple[np.ndarray, int]:
    """The labeler's confusion on ``labeled()``'s (frame batch, label batch) pairs, and the image count."""
    from ssseg.metrics import confusion

    conf, images = np.zeros((num_classes, num_classes), np.int64), 0
    for frames, labels in labeled():
        images += len(frames)
        conf += confusion(session.run(None, {"image": frames})[0], labels, num_classes)
    return conf, images


def compare(graph: str, session, reference: Reference, keep) -> dict:
    """Arg-max agreement and (labeler, gated) gate-decision agreement of the reduced graph with FP32;
    ``keep(labels, confidence)`` is the model's gate (None: ungated)."""
    same = kept_same = pixels = 0
    conf_diff = 0.0
    for batch, a in zip(reference.check, reference.outputs(graph)):
        b = session.run(None, {"image": batch})
        if graph == "segmenter":
            la, lb = a[0].argmax(1), b[0].argmax(1)
        else:
            la, lb = a[0], b[0]
        same += int((la == lb).sum())
        pixels += la.size
        if graph == "labeler" and keep is not None and len(a) > 1:
            kept_same += int((keep(la, a[1]) == keep(lb, b[1])).sum())
            conf_diff = max(conf_diff, float(np.abs(a[1] - b[1]).max()))
    gated = graph == "labeler" and keep is not None
    return {"frames": sum(len(f) for f in reference.check), "argmax_agreement": same / pixels,
            "gate_agreement": kept_same / pixels if gated else None,
            "confidence_max_abs_diff": conf_diff if gated else None}


def miou_pair(session, reference: Reference) -> dict:
    """Val mIoU of the FP32 and the reduced labeler on the labeled split."""
    from ssseg.metrics import scores

    conf, images = _confusion(session, reference.labeled, reference.num_classes)
    names = [str(i) for i in range(reference.num_classes)]
    fp32, reduced = (scores(c, names)["miou"] for c in (reference.confusion(), conf))
    return {"images": images, "miou_fp32": fp32, "miou": reduced, "miou_drop": fp32 - reduced}


def failures(precision: str, name: str, check: dict) -> list[str]:
    """What ``check`` of graph ``name`` (its file's stem) breaks of ``precision``'s TOLERANCES."""
    tol = TOLERANCES[precision]
    bad = []
    if check["argmax_agreement"] < tol["min_argmax_agreement"]:
        bad.append(f"{name} arg-max agreement {100 * check['argmax_agreement']:.2f} % "
                   f"< {100 * tol['min_argmax_agreement']:g} %")
    if check.get("gate_agreement") is not None and check["gate_agreement"] < tol["min_gate_agreement"]:
        bad.append(f"{name} gate agreement {100 * check['gate_agreement']:.2f} % "
                   f"< {100 * tol['min_gate_agreement']:g} %")
    if check.get("miou_drop") is not None and 100 * check["miou_drop"] > tol["max_miou_drop"]:
        bad.append(f"{name} loses {100 * check['miou_drop']:.2f} mIoU points > {tol['max_miou_drop']:g}")
    return bad


def write_reduced(precision: str, reference: Reference, staging: Path, calib: list[np.ndarray], keep,
                  say) -> tuple[list[dict], list[Path]]:
    """Every graph of GRAPHS in ``precision`` (each of its FORMS): written into ``staging``, checked against
    ``reference`` on its check batches and, when it has a labeled split, by the labeler's mIoU; returns
    model.json's ``reduced`` entries and the files. INT8 that misses TOLERANCES with min-max ranges tries the
    other CALIBRATIONS, then leaves the most sensitive layers in FP32 (int8_search). Raises ExportError below
    TOLERANCES."""
    from ssseg.export.onnx import tensor_specs

    entries, written, bad = [], [], []
    for graph in GRAPHS:
        for form, runtimes, unsigned in FORMS[precision]:
            t0 = time.perf_counter()
            out = staging / file_name(graph, precision, form)
            fp32 = reference.fp32[graph]
            if precision == "int8":
                how, result, problems = int8_search(graph, fp32, out, calib, unsigned, reference, keep, say)
                if "tensorrt" in runtimes:  # every graph's rules plus explicit quantization's
                    import onnx

                    from ssseg.export.compat import tensorrt_problems

                    trt = tensorrt_problems(onnx.load(str(out)))
                    if trt:
                        raise ExportError(f"{out.name} uses what TensorRT cannot parse: {'; '.join(trt[:3])}",
                                          path=out, fix="report this with the run and the onnxruntime version")
            else:
                how = convert_fp16(fp32, out)
                result, problems = check_graph(graph, out, reference, keep, precision)
            bad += problems
            ins, outs = tensor_specs(out)
            entries.append({"graph": graph, "precision": precision, "form": form, "runtimes": list(runtimes),
                            "file": out.name, "sha256": sha256_file(out), "fp32_sha256": sha256_file(fp32),
                            "inputs": ins, "outputs": outs, "how": how, "check": result,
                            "tolerances": TOLERANCES[precision]})
            written.append(out)
            say(f"  {out.name:<24} {out.stat().st_size / 1e6:5.1f} MB  vs FP32 on {result['frames']} held-out "
                f"frames: {_check_text(result)}  ({time.perf_counter() - t0:.1f} s)")
    if bad:
        raise ExportError(f"the {precision} graphs disagree with FP32: {'; '.join(bad)}", path=staging.parent,
                          fix=f"nothing was replaced; calibrate on more frames of the footage (--calib-data), or "
                              f"export without {precision}")
    return entries, written


def _check_text(result: dict) -> str:
    miou = (f", mIoU {100 * result['miou']:.2f} vs {100 * result['miou_fp32']:.2f} on {result['images']} "
            f"labeled images" if "miou" in result else "")
    gate = f", gate {100 * result['gate_agreement']:.2f} %" if result["gate_agreement"] is not None else ""
    return f"arg-max {100 * result['argmax_agreement']:.2f} %{gate}{miou}"


def check_graph(graph: str, path: Path, reference: Reference, keep, precision: str) -> tuple[dict, list[str]]:
    """The reduced graph at ``path`` against FP32 (and the labeler's mIoU on the labeled split): (check, failures)."""
    session = _session(path)
    result = compare(graph, session, reference, keep)
    if graph == "labeler" and reference.labeled:
        result.update(miou_pair(session, reference))
    return result, failures(precision, path.name.removesuffix(".onnx"), result)


def int8_search(graph: str, fp32: Path, out: Path, calib: list[np.ndarray], unsigned: bool, reference: Reference,
                keep, say) -> tuple[dict, dict, list[str]]:
    """The INT8 graph that holds TOLERANCES at the least cost: min-max ranges first; failing that, each of the
    other CALIBRATIONS, keeping the best by arg-max agreement; failing that, the layers where the error enters
    (layer_sensitivity) left in FP32, FP32_LAYER_STEPS at a time. Writes ``out``; returns (how, check, failures),
    ``how`` recording every attempt, the sensitivity table and why each FP32 layer stayed."""
    attempts, best = [], None
    for calibration in CALIBRATIONS:
        frames = calib if calibration == "minmax" else _first_frames(calib, HISTOGRAM_FRAMES)
        how = quantize_int8(fp32, out, frames, unsigned, calibration)
        result, problems = check_graph(graph, out, reference, keep, "int8")
        attempts.append({"calibration": calibration, "fp32_layers": 0, **_summary(result), "passed": not problems})
        if not problems:
            return {**how, "attempts": attempts}, result, problems
        if best is None or result["argmax_agreement"] > best[1]:
            best = (calibration, result["argmax_agreement"])
        say(f"  {out.name}: {calibration} ranges miss the INT8 tolerances ({'; '.join(problems)}); trying more")
    calibration = best[0]
    frames = calib if calibration == "minmax" else _first_frames(calib, HISTOGRAM_FRAMES)
    quantize_int8(fp32, out, frames, unsigned, calibration)
    sensitivity = layer_sensitivity(fp32, out, _first_frames(reference.check, 2))
    for k in FP32_LAYER_STEPS[:max(1, len(sensitivity))]:
        exclude = tuple(r["node"] for r in sensitivity[:k])
        how = quantize_int8(fp32, out, frames, unsigned, calibration, exclude)
        result, problems = check_graph(graph, out, reference, keep, "int8")
        attempts.append({"calibration": calibration, "fp32_layers": len(exclude), **_summary(result),
                         "passed": not problems})
        if not problems:
            break
    say(f"  {out.name}: {calibration} ranges with {len(exclude)} layer(s) in FP32 "
        f"({', '.join(exclude)}): {'holds' if not problems else 'still misses'} the tolerances")
    why = {r["node"]: f"adds {r['drop_db']:.1f} dB of INT8 noise (SQNR {r['sqnr_in_db']:.1f} -> {r['sqnr_out_db']:.1f})"
           for r in sensitivity[:len(exclude)]}
    return {**how, "attempts": attempts, "fp32_why": why, "sensitivity": sensitivity[:12]}, result, problems


def _first_frames(batches: list[np.ndarray], n: int) -> list[np.ndarray]:
    """The first ``n`` frames of ``batches``, as one-frame batches."""
    return [b[i:i + 1] for b in batches for i in range(len(b))][:n]


def _summary(result: dict) -> dict:
    return {k: result[k] for k in ("argmax_agreement", "gate_agreement", "miou_drop") if result.get(k) is not None}
