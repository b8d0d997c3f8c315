"""The PyTorch model as a runtime backend: the reference every other backend is compared with. It needs torch,
so it lives beside the graphs it runs (the very modules export traced, ``ssseg.export.graphs``) and not in
``ssseg.runtime``, which finds it as the ``torch`` entry point of the ``ssseg.backends`` group (pyproject.toml)
and so never imports it by name; it implements the same interface (``ssseg.runtime.backends.Backend``).

Modes (``mode``, joined by '+'): eager FP32 by default; ``fp16`` (autocast) and ``channels_last`` and
``cudagraphs`` (one captured graph per batch size) on CUDA; ``compile`` (torch.compile) anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.checkpoint import load_checkpoint, normalization
from ssseg.errors import BackendError, ModelError
from ssseg.export.graphs import build_graphs
from ssseg.export.sources import resolve_sources
from ssseg.gate import FREE_SOURCES
from ssseg.io import sha256_file
from ssseg.runtime.backends import Backend, OutOfMemory
from ssseg.runtime.model import ModelSpec

MODES = ("fp16", "channels_last", "compile", "cudagraphs")
CUDA_ONLY = ("fp16", "channels_last", "cudagraphs")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model_dir: Path | ModelSpec, run: Path | None = None, mode: str | None = None,
                 device: str = "auto"):
        super().__init__(model_dir)
        self.modes = tuple(m for m in (mode or "").split("+") if m)
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise BackendError(f"unknown torch mode {'+'.join(unknown)}", fix=f"combine {', '.join(MODES)} with '+'")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        needs_cuda = [m for m in self.modes if m in CUDA_ONLY]
        if needs_cuda and self.device.type != "cuda":
            raise BackendError(f"torch mode {'+'.join(needs_cuda)} needs a CUDA device", fix="drop it on the CPU")
        self.precision = "fp16" if "fp16" in self.modes else "fp32"
        self.run = Path(run) if run is not None else None
        self.graphs: dict[str, torch.nn.Module] = {}
        self._captured: dict[tuple[str, int], tuple] = {}

    def describe(self) -> dict:
        d = {**super().describe(), "mode": "+".join(self.modes) or "eager", "device": str(self.device),
             "torch": torch.__version__}
        if self.device.type == "cuda":
            d["gpu"] = torch.cuda.get_device_name(self.device)
        return d

    def _checkpoints(self) -> tuple[dict, dict | None, str]:
        if self.run is not None:
            src = resolve_sources(self.run)
            return src.segmenter_ckpt, src.aux_ckpt, str(src.segmenter_path)
        source = self.spec.data["source"]
        ckpts = []
        for part in ("segmenter", "aux"):
            entry = source.get(part)
            if entry is None:
                ckpts.append(None)
                continue
            path = Path(entry["path"])
            if not path.is_file():
                raise ModelError(f"the {part} checkpoint model.json names is not here", path=path,
                                 fix="pass --run RUN_DIR to load the weights from a run directory")
            if sha256_file(path) != entry["sha256"]:
                raise ModelError(f"the {part} checkpoint changed since this model was exported", path=path,
                                 fix="re-export, or pass --run RUN_DIR to measure the run's current weights")
            ckpts.append(load_checkpoint(path))
        return ckpts[0], ckpts[1], source["segmenter"]["path"]

    def _load(self) -> None:
        seg, aux, where = self._checkpoints()
        kind = self.spec.data["gate"].get("kind") if self.spec is not None else None
        free = kind if kind in FREE_SOURCES else None  # gated by the segmenter's own softmax, as the labeler graph
        graphs = build_graphs(seg, None if free else aux, *normalization(seg), where, free=free)
        for name, module in graphs.items():
            module = module.to(self.device)
            if "channels_last" in self.modes:
                module = module.to(memory_format=torch.channels_last)
            if "compile" in self.modes:
                module = torch.compile(module)
            self.graphs[name] = module

    def _forward(self, graph: str, batch: np.ndarray):
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, torch.float16, enabled="fp16" in self.modes):
                if "cudagraphs" in self.modes:
                    return self._replay(graph, x)
                return self.graphs[graph](x)
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemory(f"CUDA out of memory at batch {len(batch)} ({str(e).splitlines()[0][:120]})",
                              fix="use a smaller --batch") from None

    def _replay(self, graph: str, x: torch.Tensor):
        """CUDA graphs: capture once per (graph, batch) on a static input buffer, then copy in and replay."""
        key = (graph, x.shape[0])
        if key not in self._captured:
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm up kernels and allocator outside the capture
                    self.graphs[graph](static_in)
            torch.cuda.current_stream().wait_stream(stream)
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph):
                static_out = self.graphs[graph](static_in)
            self._captured[key] = (cuda_graph, static_in, static_out)
        cuda_graph, static_in, static_out = self._captured[key]
        static_in.copy_(x)
        cuda_graph.replay()
        return static_out

    def _infer(self, batch):
        out = self._forward("labeler", batch)
        if isinstance(out, tuple):
            return out[0].cpu().numpy(), out[1].float().cpu().numpy()
        return out.cpu().numpy(), None

    def _segment(self, batch):
        return self._forward("segmenter", batch).float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timer(self):
        if self.device.type != "cuda":
            return super().timer()
        return CudaEventTimer()


class CudaEventTimer:
    """Elapsed GPU time between two CUDA events around the timed call."""

    def start(self) -> None:
        self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.begin.record()

    def stop(self) -> float:
        self.end.record()
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1000.0
