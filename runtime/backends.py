"""One inference interface over TensorRT, ONNX Runtime and PyTorch (Polygraphy-style runners: small
interface, one class per backend, loading deferred to first use).

Every backend reads the same MODEL_DIR/model.json and takes the same input: uint8 frames, NHWC RGB. Frames
at the model's size go straight in; others are resized as model.json says (``input.resize``), never
reshaped. ``infer`` returns (labels uint8 [N,H,W], confidence float32 [N,H,W] or None when the model has
no confidence net); ``segment`` returns the segmenter's logits, for benchmarks.

Over 300 lines on purpose: the interface, its two runtime backends and the one rule that picks among them
(with its error lines) read best together."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.errors import BackendError, ModelError, NotAvailableError
from ssseg.runtime.frames import resize_rgb
from ssseg.runtime.model import ModelSpec, read_model

ORT_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def prepare(frames, spec: ModelSpec) -> np.ndarray:
    """A list or array of HxWx3 uint8 RGB frames -> uint8 [N, H, W, 3] at the model's size."""
    hw = spec.input_hw
    out = []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise BackendError(f"frame {i} is {frame.dtype} {tuple(frame.shape)}; backends take uint8 HxWx3 RGB frames",
                               fix="decode frames to 8-bit RGB (Pillow: .convert('RGB'))")
        if frame.shape[:2] != hw:
            if spec.data["input"]["resize"] == "none":
                raise BackendError(f"frame {i} is {frame.shape[0]}x{frame.shape[1]}, the model takes {hw[0]}x{hw[1]} "
                                   f"and model.json says not to resize", fix="resize frames before inference")
            frame = resize_rgb(frame, hw)
        out.append(frame)
    if not out:
        raise BackendError("no frames to run", fix="pass at least one frame")
    return np.stack(out)


