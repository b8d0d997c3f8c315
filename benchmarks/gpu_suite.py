"""PyTorch on one GPU, every inference mode `ssseg bench` offers, in one run: eager FP32, FP16, channels_last,
CUDA graphs and torch.compile (and their FP16 combinations), for the segmenter and the labeler at 512x1024 and
360x480, batch 1 and 8. TensorRT is not installed on the lent GPU machines, so it is not in this suite.

    python benchmarks/gpu_suite.py --run RUN            # about 8 minutes on an H100/H200

RUN is a finished run (exported here at both sizes into --models). Writes JSON + markdown (FPS per mode,
size, batch, stage; speed-up over eager FP32). Each mode is one `ssseg bench` case; one process times them
all, one after another, so they share the GPU's state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

MODES = ["torch", "torch:fp16", "torch:channels_last", "torch:fp16+channels_last", "torch:fp16+cudagraphs",
         "torch:fp16+channels_last+compile"]
SIZES = ["512x1024", "360x480"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--models", type=Path, default=Path("runs/bench/gpu_models"))
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_suite")
    args = p.parse_args()

    from ssseg.config import BenchConfig, ExportConfig
    from ssseg.export import run_export
    from ssseg.runtime.bench import run_bench

    rows = []
    for size in SIZES:
        model = args.models / size
        if not (model / "model.json").is_file():  # the graphs are not timed here; model.json sizes the inputs
            run_export(ExportConfig(run=args.run, out=model, input_size=size, dynamic_batch="1:8:8", verify=False,
                                    threshold=0.9))
        report = run_bench(BenchConfig(model=model, backends=",".join(MODES), batch="1,8", iters=args.iters,
                                       stages="segmenter,labeler", run=args.run, compare=True))
        speedup = {(c["backend"], c["stage"], c["batch"]): c["speedup_vs_torch_eager_fp32"]
                   for c in report["compare"]}
        rows += [{"size": size, **r, "speedup": speedup.get((r["backend"], r["stage"], r["batch"]))}
                 for r in report["results"]]
    info = machine()
    result = {"machine": info, "command": " ".join(sys.argv), "rows": rows}
    lines = [f"# PyTorch inference modes on {info.get('gpu')}\n", f"`{result['command']}`\n",
             "| size | stage | batch | mode | FPS | x eager FP32 |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        speedup = f"{r['speedup']:.2f}" if r["speedup"] is not None else "-"
        lines.append(f"| {r['size']} | {r['stage']} | {r['batch']} | {r['backend']} | {r['fps']:.1f} | {speedup} |")
    write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
