"""Export to ONNX and TensorRT: ``ssseg.export``. ``run_export`` is the whole command; the modules
are one concern each (graphs, onnx, compat, verify, tensorrt, sources, exporter)."""

from ssseg.export.exporter import FORMATS, run_export

__all__ = ["FORMATS", "run_export"]
