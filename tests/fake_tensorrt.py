"""A stand-in for the ``tensorrt`` and ``pycuda`` modules, for tests only: TensorRT cannot be installed
on the machines ssseg is developed and tested on. It implements the slice of their APIs that ssseg
calls, records how it was called, "builds" a plan that names the ONNX file and "runs" it with ONNX
Runtime through fake device memory. It checks ssseg's code around TensorRT (staging, calibration
batching and cache, buffers, model.json), not TensorRT itself."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"


def make(version: str = "10.3.0.26"):
    calls: list[tuple] = []
    memory: dict[int, bytearray] = {}

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = calls
    major = int(version.split(".")[0])
    # as the real bindings have them (tests/test_trt_api.py reads those): 11.x has no EXPLICIT_BATCH, no
    # FP16/INT8 builder flags and no INT8 calibrators
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(
        **({"EXPLICIT_BATCH": 0} if major < 11 else {}), **({"STRONGLY_TYPED": 5} if major >= 10 else {}))
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32", **({"FP16": "FP16", "INT8": "INT8"} if major < 11 else {}))
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = np.dtype

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    class Network:
        onnx = None

    class Parser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            self.network.onnx = path
            return True

    class TimingCache:
        def __init__(self, blob):
            self.blob = blob

        def serialize(self):
            return self.blob + b"+timed"

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.cache = [], [], None
            if major < 11:
                self.int8_calibrator = None

        def set_memory_pool_limit(self, pool, size):
            calls.append(("workspace", size))

        def set_flag(self, flag):
            self.flags.append(flag)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        if major < 11:
            def set_calibration_profile(self, profile):
                calls.append(("calibration_profile", profile.shapes))

        def create_timing_cache(self, blob):  # the real one returns None for a blob it cannot parse
            calls.append(("timing_cache_in", bytes(blob)))
            return None if bytes(blob).startswith(b"damaged") else TimingCache(bytes(blob))

        def set_timing_cache(self, cache, ignore_mismatch):  # and False for a cache of another GPU/version
            if cache.blob.startswith(b"other-gpu") and not ignore_mismatch:
                return False
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = {"name": name, "min": lo, "opt": opt, "max": hi}

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("network_flags", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            batches = 0
            calib = getattr(config, "int8_calibrator", None)
            if "INT8" in config.flags and calib is not None:
                if calib.read_calibration_cache() is None:
                    while calib.get_batch(["image"]) is not None:
                        batches += 1
                    calib.write_calibration_cache(b"TRT-fake-EntropyCalibration2\nimage: 3c010a14\n")
            calls.append(("build", Path(network.onnx).name, tuple(config.flags), batches))
            # the graph itself goes into the plan: export builds from staged files that move afterwards
            return PLAN_MAGIC + json.dumps({"onnx": Path(network.onnx).read_bytes().hex(),
                                            "flags": config.flags}).encode()

    class Engine:
        def __init__(self, meta):
            import onnxruntime

            self.session = onnxruntime.InferenceSession(bytes.fromhex(meta["onnx"]), providers=["CPUExecutionProvider"])
            self.ins = {i.name: i for i in self.session.get_inputs()}
            self.outs = {o.name: o for o in self.session.get_outputs()}
            self.names = [*self.ins, *self.outs]
            self.num_io_tensors = len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name in self.ins else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            t = (self.ins.get(name) or self.outs[name]).type
            return {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}[t]

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def get_tensor_shape(self, name):
            batch = next(iter(self.shapes.values()))[0]
            return tuple(batch if isinstance(d, str) else d for d in self.engine.outs[name].shape)

        def execute_async_v3(self, stream):
            feeds = {}
            for name, shape in self.shapes.items():
                dtype = self.engine.get_tensor_dtype(name)
                n = int(np.prod(shape)) * np.dtype(dtype).itemsize
                feeds[name] = np.frombuffer(bytes(memory[self.addresses[name]][:n]), dtype).reshape(shape)
            for name, value in zip(self.engine.outs, self.engine.session.run(None, feeds)):
                memory[self.addresses[name]][: value.nbytes] = value.tobytes()
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            if not plan.startswith(PLAN_MAGIC):
                return None
            return Engine(json.loads(plan[len(PLAN_MAGIC):]))

    for cls in (Logger, Builder, Runtime) + ((IInt8EntropyCalibrator2,) if major < 11 else ()):
        setattr(trt, cls.__name__, cls)
    trt.OnnxParser = Parser

    cuda = types.ModuleType("pycuda.driver")

    class Allocation:
        def __init__(self, n):
            self.ptr = 4096 * (len(memory) + 1)
            memory[self.ptr] = bytearray(n)

        def __int__(self):
            return self.ptr

    class Device:
        def __init__(self, i):
            pass

        def name(self):
            return "Fake GPU"

        def compute_capability(self):
            return (6, 1)

    cuda.Device = Device
    cuda.get_driver_version = lambda: 12040
    cuda.Stream = lambda: types.SimpleNamespace(handle=0, synchronize=lambda: None)
    cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    cuda.mem_alloc = Allocation

    def htod(dev, host, stream=None):
        memory[int(dev)][: host.nbytes] = np.ascontiguousarray(host).tobytes()

    def dtoh(host, dev, stream=None):
        host[...] = np.frombuffer(bytes(memory[int(dev)][: host.nbytes]), host.dtype).reshape(host.shape)

    cuda.memcpy_htod_async = cuda.memcpy_htod = htod
    cuda.memcpy_dtoh_async = dtoh
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = cuda
    return trt, {"tensorrt": trt, "pycuda": pycuda, "pycuda.driver": cuda,
                 "pycuda.autoinit": types.ModuleType("pycuda.autoinit")}
