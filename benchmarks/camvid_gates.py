"""Confidence gates side by side on one CamVid segmenter: every source's AUROC, coverage at 95/97/99 % kept-pixel
accuracy, the class kept least at 97 % and per-class thresholds for a precision target (chosen on val, applied to
both splits), on CamVid val and on the new drive of camvid_ssl.py's protocol (drive 0006R0, the protocol's test
split), plus the labeler's ONNX Runtime CPU speed at 360x480 with each exportable gate against the segmenter.

    .venv/bin/python benchmarks/camvid_gates.py --run runs/bench/ssl/supervised-strong_f0.5_s0 \
        --data camvid:runs/bench/ssl/protocol --aux paper,light,strong-view --aux-epochs 10

RUN is a finished run on that protocol. The free sources (max softmax, margin, entropy) are its segmenter's own;
each --aux variant is an auxiliary net trained for that same segmenter (``--method aux --from-stage 2 --init RUN
--until-stage 2``, resumable, into --runs/<variant>): paper (Table 1), light (--aux-width 0.125) and strong-view
(--aux-strong-view). Speeds use fresh exports (RUN/gates/, VARIANT/gates/) timed one after another in this
process: run it on a quiet machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_results  # noqa: E402

SPLITS = {"holdout": "held-out drive (0001TP)", "val": "CamVid val (0016E5)", "test": "new drive (0006R0)"}
AUX_VARIANTS = {"paper": {}, "light": {"aux_width": 0.125}, "strong-view": {"aux_strong_view": True}}


def train_aux(run: Path, variant: str, root: Path, epochs: int) -> Path:
    """An auxiliary net of ``variant`` for RUN's segmenter (resumes; a finished one is kept)."""
    import json

    from ssseg.api import train
    from ssseg.train.config import TrainConfig

    out = root / variant
    if (out / "stage2" / "done.json").is_file():
        return out
    base = json.loads((run / "config.json").read_text())
    if (out / "config.json").is_file():
        train(TrainConfig(**{**json.loads((out / "config.json").read_text()), "resume": True, "from_stage": None}),
              explicit={"resume"}, say=lambda m: print(f"[{variant}] {m}", flush=True))
        return out
    cfg = TrainConfig(data=base["data"], method="aux", labeled_fraction=base["labeled_fraction"], seed=base["seed"],
                      scale=base["scale"], batch_size=base["batch_size"], out=out, init=run, from_stage=2,
                      until_stage=2, aux_epochs=epochs, workers=0, device="auto", **AUX_VARIANTS[variant])
    train(cfg, explicit={"init", "from_stage"}, say=lambda m: print(f"[{variant}] {m}", flush=True))
    return out


def calib_split_of(run: Path, asked: str) -> str:
    """auto: the drive the run held out of training (--holdout), else val, as export picks."""
    import json

    if asked != "auto":
        return asked
    return "holdout" if json.loads((run / "config.json").read_text()).get("holdout") else "val"


def measure_gates(run: Path, data: str, precision: float, calib: str) -> dict:
    """Each split's gate measures, and the per-class thresholds chosen on the calibration split (as export
    does) applied to the others: on the new drive that is what a user gets."""
    from ssseg.train.evaluate import run_gate_eval

    out = {}
    held = calib_split_of(run, "auto") == "holdout"
    for split in [calib, *(s for s in SPLITS if s != calib and (held or s != "holdout"))]:
        chosen = {k: v["thresholds"] for k, v in out[calib]["target_precision"].items()} if out else None
        result, _ = run_gate_eval(run, data, split, run / f"gates_{split}.json", (0.9,), target_precision=precision,
                                  apply=chosen)
        out[split] = {k: result.get(k) for k in ("segmenter_miou", "sources", "target_precision", "applied")}
    out[calib]["applied"] = {k: {"thresholds": v["thresholds"], "total_coverage": v["total_coverage"],
                                 "kept_pixel_acc": v["kept_pixel_acc"]}
                             for k, v in out[calib]["target_precision"].items()}
    return out


