"""TensorRT plumbing shared by export (engine build and check) and the runtime: version dispatch,
engine compatibility against model.json, and a small runner over the named-tensor API.

One code path serves TensorRT 8.6 (the last release for Pascal cards such as the GTX 1080 Ti), 10.x and
11.x: all have the named-tensor API (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``);
they differ in network creation flags and in how reduced precision is asked for (``TrtApi``). Everything
except the calls into ``tensorrt`` and ``pycuda`` is plain code under test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssseg.errors import ExportError, ModelError, NotAvailableError

TRT_MIN = (8, 6)
INSTALL_FIX = ("install TensorRT and pycuda on a machine with an NVIDIA GPU: pip install tensorrt==8.6.1 pycuda "
               "for Pascal (GTX 10-series), else tensorrt-cu12 (10.x, CUDA 12) or tensorrt-cu13 (11.x, CUDA 13)")


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); non-numeric suffixes ('8.6.1.post1') are dropped."""
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ExportError(f"cannot read the TensorRT version {text!r}", fix=INSTALL_FIX)
    return tuple(parts)


@dataclass(frozen=True)
class TrtApi:
    """What differs between the TensorRT releases ssseg supports, decided from the version alone."""

    version: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.version[:2] < TRT_MIN:
            raise ExportError(f"TensorRT {'.'.join(map(str, self.version))} is too old; ssseg needs 8.6 or newer",
                              fix=INSTALL_FIX)

    @property
    def explicit_batch_flag(self) -> bool:
        """8.x needs EXPLICIT_BATCH to parse ONNX; 10.x made it the only mode and deprecated the flag."""
        return self.version[0] < 10

    @property
    def explicit_precision(self) -> bool:
        """10.x and 11.x build FP16 and INT8 engines from the FP16 and Q/DQ ONNX graphs export writes, as strongly
        typed networks (an engine has the precision of its graph): 11.x removed the FP16/INT8 builder flags and
        the INT8 calibrators, 10.x deprecates them. 8.6 (Pascal) sets the flags on the FP32 graph and calibrates
        INT8 itself."""
        return self.version[0] >= 10

    def builder_flags(self, precision: str) -> tuple[str, ...]:
        """Names of the ``trt.BuilderFlag`` members that ``precision`` sets."""
        if self.explicit_precision:
            if precision == "best":
                raise ExportError(f"--precision best is TensorRT 8.6's mixed mode; TensorRT "
                                  f"{'.'.join(map(str, self.version[:2]))} builds each precision from its own graph",
                                  fix="use --precision fp16 or int8 (or both)")
            return ()
        return {"fp32": (), "fp16": ("FP16",), "int8": ("INT8",), "best": ("FP16", "INT8")}[precision]

    def graph_precision(self, precision: str) -> str:
        """The precision of the ONNX graph an engine of ``precision`` is built from."""
        return precision if self.explicit_precision else "fp32"

    def calibrates(self, precision: str) -> bool:
        """Whether the build runs TensorRT's own INT8 calibrator (8.6) instead of reading Q/DQ scales."""
        return precision in ("int8", "best") and not self.explicit_precision

    def network_flags(self, trt) -> int:
        if self.explicit_batch_flag:
            return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def import_tensorrt():
    """(tensorrt, pycuda.driver) with a CUDA context, or one clear line saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        raise NotAvailableError("TensorRT's Python package (tensorrt) is not installed", fix=INSTALL_FIX) from None
    try:
        import pycuda.autoinit  # noqa: F401 - creates the CUDA context on device 0
        import pycuda.driver as cuda
    except ImportError:
        raise NotAvailableError("pycuda is not installed (TensorRT needs it here for device buffers)",
                                fix="pip install pycuda") from None
    except Exception as e:  # noqa: BLE001 - no driver / no GPU surfaces as pycuda's own errors
        raise NotAvailableError(f"no usable CUDA device ({str(e).splitlines()[0][:120]})",
                                fix="run on a machine with an NVIDIA GPU and driver") from None
    return tensorrt, cuda


def gpu_info(cuda) -> dict:
    dev = cuda.Device(0)
    major, minor = dev.compute_capability()
    return {"name": dev.name(), "compute_capability": f"{major}.{minor}",
            "driver": driver_version(cuda.get_driver_version())}


def driver_version(v: int) -> str:
    """CUDA's driver version number (1000 * major + 10 * minor) as "major.minor": 12040 -> "12.4"."""
    return f"{v // 1000}.{v % 1000 // 10}"


def precision_advice(compute_capability: str, precision: str) -> str | None:
    """Pascal consumer cards (sm_61: GTX 10-series) run FP16 at 1/64 of FP32; INT8 (DP4A) is their speed path."""
    if compute_capability == "6.1" and precision in ("fp16", "best"):
        return ("this GPU (compute capability 6.1, GTX 10-series class) has slow FP16; "
                "--precision int8 is its fast path, fp32 the accurate one")
    return None


def check_engine(entry: dict, trt_version: str, gpu: dict, model_dir: Path) -> None:
    """Refuse an engine built for another TensorRT or GPU, naming the rebuild command."""
    where = Path(model_dir) / entry["file"]
    built = parse_version(entry["tensorrt"])[:3]
    here = parse_version(trt_version)[:3]
    if built != here:
        raise ModelError(f"engine was built with TensorRT {entry['tensorrt']}, this machine has {trt_version}",
                         path=where,
                         fix=f"rebuild it here: {entry['rebuild']}")
    if entry["gpu"].get("compute_capability") != gpu.get("compute_capability"):
        raise ModelError(f"engine was built for {entry['gpu'].get('name')} (compute capability "
                         f"{entry['gpu'].get('compute_capability')}), this GPU is {gpu.get('name')} "
                         f"({gpu.get('compute_capability')})", path=where, fix=f"rebuild it here: {entry['rebuild']}")


class TrtRunner:
    """Runs a serialized engine on numpy arrays: pinned host buffers, one CUDA stream, async copies.
    Device buffers are reused while shapes stay the same."""

    def __init__(self, plan: Path, trt=None, cuda=None):
        if trt is None:
            trt, cuda = import_tensorrt()
        self.trt, self.cuda = trt, cuda
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise ModelError("TensorRT cannot deserialize this engine (another TensorRT version or GPU built it)",
                             path=plan, fix="rebuild it on this machine with ssseg export --trt")
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._buffers: dict[str, tuple[tuple, object, object]] = {}

    def _buffer(self, name: str, shape: tuple, dtype) -> tuple:
        cached = self._buffers.get(name)
        if cached is None or cached[0] != shape:
            host = self.cuda.pagelocked_empty(shape, dtype)
            device = self.cuda.mem_alloc(max(host.nbytes, 1))
            cached = self._buffers[name] = (shape, host, device)
            self.context.set_tensor_address(name, int(device))
        return cached

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name])
            self.context.set_input_shape(name, array.shape)
            _, host, device = self._buffer(name, array.shape, array.dtype)
            host[...] = array
            self.cuda.memcpy_htod_async(device, host, self.stream)
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = self.trt.nptype(self.engine.get_tensor_dtype(name))
            results[name] = self._buffer(name, shape, dtype)
        if not self.context.execute_async_v3(self.stream.handle):
            raise ModelError("TensorRT failed to run the engine",
                             fix="check the input shape against model.json's batch range")
        for name, (_, host, device) in results.items():
            self.cuda.memcpy_dtoh_async(host, device, self.stream)
        self.stream.synchronize()
        return {name: host.copy() for name, (_, host, _) in results.items()}
