"""The paper's CamVid experiment: half of the training images labeled, half unlabeled; --method aux
(stage 1 baseline, stage 2 auxiliary net, stage 3 retrain with gated pseudo-labels). Reports the stage-1 vs
stage-3 val mIoU and the confidence gate (the paper's Tables 3-4) on val. Writes <out>.json and <out>.md.

An interrupted benchmark continues where it stopped (the run resumes; finished stages are skipped).
Example (the README's CPU numbers):

    .venv/bin/python benchmarks/camvid_aux.py --data camvid:../shared/datasets/camvid \
        --scale 180x240 --epochs 50 --aux-epochs 20 --eval-every 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


def stage_seconds(run: Path, stage: str) -> float:
    from ssseg.io import read_jsonl

    return sum(r["epoch_s"] for r in read_jsonl(run / stage / "metrics.jsonl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset SPEC, e.g. camvid:PATH")
    p.add_argument("--fraction", type=float, default=0.5, help="labeled share of the training set")
    p.add_argument("--epochs", type=int, default=None, help="segmenter epochs, stages 1 and 3 (default: the paper's)")
    p.add_argument("--aux-epochs", type=int, default=50)
    p.add_argument("--t-aux", type=float, default=0.9)
    p.add_argument("--scale", default=None, help="HxW to resize to (e.g. 180x240 = CamVid at half resolution)")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--gates", default="0,0.7,0.8,0.9")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=Path("runs/bench"), help="where the run directory goes")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/camvid_aux"), help="result path stem")
    args = p.parse_args(argv)

    from ssseg.api import train
    from ssseg.config import hw_str, parse_hw
    from ssseg.train.config import TrainConfig
    from ssseg.train.evaluate import run_eval, run_gate_eval

    kind = args.data.split(":")[0]
    run = args.runs / f"{kind}_aux_f{args.fraction:g}_{hw_str(parse_hw(args.scale)) if args.scale else 'native'}"
    cfg = TrainConfig(data=args.data, method="aux", labeled_fraction=args.fraction, out=run, epochs=args.epochs,
                      aux_epochs=args.aux_epochs, t_aux=args.t_aux, scale=args.scale, eval_every=args.eval_every,
                      workers=args.workers, device=args.device, seed=args.seed, resume=(run / "config.json").exists())
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    gates = tuple(float(g) for g in args.gates.split(","))
    base, _ = run_eval(run / "stage1" / "best.pt", None, "val", run / "eval_val_stage1.json", args.device)
    semi, _ = run_eval(run / "stage3" / "best.pt", None, "val", run / "eval_val_stage3.json", args.device)
    gate, _ = run_gate_eval(run, None, "val", run / "gate_val.json", gates, device=args.device)
    gate_final, _ = run_gate_eval(run, None, "val", run / "gate_val_stage3.json", gates,
                                  segmenter=run / "stage3" / "best.pt", device=args.device)
    resolved = TrainConfig(**json.loads((run / "config.json").read_text()))
    manifest = json.loads((run / "stage3" / "pseudo" / "manifest.json").read_text())
    result = {
        "benchmark": "aux", "data": args.data, "machine": machine(), "run_dir": str(run),
        "settings": {k: resolved.to_dict()[k] for k in ("labeled_fraction", "epochs", "aux_epochs", "batch_size", "lr",
                                                         "weight_decay", "aux_lr", "aux_weight_decay", "aux_input",
                                                         "t_aux", "stage3_init", "scale", "aug_scales", "seed")},
        "labeled_images": len((run / "splits" / "labeled.txt").read_text().split()),
        "unlabeled_images": manifest["images"],
        "pseudo_kept_share": manifest["kept_share"],
        "stage1_val": {k: base[k] for k in ("miou", "pixel_acc", "per_class_iou", "epoch")},
        "stage3_val": {k: semi[k] for k in ("miou", "pixel_acc", "per_class_iou", "epoch")},
        "gain_miou": semi["miou"] - base["miou"],
        "gate_stage1": {k: gate[k] for k in ("auroc", "ece", "gates", "reliability")},
        "gate_stage3_segmenter": {k: gate_final[k] for k in ("auroc", "ece", "gates")},
        "seconds": {"stage1": stage_seconds(run, "stage1"), "stage2": stage_seconds(run, "stage2"),
                    "stage3_training": stage_seconds(run, "stage3"), "this_invocation": wall},
    }
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    info = result["machine"]
    md = [f"# --method aux on {kind}: {result['labeled_images']} labeled + "
          f"{result['unlabeled_images']} unlabeled images\n",
          f"Machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads), GPU: {info['gpu']}, "
          f"torch {info['torch']}, commit {info['git_commit']}.\n",
          f"Command: `python benchmarks/camvid_aux.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
          f"Settings: {json.dumps(result['settings'])}\n",
          "| model | val mIoU | val pixel acc | training time |", "| --- | --- | --- | --- |",
          f"| stage 1: labeled only | {pct(base['miou'])} | {pct(base['pixel_acc'])} | "
          f"{result['seconds']['stage1'] / 60:.1f} min |",
          f"| stage 3: + pseudo-labels (T_aux {resolved.t_aux:g}, "
          f"{pct(manifest['kept_share'])}% of their pixels kept) | "
          f"{pct(semi['miou'])} | {pct(semi['pixel_acc'])} | {result['seconds']['stage3_training'] / 60:.1f} min |",
          f"\nStage 2 (auxiliary net): {result['seconds']['stage2'] / 60:.1f} min. "
          f"Gain: {100 * result['gain_miou']:+.1f} mIoU.\n",
          f"Confidence gate of the stage-1 segmenter on val (Table 3): AUROC {gate['auroc']:.3f}, "
          f"ECE {pct(gate['ece'])}%\n",
          "| T_aux | kept-pixel mIoU | class semi ratio | selected pixels |", "| --- | --- | --- | --- |"]
    md += [f"| {g['threshold']:g} | {pct(g['kept_miou'])} | {pct(g['class_semi_ratio'])} | {pct(g['selected_share'])} |"
           for g in gate["gates"]]
    names = list(base["per_class_iou"])
    md += ["", "Per class at each threshold, IoU / semi ratio (Table 4):", "",
           "| T_aux | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
    md += [f"| {g['threshold']:g} | "
           + " | ".join(f"{pct(g['per_class'][n]['iou'])} / {pct(g['per_class'][n]['semi_ratio'])}" for n in names)
           + " |" for g in gate["gates"]]
    md += ["", f"The same auxiliary net gating the stage-3 segmenter: AUROC {gate_final['auroc']:.3f}; "
           + ", ".join(f"T {g['threshold']:g}: {pct(g['kept_miou'])} on {pct(g['selected_share'])}%"
                       for g in gate_final["gates"]),
           "", "Per-class val IoU:", "", "| model | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|",
           "| stage 1 | " + " | ".join(pct(v) for v in base["per_class_iou"].values()) + " |",
           "| stage 3 | " + " | ".join(pct(v) for v in semi["per_class_iou"].values()) + " |"]
    js, mdp = write_results(args.out, result, "\n".join(md) + "\n")
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
