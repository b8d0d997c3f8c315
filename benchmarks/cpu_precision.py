"""FP32 vs FP16 vs INT8 in ONNX Runtime on the CPU: the graphs ``ssseg export --precision fp32,fp16,int8``
writes, on CamVid val frames at the model's size. Per graph (segmenter, labeler) and form (FP32, FP16, INT8
S8S8 as TensorRT takes it, INT8 U8S8 as ONNX Runtime's x86 kernels want it): frames per second (batch 1, timed
round-robin in one process so every form sees the same machine state), arg-max and gate agreement with FP32,
and val mIoU.

    .venv/bin/ssseg export RUN --out runs/bench/models/paper-sup-q --precision fp32,fp16,int8 \\
        --calib-data CAMVID/train --calib-images 64
    .venv/bin/python benchmarks/cpu_precision.py --model runs/bench/models/paper-sup-q --camvid CAMVID

Run it on a quiet machine: the speeds are wall-clock."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

FORMS = ["fp32", "fp16", "s8s8", "u8s8"]


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in have]
    except OSError:
        pass
    return []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="model directory exported with --precision fp32,fp16,int8")
    p.add_argument("--camvid", type=Path, required=True, help="CamVid folder (val/, valannot/, train/)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: the cores)")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds; each runs every graph on --frames frames")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_precision")
    args = p.parse_args()

    from ssseg.data import open_dataset
    from ssseg.gate import applied, kept
    from ssseg.metrics import confusion, scores
    from ssseg.runtime.backends import physical_cores
    from ssseg.runtime.frames import resize_labels, resize_rgb
    from ssseg.runtime.model import read_model
    from ssseg.runtime.ort import ort_session

    model = read_model(args.model)
    hw, names = model.input_hw, list(model.classes.names)
    threads = args.threads or physical_cores()
    val = open_dataset(f"camvid:{args.camvid}", "val")
    pairs = [val.load(i) for i in range(len(val))]
    frames = [resize_rgb(image, hw) for image, _ in pairs]
    labels = [resize_labels(label, hw) for _, label in pairs]
    keep_at = applied(model.gate.choose())

    graphs = {(g, "fp32"): model.graph(g) for g in ("segmenter", "labeler")}
    for r in model.data.get("reduced", []):
        graphs[(r["graph"], r.get("form", r["precision"]))] = model.root / r["file"]
    graphs = dict(sorted(graphs.items(), key=lambda kv: (kv[0][0] != "segmenter", FORMS.index(kv[0][1]))))
    sessions = {k: ort_session(path, ["CPUExecutionProvider"], threads) for k, path in graphs.items()}

    # accuracy: every val frame through every graph
    outputs = {k: [s.run(None, {"image": f[None]}) for f in frames] for k, s in sessions.items()}
    rows = []
    for (graph, precision), outs in outputs.items():
        ref = outputs[(graph, "fp32")]
        if graph == "segmenter":
            am = [o[0].argmax(1)[0] for o in outs]
            am_ref = [o[0].argmax(1)[0] for o in ref]
        else:
            am, am_ref = [o[0][0] for o in outs], [o[0][0] for o in ref]
        row = {"graph": graph, "precision": precision, "file": graphs[(graph, precision)].name,
               "argmax_agreement": float(np.mean([(a == b).mean() for a, b in zip(am, am_ref)]))}
        conf = sum(confusion(a, lab, len(names)) for a, lab in zip(am, labels))
        row["val_miou"] = scores(conf, names)["miou"]
        if graph == "labeler" and len(outs[0]) > 1 and keep_at is not None:
            row["gate_agreement"] = float(np.mean([(kept(o[1][0], keep_at, a) == kept(r[1][0], keep_at, b)).mean()
                                                   for a, b, o, r in zip(am, am_ref, outs, ref)]))
        rows.append(row)

    # speed: round-robin over the graphs, the best round of each (the least disturbed)
    x = [f[None] for f in frames[: args.frames]]
    best = {k: float("inf") for k in sessions}
    for k, s in sessions.items():
        s.run(None, {"image": x[0]})
    for _ in range(args.rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            for f in x:
                s.run(None, {"image": f})
            best[k] = min(best[k], (time.perf_counter() - t0) / len(x))
    for row in rows:
        row["fps"] = 1.0 / best[(row["graph"], row["precision"])]
        row["speedup"] = best[(row["graph"], "fp32")] / best[(row["graph"], row["precision"])]

    info = {**machine(), "cpu_flags": cpu_flags(), "ort_threads": threads}
    result = {"machine": info, "command": " ".join(sys.argv), "model": str(args.model), "size": list(hw),
              "val_frames": len(frames), "rows": rows,
              "export_checks": [{k: r.get(k) for k in ("graph", "precision", "form", "check")}
                                for r in model.data["reduced"]]}
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    lines = [f"# ONNX Runtime on the CPU: FP32 vs FP16 vs INT8\n\n`{result['command']}`\n",
             f"{info['cpu']} ({', '.join(info['cpu_flags']) or 'no AVX2'}), {threads} ONNX Runtime thread(s), "
             f"batch 1 at {hw[0]}x{hw[1]}, {len(frames)} CamVid val frames for accuracy; best of {args.rounds} rounds "
             f"of {len(x)} frames for speed.\n",
             "| graph | form | FPS | x FP32 | arg-max agreement % | gate agreement % | val mIoU |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['precision']} | {r['fps']:.2f} | {r['speedup']:.2f} | "
                     f"{pct(r['argmax_agreement'])} | {pct(r.get('gate_agreement'))} | {100 * r['val_miou']:.2f} |")
    write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
