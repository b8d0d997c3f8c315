"""Export to ONNX and TensorRT: ``ssseg.export``. ``run_export`` is the whole command; the modules are
one concern each (sources, job, graphs, onnx, onnx_stage, reduced, verify, calibrate, tensorrt, engines,
describe; exporter runs the stages). Importing the package
loads nothing heavy: torch and onnx load when an export runs."""

from __future__ import annotations


def run_export(cfg, say=print):
    """Export ``cfg.run`` as ``cfg`` (an ``ssseg.config.ExportConfig``) says; returns the model.json path."""
    from ssseg.export.exporter import run_export as run

    return run(cfg, say)


__all__ = ["run_export"]
