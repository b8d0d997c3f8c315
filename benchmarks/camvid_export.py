"""Export parity on real CamVid frames: exports a trained run (by default the README's CamVid --method aux
run) and compares every ONNX graph in ONNX Runtime with PyTorch on the val frames, at each batch size of
the profile. Writes <out>.json and <out>.md with the parity table, graph sizes and export time.

Example (the README's numbers; the run comes from benchmarks/camvid_aux.py):

    .venv/bin/python benchmarks/camvid_export.py --run runs/bench/camvid_aux_f0.5_180x240 \
        --frames ../shared/datasets/camvid/val --input-size 360x480 --dynamic-batch 1:2:4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="run directory of ssseg train")
    p.add_argument("--frames", required=True, type=Path, help="folder of real frames (e.g. camvid/val)")
    p.add_argument("--input-size", default=None, help="HxW (default: the training size)")
    p.add_argument("--dynamic-batch", default="1:2:4")
    p.add_argument("--verify-images", type=int, default=101, help="frames compared (CamVid val has 101)")
    p.add_argument("--model-out", type=Path, default=Path("runs/bench/camvid_export_model"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/camvid_export"))
    args = p.parse_args(argv)

    from ssseg.config import ExportConfig
    from ssseg.export import run_export

    cfg = ExportConfig(run=args.run, out=args.model_out, input_size=args.input_size, dynamic_batch=args.dynamic_batch,
                       calib_data=args.frames, verify_images=args.verify_images)
    t0 = time.perf_counter()
    model_json = run_export(cfg, say=print)
    seconds = time.perf_counter() - t0
    model = json.loads(model_json.read_text())
    sizes = {name: (model_json.parent / g["file"]).stat().st_size for name, g in model["graphs"].items()}
    result = {"machine": machine(), "run": str(args.run), "frames": str(args.frames), "seconds": seconds,
              "input": model["input"], "opset": model["opset"], "graph_bytes": sizes, "tools": model["tools"],
              "verification": model["verification"], "source": model["source"]}
    v = model["verification"]
    rows = []
    for graph, metrics in v["graphs"].items():
        for key, value in metrics.items():
            shown = f"{100 * value:.4f} %" if key.endswith("agreement") else f"{value:.2e}"
            rows.append(f"| {graph} | {key} | {shown} |")
    m = result["machine"]
    md = "\n".join([
        "# Export parity: ONNX Runtime vs PyTorch on CamVid val",
        "",
        f"Run `{args.run}`, {v['source']}, input {model['input']['height']}x{model['input']['width']}, "
        f"batch sizes {', '.join(map(str, v['batch_sizes']))}, opset {model['opset']}; "
        f"{m['cpu']} ({m['cores']} cores), torch {m['torch']}, onnxruntime {model['tools'].get('onnxruntime')}; "
        f"export took {seconds:.0f} s.",
        "",
        "| graph | metric | worst batch (all frames, every batch size) |",
        "|---|---|---|",
        *rows,
        "",
        f"Passed: {v['passed']} (tolerances: {json.dumps(v['tolerances'])}). Graph sizes: "
        + ", ".join(f"{k} {b / 1e6:.1f} MB" for k, b in sizes.items()) + ".",
        "",
    ])
    js, mdp = write_results(args.out, result, md)
    print(f"wrote {js} and {mdp}")
    return 0 if v["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
