"""Export to ONNX and TensorRT: ``ssseg.export`` (lands with the export release)."""
