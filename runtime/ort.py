"""ONNX Runtime sessions (the ``ort`` backend grows around this with the runtime release)."""

from __future__ import annotations

from pathlib import Path

from ssseg.errors import ModelError, NotAvailableError


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise NotAvailableError("onnxruntime is not installed",
                                fix="pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)") from None
    return onnxruntime


def ort_session(path: Path, providers: list[str] | None = None, threads: int | None = None):
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types per failure
        raise ModelError(f"ONNX Runtime cannot load the graph ({str(e).splitlines()[0][:160]})", path=path,
                         fix="re-run ssseg export; the file is damaged or from a newer opset") from None