class Backend:
    """The interface. Subclasses implement ``_load``, ``_infer`` and ``_segment`` on prepared batches whose
    size lies in the model's batch range; this class checks and pads batches (a fixed-batch graph gets its
    batch filled by repeating the last frame; the padding is cut from the results)."""

    name = "?"

    def __init__(self, model_dir: Path | ModelSpec):
        self.spec = model_dir if isinstance(model_dir, ModelSpec) else read_model(model_dir)
        self.precision = "fp32"
        self._loaded = False

    # --- what every backend offers ---
    def infer(self, frames) -> tuple[np.ndarray, np.ndarray | None]:
        batch, n = self._fit(prepare(frames, self.spec))
        labels, conf = self._call(self._infer, batch)
        return labels[:n], None if conf is None else conf[:n]

    def segment(self, frames) -> np.ndarray:
        batch, n = self._fit(prepare(frames, self.spec))
        return self._call(self._segment, batch)[:n]

    def synchronize(self) -> None:
        """Wait for work queued on the device (results of infer/segment are already on the host)."""

    def describe(self) -> dict:
        return {"backend": self.name, "precision": self.precision}

    def timer(self) -> "WallTimer":
        """How benchmarks time one call: a monotonic clock stopped after ``synchronize``."""
        return WallTimer(self.synchronize)

    def load(self) -> "Backend":
        """Open sessions / deserialize engines now instead of on the first call (to keep that out of timings)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    # --- plumbing ---
    def _call(self, fn: Callable, batch: np.ndarray):
        self.load()
        return fn(batch)

    def _fit(self, batch: np.ndarray) -> tuple[np.ndarray, int]:
        lo, _, hi = self.spec.batch_range
        n = len(batch)
        if n > hi:
            raise BackendError(f"batch of {n} frames is above the model's maximum batch {hi}", path=self.spec.root,
                               fix=f"run at most {hi} frames at a time, or re-export with --dynamic-batch 1:{hi}:{n}")
        if n < lo:
            batch = np.concatenate([batch, np.repeat(batch[-1:], lo - n, 0)])
        return batch, n

    def _load(self) -> None:
        raise NotImplementedError

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _segment(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class WallTimer:
    def __init__(self, synchronize: Callable[[], None]):
        self.synchronize = synchronize

    def start(self) -> None:
        self.synchronize()
        self.begin = time.perf_counter()

    def stop(self) -> float:
        self.synchronize()
        return time.perf_counter() - self.begin


class OrtBackend(Backend):
    """ONNX Runtime on ``labeler.onnx`` / ``segmenter.onnx``. Provider: ``provider`` if given, else the best
    available of TensorRT EP, CUDA EP, CPU EP. On GPU providers inputs and outputs go through IO binding."""

    name = "ort"

    def __init__(self, model_dir, provider: str | None = None, threads: int | None = None, precision: str = "fp32"):
        super().__init__(model_dir)
        from ssseg.runtime.ort import import_onnxruntime

        if precision not in self.spec.precisions():
            self.spec.graph("labeler", precision=precision)  # raises: names what the model has and the re-export
        self.precision = precision

        ort = import_onnxruntime()
        available = ort.get_available_providers()
        self.provider = choose_provider(provider, available)
        self.threads = threads or physical_cores()
        self.sessions: dict = {}

    def describe(self) -> dict:
        from ssseg.runtime.ort import import_onnxruntime

        return {**super().describe(), "provider": self.provider, "threads": self.threads,
                "onnxruntime": import_onnxruntime().__version__}

    def _session(self, graph: str):
        if graph not in self.sessions:
            from ssseg.runtime.ort import ort_session

            providers = [self.provider] + (["CPUExecutionProvider"] if self.provider != "CPUExecutionProvider" else [])
            self.sessions[graph] = ort_session(self.spec.graph(graph, precision=self.precision), providers,
                                               self.threads)
        return self.sessions[graph]

    def _load(self) -> None:
        self._session("labeler")

    def _run(self, graph: str, batch: np.ndarray) -> list[np.ndarray]:
        session = self._session(graph)
        try:
            if self.provider == "CPUExecutionProvider":
                return session.run(None, {"image": batch})
            binding = session.io_binding()
            binding.bind_cpu_input("image", batch)
            for out in session.get_outputs():
                binding.bind_output(out.name)
            session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()
        except Exception as e:  # noqa: BLE001 - ORT raises its own types
            raise backend_failure(e, len(batch), self.spec) from None

    def _infer(self, batch):
        out = self._run("labeler", batch)
        return out[0], (out[1] if len(out) > 1 else None)

    def _segment(self, batch):
        return self._run("segmenter", batch)[0]


class TrtBackend(Backend):
    """TensorRT engines listed in model.json (``labeler`` and ``segmenter`` of one precision), refused with
    the rebuild command when built for another TensorRT version or GPU."""

    name = "trt"

    def __init__(self, model_dir, precision: str | None = None):
        super().__init__(model_dir)
        from ssseg.runtime.trt import gpu_info, import_tensorrt

        self.trt, self.cuda = import_tensorrt()
        self.entries = pick_engines(self.spec, precision)
        self.precision = self.entries["labeler"]["precision"]
        self.gpu = gpu_info(self.cuda)
        self.runners: dict = {}

    def describe(self) -> dict:
        return {**super().describe(), "tensorrt": self.trt.__version__, "gpu": self.gpu}

    def _runner(self, graph: str):
        if graph not in self.runners:
            from ssseg.runtime.trt import TrtRunner, check_engine

            entry = self.entries[graph]
            check_engine(entry, self.trt.__version__, self.gpu, self.spec.root)
            self.runners[graph] = TrtRunner(self.spec.root / entry["file"], self.trt, self.cuda)
        return self.runners[graph]

    def _load(self) -> None:
        self._runner("labeler")

    def _infer(self, batch):
        out = self._runner("labeler")({"image": batch})
        return out["labels"], out.get("confidence")

    def _segment(self, batch):
        return self._runner("segmenter")({"image": batch})["logits"]

    def synchronize(self) -> None:
        self.cuda.Context.synchronize()


def pick_engines(spec: ModelSpec, precision: str | None) -> dict[str, dict]:
    """The labeler and segmenter engines of ``precision`` (default: the first labeler engine listed)."""
    labelers = spec.engines("labeler")
    if not labelers:
        raise ModelError("model.json lists no TensorRT engines", path=spec.root,
                         fix=f"build them: ssseg export {spec.data['source']['run']} --out {spec.root} --no-onnx --trt")
    precision = precision or labelers[0]["precision"]
    found = {e["graph"]: e for e in spec.engines() if e["precision"] == precision}
    if "labeler" not in found:
        have = ", ".join(sorted({e["precision"] for e in labelers}))
        raise ModelError(f"no {precision} labeler engine (have: {have})", path=spec.root,
                         fix=f"pick one of those, or add it: {labelers[0]['rebuild'].rsplit('--precision', 1)[0]}"
                             f"--precision {precision}")
    return found


def ort_variant(variant: str | None) -> tuple[str | None, str]:
    """``ort:VARIANT``: a provider (cpu, cuda, tensorrt), a graph precision (fp32, fp16, int8) or both joined
    by '+', e.g. ``ort:int8`` or ``ort:cuda+fp16``."""
    provider, precision = None, "fp32"
    for token in (variant or "").split("+"):
        if token in ("fp32", "fp16", "int8"):
            precision = token
        elif token:
            provider = token
    return provider, precision


def choose_provider(requested: str | None, available: list[str]) -> str:
    if requested:
        full = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                "tensorrt": "TensorrtExecutionProvider"}.get(requested.lower(), requested)
        if full not in available:
            package = ("onnxruntime" if full == "CPUExecutionProvider"
                       else "onnxruntime-gpu (with CUDA/cuDNN, and TensorRT for its EP)")
            raise NotAvailableError(f"ONNX Runtime provider {full} is not available here "
                                    f"(have: {', '.join(available)})",
                                    fix=f"install {package}, or drop --provider")
        return full
    return next((p for p in (*ORT_GPU_PROVIDERS, "CPUExecutionProvider") if p in available), available[0])


def physical_cores() -> int:
    """Cores this process may use; ORT runs best with one intra-op thread per physical core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