def measure_speed(run: Path, gates: list[str], size: str, iters: int, threads: int | None, precision: float) -> dict:
    from ssseg.config import BenchConfig, ExportConfig
    from ssseg.export import run_export
    from ssseg.runtime.bench import run_bench

    speeds = {}
    for gate in gates:
        model = run / "gates" / gate
        extra = {"target_precision": (precision,)} if gate in ("softmax", "entropy") else {}
        run_export(ExportConfig(run=run, out=model, input_size=size, gate=gate, verify_images=2, **extra),
                   say=lambda *_: None)
        result = run_bench(BenchConfig(model, backends=("ort",), iters=iters, warmup=max(3, iters // 5),
                                       stages=("segmenter", "labeler"), threads=threads), say=lambda *_: None)
        speeds[gate] = {r["stage"]: r["fps"] for r in result["results"]}
    return speeds


def table(gates: dict, speeds: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["| source | split | AUROC | cov. @95 % | cov. @97 % | cov. @99 % | lowest class @97 % | "
             "per-class @P from the calibration split: coverage, precision, never kept | "
             "labeler FPS (x segmenter) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for split, g in gates.items():
        for name, src in g["sources"].items():
            at = {round(100 * a["accuracy"]): a for a in src["at_accuracy"]}
            low = at[97]
            tp = g["applied"][name]
            lost = [c for c, t in zip(g["target_precision"][name]["coverage"], tp["thresholds"]) if t is None]
            auroc = "-" if src["auroc"] is None else f"{src['auroc']:.3f}"
            fps = speeds.get(name, {})
            speed = (f"{fps['labeler']:.1f} ({fps['labeler'] / fps['segmenter']:.2f}x)"
                     if fps.get("labeler") and fps.get("segmenter") else "-")
            lines.append(
                f"| {name} | {SPLITS[split]} | {auroc} | "
                f"{pct(at[95]['coverage'])} | {pct(low['coverage'])} | {pct(at[99]['coverage'])} | "
                f"{low['lowest_class'] or '-'} {pct(low['lowest_share'])} | {pct(tp['total_coverage'])}, "
                f"{pct(tp['kept_pixel_acc'])}, {', '.join(lost) or 'none'} | {speed} |")
    return "\n".join(lines)


def merge(base: dict, variants: dict[str, dict]) -> dict:
    """The free sources of the base run and each variant's auxiliary net, per split, under one roof."""
    for name, g in variants.items():
        for split in base:
            for part in ("sources", "target_precision", "applied"):
                mine = {k: v for k, v in g[split][part].items() if k not in base[split][part]}
                base[split][part].update({f"aux {name}": v for v in mine.values()})
    return base


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a finished run on the new-drive protocol")
    p.add_argument("--data", required=True, help="the protocol's dataset spec, e.g. camvid:runs/bench/ssl/protocol")
    p.add_argument("--precision", type=float, default=0.97, help="the per-class precision target")
    p.add_argument("--calib-split", default="auto", help="where thresholds are chosen: holdout, val; auto: the "
                                                         "run's held-out drive when it has one, else val")
    p.add_argument("--size", default="360x480", help="export size of the speed comparison")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--aux", default="", help=f"auxiliary-net variants to train and compare: "
                                             f"{', '.join(AUX_VARIANTS)} (comma-separated)")
    p.add_argument("--aux-epochs", type=int, default=10)
    p.add_argument("--runs", type=Path, default=Path("runs/bench/gates"))
    p.add_argument("--no-speed", action="store_true", help="skip the exports and speed measurements")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_gates")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    variants = {v: train_aux(args.run, v, args.runs, args.aux_epochs) for v in args.aux.split(",") if v}
    calib = calib_split_of(args.run, args.calib_split)
    gates = merge(measure_gates(args.run, args.data, args.precision, calib),
                  {v: measure_gates(r, args.data, args.precision, calib) for v, r in variants.items()})
    speeds = {}
    if not args.no_speed:
        speeds = measure_speed(args.run, ["softmax", "entropy"], args.size, args.iters, args.threads, args.precision)
        for v, r in variants.items():
            speeds[f"aux {v}"] = measure_speed(r, ["net"], args.size, args.iters, args.threads, args.precision)["net"]
    result = {"machine": machine(), "command": " ".join(sys.argv), "run": str(args.run), "data": args.data,
              "precision": args.precision, "calib_split": calib, "size": args.size, "aux_epochs": args.aux_epochs,
              "variants": {v: str(r) for v, r in variants.items()}, "gates": gates, "speeds": speeds}
    md = (f"# Confidence gates side by side\n\n`{result['command']}`\n\n{machine()['cpu']}; run {args.run}; "
          f"per-class thresholds for precision {args.precision:g} chosen on {SPLITS[calib]} (as export does) and "
          f"applied to every split; labeler speed with ONNX Runtime on the CPU at {args.size}, batch 1.\n\n"
          f"{table(gates, speeds)}\n")
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
