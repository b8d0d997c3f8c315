"""The model.json of an export, assembled from the job (ssseg.runtime.model reads and validates it)."""

from __future__ import annotations

import platform
from datetime import datetime, timezone

from ssseg.export.engines import merge_engines
from ssseg.export.job import Job
from ssseg.gate import FREE_SOURCES, IGNORE_VALUE
from ssseg.io import sha256_file
from ssseg.runtime.model import MODEL_FORMAT, MODEL_FORMAT_VERSION
from ssseg.versions import __version__, installed_versions


def tool_versions(*extra: str) -> dict[str, str]:
    return {"ssseg": __version__, "python": platform.python_version(),
            **installed_versions("torch", "onnx", "onnxruntime", "onnxslim", *extra)}

def describe(job: Job) -> dict:
    """The model.json of this export."""
    cfg, src = job.cfg, job.sources
    lo, opt, hi = cfg.batch_range
    seg_ckpt, aux_ckpt = src.segmenter_ckpt, job.aux_ckpt
    if job.gate == "net":
        threshold = cfg.threshold if cfg.threshold is not None else src.gate_threshold
        gate = {"available": True, "kind": src.method, "model": aux_ckpt["model"]["name"], "threshold": threshold,
                "ignore_value": IGNORE_VALUE,
                "aux_input": "probs+rgb" if aux_ckpt["model"]["kwargs"].get("with_rgb") else "probs"}
    elif job.gate in FREE_SOURCES:
        gate = {"available": True, "kind": job.gate, "model": None, "threshold": cfg.threshold,
                "ignore_value": IGNORE_VALUE}
    else:
        gate = {"available": False, "kind": None, "threshold": None, "ignore_value": IGNORE_VALUE,
                "reason": "exported with --gate none"}
    if job.calibration is not None:
        gate["thresholds"] = job.calibration["tables"][f"{cfg.target_precision[0]:g}"]
        gate["calibration"] = job.calibration
    source = {
        "run": str(cfg.run.resolve()),
        "segmenter": {"path": str(src.segmenter_path.resolve()), "sha256": sha256_file(src.segmenter_path),
                      "stage": seg_ckpt.get("stage"), "epoch": seg_ckpt.get("epoch"),
                      "val_miou": seg_ckpt.get("best_miou")},
        "aux": None,
    }
    if aux_ckpt is not None:
        trained_against = (src.aux_path.parent / aux_ckpt["segmenter"]).resolve() if aux_ckpt.get("segmenter") else None
        source["aux"] = {"path": str(src.aux_path.resolve()), "sha256": sha256_file(src.aux_path),
                         "val_auroc": aux_ckpt.get("best_auroc"),
                         "trained_against": str(trained_against) if trained_against else None,
                         "trained_against_sha256": aux_ckpt.get("segmenter_sha256")}
    engines, stale = merge_engines((job.previous or {}).get("engines", []), job.engines, job.graphs, job.out)
    if stale:
        job.say(f"note: model.json no longer lists {', '.join(e['file'] for e in stale)}: built from other ONNX "
                f"graphs or missing (files left in place)")
    extra = ("tensorrt", "pycuda") if cfg.trt else ()
    return {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "ssseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": src.classes.to_dict(),
        "input": {"name": "image", "dtype": "uint8", "layout": "NHWC", "color": "RGB", "height": job.hw[0],
                  "width": job.hw[1], "batch": {"min": lo, "opt": opt, "max": hi}, "resize": "bilinear"},
        "normalization": {"in_graph": True, "scale": 255.0, "mean": list(src.normalization[0]),
                          "std": list(src.normalization[1])},
        "segmenter": job.segmenter.to_dict(),
        "graphs": job.graphs,
        "gate": gate,
        "method": src.method,
        "opset": cfg.opset,
        "source": source,
        "tools": tool_versions(*extra),
        "verification": job.verification,
        **({"reduced": job.reduced} if job.reduced else {}),
        "engines": engines,
    }
