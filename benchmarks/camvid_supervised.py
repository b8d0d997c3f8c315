"""Stage-1 (supervised) training of the segmenter on a real dataset at several labeled fractions.

Writes <out>.json and <out>.md. Example (the README's CPU numbers):

    .venv/bin/python benchmarks/camvid_supervised.py --data camvid:../shared/datasets/camvid \
        --fractions 1.0,0.5 --epochs 80 --scale 180x240
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset SPEC, e.g. camvid:PATH")
    p.add_argument("--fractions", default="1.0,0.5")
    p.add_argument("--epochs", type=int, default=None, help="default: the paper's schedule for the dataset")
    p.add_argument("--scale", default=None, help="HxW to resize to (e.g. 180x240 = CamVid at half resolution)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=Path("runs/bench"), help="where the run directories go")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/camvid_supervised"),
                   help="result path stem (.json and .md are written)")
    args = p.parse_args(argv)

    from ssseg.api import train
    from ssseg.config import hw_str, parse_hw
    from ssseg.io import read_jsonl
    from ssseg.train.config import TrainConfig
    from ssseg.train.evaluate import run_eval

    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        run = args.runs / (f"{args.data.split(':')[0]}_f{fraction:g}_"
                           f"{hw_str(parse_hw(args.scale)) if args.scale else 'native'}")
        cfg = TrainConfig(data=args.data, labeled_fraction=fraction, out=run, epochs=args.epochs, scale=args.scale,
                          batch_size=args.batch_size, eval_every=args.eval_every, workers=args.workers,
                          device=args.device, seed=args.seed, resume=(run / "config.json").exists())
        t0 = time.perf_counter()
        train(cfg)
        wall = time.perf_counter() - t0
        result, _ = run_eval(run, None, "val", None, args.device)
        metrics = read_jsonl(run / "metrics.jsonl")
        resolved = TrainConfig(**json.loads((run / "config.json").read_text()))
        rows.append({
            "labeled_fraction": fraction,
            "labeled_images": len((run / "splits" / "labeled.txt").read_text().split()),
            "epochs": resolved.epochs, "batch_size": resolved.batch_size, "lr": resolved.lr,
            "scale": hw_str(resolved.scale) if resolved.scale else "native",
            "seconds_per_epoch_median": statistics.median(m["epoch_s"] for m in metrics),
            "train_images_per_s_median": statistics.median(m["images_per_s"] for m in metrics),
            "wall_s_this_invocation": wall,
            "best_epoch": result["epoch"],
            "val_miou": result["miou"], "val_pixel_acc": result["pixel_acc"],
            "val_per_class_iou": result["per_class_iou"],
            "run_dir": str(run),
        })
    info = machine()
    md = [f"# Stage-1 supervised training: {args.data.split(':')[0]}\n",
          f"Machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads), GPU: {info['gpu']}, "
          f"torch {info['torch']}, commit {info['git_commit']}.\n",
          f"Command: `python benchmarks/camvid_supervised.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
          "| labeled | images | epochs | scale | batch | s/epoch | img/s | val mIoU | val pixel acc |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        md.append(f"| {r['labeled_fraction']:g} | {r['labeled_images']} | {r['epochs']} | {r['scale']} | "
                  f"{r['batch_size']} | "
                  f"{r['seconds_per_epoch_median']:.1f} | {r['train_images_per_s_median']:.1f} | "
                  f"{100 * r['val_miou']:.1f} | {100 * r['val_pixel_acc']:.1f} |")
    names = list(rows[0]["val_per_class_iou"]) if rows else []
    md += ["", "Per-class val IoU (%):", "", "| labeled | " + " | ".join(names) + " |",
           "| --- " * (len(names) + 1) + "|"]
    for r in rows:
        md.append(f"| {r['labeled_fraction']:g} | " + " | ".join(
            "-" if v is None else f"{100 * v:.1f}" for v in r["val_per_class_iou"].values()) + " |")
    js, mdp = write_results(args.out, {"benchmark": "supervised", "data": args.data, "machine": info, "results": rows},
                            "\n".join(md) + "\n")
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
