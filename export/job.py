"""One export's state: the run's resolved sources, the export size, the frames its checks use, the gate, and what
the stages have written so far (graphs, reduced graphs, engines, verification)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ssseg.checkpoint import checkpoint_segmenter
from ssseg.config import ExportConfig, hw_str
from ssseg.data import HOLDOUT, open_split
from ssseg.errors import ConfigError, ExportError, ModelError
from ssseg.export.graphs import build_graphs
from ssseg.export.sources import Sources, resolve_sources, training_size
from ssseg.gate import FREE_SOURCES
from ssseg.runtime.frames import load_frame, readable_images
from ssseg.runtime.model import MODEL_FILE, pick_reduced, read_model
from ssseg.segmenters import nearest_input


class Job:
    """One export: the resolved sources, sizes and frames, and what has been written so far."""

    def __init__(self, cfg: ExportConfig, say: Callable[[str], None]):
        self.cfg, self.say = cfg, say
        self.sources: Sources = resolve_sources(cfg.run, cfg.segmenter)
        self.segmenter = checkpoint_segmenter(self.sources.segmenter_ckpt, self.sources.segmenter_path)
        self.hw = self._input_size()
        self.out: Path = cfg.out
        self.staging = self.out / f".staging-{os.getpid()}"
        self.frame_paths: list[Path] = []
        if cfg.calib_data is not None:
            self.frame_paths, bad = readable_images(cfg.calib_data, "--calib-data folder")
            if bad:
                say(f"warning: {len(bad)} unreadable image(s) in {cfg.calib_data} left out, e.g. {bad[0][0].name}")
        self.previous = self._previous_model()
        self.gate = self._gate()
        self.calib_split = self._calib_split()
        self.calibration: dict | None = None  # --target-precision's tables, from calibrate_gate
        self.graphs: dict[str, dict] = {}
        self.reduced: list[dict] = []  # model.json's reduced-precision graphs
        self.reference = None  # FP32 outputs the reduced graphs are checked against (export_reduced)
        self.engines: list[dict] = []
        self.verification: dict | None = None
        self.trt = self.cuda = self.trt_api = self.gpu = self.upload = None  # set by export/engines.py prepare_trt

    def onnx_path(self, graph: str) -> Path:
        """The graph this export wrote (staged), or with --no-onnx the one already in MODEL_DIR."""
        staged = self.staging / self.graphs[graph]["file"]
        return staged if staged.is_file() else self.out / self.graphs[graph]["file"]

    def onnx_source(self, graph: str, precision: str) -> tuple[Path, str]:
        """(path, sha256) of the ONNX graph of ``graph`` in ``precision`` that an engine is built from."""
        if precision == "fp32":
            return self.onnx_path(graph), self.graphs[graph]["sha256"]
        entry = pick_reduced(self.reduced, graph, precision, "tensorrt")
        if entry is None:
            raise ExportError(f"TensorRT {self.trt.__version__} builds {precision} engines from "
                              f"{graph}.{precision}.onnx, which this model does not have", path=self.out,
                              fix=f"export it in the same run: drop --no-onnx and keep {precision} in --precision")
        staged = self.staging / entry["file"]
        return (staged if staged.is_file() else self.out / entry["file"]), entry["sha256"]

    def _input_size(self) -> tuple[int, int]:
        """--input-size as given, else the training size moved to the nearest one the segmenter accepts."""
        multiple = self.segmenter.input_multiple
        if self.cfg.input_size is not None:
            if any(v % multiple for v in self.cfg.input_size):
                raise ConfigError(f"--input-size {hw_str(self.cfg.input_size)} is not a multiple of {multiple}",
                                  fix=f"pass e.g. {hw_str(nearest_input(self.cfg.input_size, multiple))} "
                                      f"({self.segmenter.name}'s graphs and TensorRT kernels want multiples of "
                                      f"{multiple})")
            return self.cfg.input_size
        hw = training_size(self.sources)
        if any(v % multiple for v in hw):
            near = nearest_input(hw, multiple)
            self.say(f"exporting at {hw_str(near)}: the training size {hw_str(hw)} is not a multiple of {multiple} "
                     f"({self.segmenter.name}); pass --input-size to choose another")
            return near
        return hw

    def _previous_model(self) -> dict | None:
        if not (self.out / MODEL_FILE).is_file():
            return None
        try:
            data = read_model(self.out).data
        except ModelError:
            return None
        if Path(data["source"]["run"]).resolve() != self.cfg.run.resolve():
            raise ExportError(f"holds the export of another run ({data['source']['run']})", path=self.out,
                              fix="choose another --out, or move that model directory away first")
        return data

    def _gate(self) -> str:
        """What gates the labeler: "net" (the run's confidence net), a free source, or "none"."""
        src, gate = self.sources, self.cfg.gate
        if gate == "net" and src.aux_path is None:
            raise ExportError(f"--gate net, but the run has no confidence net ({src.no_aux_reason})", path=self.cfg.run,
                              fix=f"finish it (ssseg train --resume --out {self.cfg.run}) or train one, or choose "
                                  "--gate softmax (or margin, entropy), the default")
        return gate

    def _calib_split(self) -> str:
        """--calib-split auto: the drive training held out (--holdout) when there is one, else val."""
        if self.cfg.calib_split != "auto":
            return self.cfg.calib_split
        return HOLDOUT if self.sources.config.get("holdout") else "val"

    def open_calib_split(self):
        return open_split(self.sources.config["data"], self.calib_split, self.sources.config.get("holdout", ()))

    @property
    def aux_ckpt(self) -> dict | None:
        """The confidence net that goes into the graphs: only when it gates."""
        return self.sources.aux_ckpt if self.gate == "net" else None

    # --- the torch modules -----------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return build_graphs(self.sources.segmenter_ckpt, self.aux_ckpt, *self.sources.normalization,
                            str(self.sources.segmenter_path), free=self.gate if self.gate in FREE_SOURCES else None)

    def check_frames(self) -> tuple[np.ndarray, str, bool]:
        """Frames for parity checks: the last --verify-images of --calib-data (held out from INT8
        calibration when there are enough), else synthetic road scenes."""
        n = self.cfg.verify_images
        if self.frame_paths:
            from ssseg.export.tensorrt import split_frames

            _, check, held_out = split_frames(self.frame_paths, self.cfg.calib_images, n)
            return (np.stack([load_frame(p, self.hw) for p in check]), f"{len(check)} frames of {self.cfg.calib_data}",
                    held_out)
        from ssseg.data.synthetic import render_scene

        frames = [render_scene(1234, "val", i, self.hw)[0] for i in range(n)]
        return np.stack(frames), f"{n} synthetic frames (no --calib-data)", True
