"""TensorRT engines from the exported ONNX: the builder calls (kept few and obvious: they cannot run on
the machines ssseg is developed on) and the plain code around them that the tests exercise: optimisation
profile shapes, INT8 calibration batching and its cache, the equivalent trtexec command line.

Engines are written as plain TensorRT plans (``trtexec --loadEngine`` loads them as they are); what
they are built from and for goes into model.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ssseg.errors import ExportError
from ssseg.io import atomic_write_bytes, write_json
from ssseg.runtime.frames import batches, load_frame
from ssseg.runtime.trt import TrtApi

INPUT = "image"


def engine_file(graph: str, precision: str) -> str:
    return f"{graph}.{precision}.engine"


def profile_shapes(hw: tuple[int, int], batch_range: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """min/opt/max shapes of the NHWC image input."""
    return {k: (b, hw[0], hw[1], 3) for k, b in zip(("min", "opt", "max"), batch_range)}


def trtexec_command(onnx: str, engine: str, precision: str, hw: tuple[int, int], batch_range: tuple[int, int, int],
                    workspace_mb: int, timing_cache: str | None = None, calib_cache: str | None = None,
                    strongly_typed: bool = False) -> str:
    """The trtexec line that builds the same engine (ssseg's build adds the calibration itself). Strongly typed
    (TensorRT 10+): the precision is the graph's own, so no precision flag."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    if strongly_typed:
        args.append("--stronglyTyped")
    else:
        args += {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"], "best": ["--best"]}[precision]
    if precision in ("int8", "best") and calib_cache:
        args.append(f"--calib={calib_cache}")
    if batch_range[0] != batch_range[2]:
        shapes = profile_shapes(hw, batch_range)
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            args.append(f"{flag}={INPUT}:{'x'.join(map(str, shapes[key]))}")
    args.append(f"--memPoolSize=workspace:{workspace_mb}")
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    return " ".join(args)


def split_frames(paths: list[Path], n_calib: int, n_check: int) -> tuple[list[Path], list[Path], bool]:
    """Calibration frames from the front, check frames from the back: held out from calibration when the
    folder has enough frames. Returns (calibration, check, held_out)."""
    check = paths[-n_check:] if len(paths) > n_check else list(paths)
    rest = paths[: len(paths) - len(check)]
    if rest:
        return rest[:n_calib], check, True
    return paths[:n_calib], check, False


def calibration_key(onnx_sha256: str, frames: list[Path], hw: tuple[int, int], batch: int) -> str:
    """Identifies what a calibration cache was computed from; a cache with another key is not reused."""
    h = hashlib.sha256(f"{onnx_sha256}|{hw}|{batch}".encode())
    for p in frames:
        h.update(f"|{Path(p).resolve()}|{Path(p).stat().st_size}".encode())
    return h.hexdigest()


class CalibrationSource:
    """What an INT8 calibrator does, without TensorRT: uint8 NHWC batches of exactly ``batch`` frames
    (prepared as at inference: decoded, resized with the runtime's resize), uploaded through ``upload``
    (host array -> device pointer), and a cache file that is reused only for the same ``key``."""

    def __init__(self, frames: list[Path], hw: tuple[int, int], batch: int, cache: Path, key: str,
                 upload: Callable[[np.ndarray], int]):
        if len(frames) < batch:
            raise ExportError(f"INT8 calibration needs at least {batch} frames (one batch), got {len(frames)}",
                              fix="pass more frames with --calib-data or lower the batch")
        self.frames, self.hw, self.batch, self.cache, self.key, self.upload = (
            frames, hw, batch, Path(cache), key, upload)
        self.used = 0
        self._batches: Iterator[np.ndarray] = batches((load_frame(p, hw) for p in frames), batch)

    @property
    def n_batches(self) -> int:
        return len(self.frames) // self.batch

    def next_pointers(self, names: list[str]) -> list[int] | None:
        array = next(self._batches, None)
        if array is None:
            return None
        self.used += len(array)
        return [self.upload(np.ascontiguousarray(array)) for _ in names]

    @property
    def _sidecar(self) -> Path:
        return self.cache.with_name(self.cache.name + ".json")

    def read_cache(self) -> bytes | None:
        if not self.cache.is_file() or not self._sidecar.is_file():
            return None
        try:
            if json.loads(self._sidecar.read_text()).get("key") != self.key:
                return None
        except ValueError:
            return None
        return self.cache.read_bytes()

    def write_cache(self, data) -> None:
        atomic_write_bytes(self.cache, bytes(data))
        write_json(self._sidecar, {"key": self.key, "frames": len(self.frames), "batch": self.batch,
                                   "hw": list(self.hw)})


def make_calibrator(trt, source: CalibrationSource):
    """An ``IInt8EntropyCalibrator2`` that delegates to ``source`` (TensorRT 8.6 and 10.x; 11.x removed it)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return source.batch

        def get_batch(self, names):
            return source.next_pointers(names)

        def read_calibration_cache(self):
            return source.read_cache()

        def write_calibration_cache(self, cache):
            source.write_cache(cache)

    return EntropyCalibrator()


def build_engine(trt, api: TrtApi, onnx_path: Path, precision: str, hw: tuple[int, int],
                 batch_range: tuple[int, int, int], workspace_mb: int, timing_cache: Path, calibrator=None) -> bytes:
    """Parse ``onnx_path`` and build a serialized plan. The timing cache is read before and written after,
    so rebuilding (another precision, another graph with the same layers) skips kernel timing."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected the graph: {errors[:300]}", path=onnx_path,
                          fix="report this with the file; the exporter's operator check should have caught it")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for flag in api.builder_flags(precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    shapes = profile_shapes(hw, batch_range)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    if calibrator is not None:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)  # calibration runs at the profile's opt batch
    use_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build the {precision} engine (see its log above)", path=onnx_path,
                          fix="try a larger --workspace-mb or another --precision")
    held = config.get_timing_cache()
    if held is not None:
        atomic_write_bytes(timing_cache, bytes(held.serialize()))
    return bytes(plan)


def use_timing_cache(config, path: Path) -> None:
    """Give the build the timing cache in ``path``; a damaged one, or one from another GPU or TensorRT
    (create_timing_cache returns None, set_timing_cache False), is replaced by a fresh cache rather than
    failing after the build."""
    cache = config.create_timing_cache(path.read_bytes()) if path.is_file() else None
    if cache is None or config.set_timing_cache(cache, ignore_mismatch=False) is False:
        cache = config.create_timing_cache(b"")
        if cache is not None:
            config.set_timing_cache(cache, ignore_mismatch=False)
