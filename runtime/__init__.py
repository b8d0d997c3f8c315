"""Deployment runtime: ``ssseg.runtime``. Imports numpy, onnxruntime, tensorrt and pycuda only,
never torch (deployment machines have none); backends land with the runtime release."""
