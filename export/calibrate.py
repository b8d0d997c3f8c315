"""--target-precision: the exported labeler's per-class thresholds, calibrated on the run's labeled split."""

from __future__ import annotations

import time

import torch

from ssseg.config import hw_str
from ssseg.errors import ExportError
from ssseg.export.job import Job


def calibrate_gate(job: Job) -> dict:
    """--target-precision: the labeler's own confidence (as exported, at the export size) on the run's labeled
    --calib-split, and per predicted class the lowest threshold at which its kept pixels reach each precision
    (ssseg.gate). Classes that reach it nowhere are named: they are never kept."""
    from ssseg.calibration import SourceCounts, score_logit
    from ssseg.gate import per_class_thresholds
    from ssseg.runtime.frames import resize_labels, resize_rgb

    cfg, src = job.cfg, job.sources
    if job.gate == "none":
        raise ExportError("--target-precision needs a confidence source, and this export is ungated", path=cfg.run,
                          fix="choose --gate softmax (or margin, entropy; net when the run has a confidence net)")
    try:
        ds = job.open_calib_split()
    except Exception as e:  # noqa: BLE001 - the dataset may have moved or lack the split
        raise ExportError(f"cannot open the {job.calib_split} split of {src.config.get('data')} to calibrate "
                          f"({str(e).splitlines()[0][:100]})", path=cfg.run,
                          fix="restore the dataset, name another labeled split with --calib-split, or set a "
                              "fixed --threshold T") from None
    t0 = time.perf_counter()
    labeler = job.modules()["labeler"]
    names = src.classes.names
    counts = SourceCounts(len(names), ("gate",), torch.device("cpu"))
    with torch.no_grad():
        for i in range(len(ds)):
            image, label = ds.load(i)
            labels, conf = labeler(torch.from_numpy(resize_rgb(image, job.hw)[None].copy()))  # PIL gives read-only
            counts.add({"gate": score_logit(conf)}, labels.long(), torch.from_numpy(resize_labels(label, job.hw)[None]))
    joint = counts.joint_of("gate")
    results = {f"{p:g}": per_class_thresholds(joint, p, names) for p in cfg.target_precision}
    first = results[f"{cfg.target_precision[0]:g}"]
    job.say(f"calibrated the {job.gate} gate on {len(ds)} {job.calib_split} images at {hw_str(job.hw)} in "
            f"{time.perf_counter() - t0:.0f} s: at precision {first['precision']:g} per class it keeps "
            f"{100 * first['total_coverage']:.1f} % of pixels"
            + (f"; never kept: {', '.join(first['unreachable'] + first['unmeasured'])}"
               if first["unreachable"] or first["unmeasured"] else ""))
    return {"split": job.calib_split, "images": len(ds), "size": list(job.hw), "target_precision": first["precision"],
            "coverage": first["coverage"], "unreachable": first["unreachable"], "unmeasured": first["unmeasured"],
            "total_coverage": first["total_coverage"], "kept_pixel_acc": first["kept_pixel_acc"],
            "tables": {p: r["thresholds"] for p, r in results.items()},
            "by_precision": {p: {k: r[k] for k in ("coverage", "unreachable", "unmeasured", "total_coverage",
                                                   "kept_pixel_acc")} for p, r in results.items()}}
