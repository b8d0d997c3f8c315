"""Supervised vs --method aux, adversarial, dual-disc, latent and self-train on CamVid with half the training
set labeled: the final segmenter's val mIoU, and each gater's generated-label measurements (`ssseg eval --gate`
at its own default threshold: kept-pixel mIoU, class semi ratio, selected share, AUROC) in one table. latent
and self-train train no gater of their own (they are gated by an auxiliary net trained on them).

Every method uses the same split (seed 0, labeled fraction 0.5), scale, epochs, batch and learning rate. The
supervised and aux rows come from an --method aux run (its stage 1 is exactly --method supervised on that
split); pass it with --aux-run (benchmarks/camvid_aux.py trains one). The other methods are trained here
unless their run directories are finished; self-train takes that run's stage 1 as its own (--from-stage 2
--init: the same supervised training on the same split) and its time includes it. Writes <out>.json and
<out>.md.

Example (the README's numbers):

    .venv/bin/python benchmarks/camvid_methods.py --data camvid:../shared/datasets/camvid --scale 180x240 \\
        --epochs 50 --adv-warmup 12ep --aux-run runs/bench/camvid_aux_f0.5_180x240 --runs runs/bench/methods
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


def gate_row(run: Path, threshold: float, segmenter: Path | None = None) -> dict:
    from ssseg.train.evaluate import run_gate_eval

    result, _ = run_gate_eval(run, None, "val", run / "gate_val_default.json", (threshold,), segmenter=segmenter,
                              device="cpu")
    g = result["gates"][0]
    return {"threshold": threshold, "kept_miou": g["kept_miou"], "class_semi_ratio": g["class_semi_ratio"],
            "selected_share": g["selected_share"], "auroc": result["auroc"], "ece": result["ece"],
            "per_class": g["per_class"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--scale", default="180x240")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--adv-warmup", default="12ep")
    p.add_argument("--aux-run", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=Path("runs/bench/methods"))
    p.add_argument("--methods", default="adversarial,dual-disc,latent,self-train", help="the methods trained here")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_methods")
    args = p.parse_args()

    from ssseg.api import train
    from ssseg.rundir import RunDir
    from ssseg.train.config import TrainConfig

    aux_cfg = json.loads((args.aux_run / "config.json").read_text())
    rows = []
    s1 = json.loads((args.aux_run / "stage1" / "done.json").read_text())
    s3 = json.loads((args.aux_run / "stage3" / "done.json").read_text())
    rows.append({"method": "supervised", "val_miou": s1["best_miou"], "minutes": s1["seconds"] / 60, "gate": None,
                 "run": str(args.aux_run / "stage1")})
    aux_minutes = sum(json.loads((args.aux_run / s / "done.json").read_text())["seconds"]
                      for s in ("stage1", "stage2", "stage3")) / 60
    rows.append({"method": "aux", "val_miou": s3["best_miou"], "minutes": aux_minutes,
                 "gate": gate_row(args.aux_run, RunDir(args.aux_run).gate_threshold), "run": str(args.aux_run)})
    for method in args.methods.split(","):
        run = args.runs / method
        t0 = time.perf_counter()
        staged = method == "self-train"
        final = run / ("stage3" if staged else "") / "done.json"
        if not final.is_file():
            exists = (run / "config.json").is_file()
            cfg = TrainConfig(data=args.data, method=method, labeled_fraction=aux_cfg["labeled_fraction"], out=run,
                              epochs=args.epochs, scale=args.scale, batch_size=aux_cfg["batch_size"], lr=aux_cfg["lr"],
                              weight_decay=aux_cfg["weight_decay"], seed=aux_cfg["seed"],
                              eval_every=aux_cfg["eval_every"], workers=aux_cfg["workers"], device="auto",
                              adv_warmup=args.adv_warmup, resume=exists,
                              **({"from_stage": 2, "init": args.aux_run / "stage1" / "best.pt"}
                                 if staged and not exists else {}))
            train(cfg, say=lambda m: print(m, flush=True))
        done = json.loads(final.read_text())
        seconds = done["seconds"]
        if staged:  # stage 1 is the aux run's (see above), then stages 2 and 3
            seconds = s1["seconds"] + sum(json.loads((run / s / "done.json").read_text())["seconds"]
                                          for s in ("stage2", "stage3"))
        gated = RunDir(run).gater() is not None
        rows.append({"method": method, "val_miou": done["best_miou"], "minutes": seconds / 60,
                     "gate": gate_row(run, RunDir(run).gate_threshold) if gated else None, "run": str(run),
                     "wall_minutes_this_invocation": (time.perf_counter() - t0) / 60})
        print(rows[-1]["method"], rows[-1]["val_miou"], flush=True)

    result = {"machine": machine(), "command": " ".join(sys.argv), "settings": {
        "labeled_fraction": aux_cfg["labeled_fraction"], "scale": args.scale, "epochs": args.epochs,
        "batch_size": aux_cfg["batch_size"], "lr": aux_cfg["lr"], "seed": aux_cfg["seed"],
        "adv_warmup": args.adv_warmup},
        "rows": rows}
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["# Semi-supervised methods on CamVid, half the training set labeled\n",
             f"{result['machine']['cpu']}, torch {result['machine']['torch']}, "
             f"commit {result['machine']['git_commit']}; settings {json.dumps(result['settings'])}.\n",
             "| method | val mIoU (final segmenter) | gater threshold | kept-pixel mIoU | class semi ratio "
             "| selected pixels | AUROC | training time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = r["gate"]
        auroc = "-" if g is None or g["auroc"] is None else f"{g['auroc']:.3f}"
        gate = ("| - | - | - | - | -" if g is None else
                f"| {g['threshold']:g} | {pct(g['kept_miou'])} | {pct(g['class_semi_ratio'])} | "
                f"{pct(g['selected_share'])} | {auroc}")
        lines.append(f"| {r['method']} | {pct(r['val_miou'])} {gate} | {r['minutes']:.1f} min |")
    js, md = write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