OOM_MARKERS = ("out of memory", "failed to allocate", "cudaerrormemoryallocation", "bad_alloc")


def backend_failure(e: Exception, batch: int, spec: ModelSpec) -> BackendError:
    text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    if any(m in str(e).lower() for m in OOM_MARKERS):
        return OutOfMemory(f"out of memory at batch {batch} ({text})", path=spec.root, fix="use a smaller --batch")
    return BackendError(f"inference failed at batch {batch} ({text})", path=spec.root,
                        fix="check the frames and model.json's batch range")


class OutOfMemory(BackendError):
    """The device ran out of memory; callers may retry at a smaller batch."""


def plugin_backend(name: str) -> type[Backend]:
    """A backend another part of ssseg (or another package) provides as an ``ssseg.backends`` entry point: the
    torch backend lives with the graphs it runs (ssseg.export), which import this module, not the other way."""
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="ssseg.backends") if e.name == name]
    if not found:
        raise NotAvailableError(f"no {name} backend is installed (no ssseg.backends entry point {name!r})",
                                fix="reinstall ssseg (pip install -e .), or use --backend ort/trt")
    try:
        return found[0].load()
    except ImportError:
        raise NotAvailableError(f"the {name} backend needs PyTorch, which is not installed here",
                                fix="pip install 'ssseg[train]' (with torch), or use --backend ort/trt") from None


def open_backend(model_dir: Path | ModelSpec, name: str = "auto", variant: str | None = None,
                 run: Path | None = None, say: Callable[[str], None] | None = None,
                 threads: int | None = None) -> Backend:
    """``name`` is trt, ort, torch or auto (trt when TensorRT, pycuda and an engine for this machine are
    there, then ONNX Runtime on a GPU provider, then on the CPU). ``variant``: trt precision, ort provider,
    torch mode (fp16, channels_last, compile, cudagraphs joined by '+')."""
    spec = model_dir if isinstance(model_dir, ModelSpec) else read_model(model_dir)
    if name == "auto":
        try:
            backend = TrtBackend(spec, variant)
            backend._runner("labeler")  # engine present and built for this TensorRT and GPU
            return backend
        except (NotAvailableError, ModelError) as e:
            if say:
                say(f"auto: not TensorRT ({e})")
        return OrtBackend(spec, threads=threads)
    if name == "torch":
        return plugin_backend("torch")(spec, run=run, mode=variant)
    if name == "trt":
        return TrtBackend(spec, variant)
    if name == "ort":
        provider, precision = ort_variant(variant)
        return OrtBackend(spec, provider=provider, threads=threads, precision=precision)
    raise BackendError(f"unknown backend {name!r}", fix="choose trt, ort, torch or auto")
