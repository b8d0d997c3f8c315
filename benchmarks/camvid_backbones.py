"""The paper's segmenter against the ImageNet-pretrained ones, supervised, on CamVid's new-drive protocol.

Protocol: benchmarks/camvid_ssl.py's (drive 0006R0 never gives a label; the labeled set is a seeded fraction of
the other drives' 266 train frames; scores on 0006R0 and on CamVid val). Every arm is ``--method supervised`` with
the segmenter's own recipe (the paper's net: SGD at the CamVid paper rate; EfficientNet-Lite: AdamW with the encoder
at a tenth of the rate, ssseg/segmenters.py), the same --steps of --batch-size images, the same augmentation and
seeds. Arms: each --models entry at each --fractions (1 = all 266 frames) and --seeds; ``--variants`` adds fine-tuning
variants of the first pretrained model at the first fraction (VARIANTS: its encoder at a tenth of the decoder's
rate; its encoder's BatchNorm statistics frozen), the recipe decisions of issue 28.

``--cost`` adds what each segmenter costs: parameters, GMACs at 360x480 and 512x1024, and ONNX Runtime CPU FPS of
the exported segmenter and labeler at 360x480 (FP32 and INT8, one intra-op thread, batch 1), all in one run on one
machine, from the first seed's run at the first fraction (exported with ``ssseg export``; INT8 calibrated on 100
CamVid val frames), with the export's INT8 checks.

Runs go to --runs/<model>[-<variant>]_f<fraction>_s<seed>; a finished run is skipped, an interrupted one continues,
and the JSON + markdown are rewritten after every run from every finished run."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from camvid_ssl import build_protocol, finished, score  # noqa: E402
from common import machine, recorded_rows, schedule_args, write_results  # noqa: E402

LABELED_POOL = 266  # the labeled drives' train frames


# fine-tuning variants of the first pretrained segmenter, each against its recipe at the first fraction
VARIANTS = {"encoder-lr-0.1": dict(encoder_lr_mult=0.1), "frozen-bn": dict(freeze_bn=True)}


def run_name(model: str, variant: str, fraction: float, seed: int) -> str:
    return f"{model}{'-' + variant if variant else ''}_f{fraction:g}_s{seed}"


def run_arm(model: str, variant: str, fraction: float, seed: int, args, data: str) -> None:
    from ssseg.api import train
    from ssseg.train.config import TrainConfig

    out = args.runs / run_name(model, variant, fraction, seed)
    per_epoch = max(1, round(fraction * LABELED_POOL) // args.batch_size)
    epochs = math.ceil(args.steps / per_epoch)
    cfg = TrainConfig(data=data, method="supervised", model=model, labeled_fraction=fraction,
                      **VARIANTS.get(variant, {}), out=out, epochs=epochs, batch_size=args.batch_size,
                      scale=args.scale, seed=seed,
                      workers=args.workers, device="auto", eval_every=max(1, epochs // 3),
                      resume=(out / "config.json").is_file(), report=False)
    train(cfg, say=lambda m: print(f"[{out.name}] {m}", flush=True))


def row(model: str, variant: str, fraction: float, seed: int, out: Path, data: str) -> dict:
    done = json.loads((out / "done.json").read_text())
    config = json.loads((out / "config.json").read_text())
    new, val = score(out, data, "test"), score(out, data, "val")
    return {"model": model, "variant": variant, "fraction": fraction, "seed": seed, "steps": done.get("iterations"),
            "new_drive_miou": new["miou"], "val_miou": val["miou"], "new_drive_per_class": new["per_class_iou"],
            "val_per_class": val["per_class_iou"], "minutes": done.get("seconds", 0.0) / 60, "run": str(out),
            "recipe": {k: config.get(k) for k in ("optimizer", "lr", "weight_decay", "encoder_lr_mult", "warmup",
                                                   "freeze_bn")}}


def mean_spread(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{100 * vals[0]:.1f}"
    return f"{100 * statistics.mean(vals):.1f} ± {100 * (max(vals) - min(vals)) / 2:.1f}"


def table(rows: list[dict], models: list[str]) -> str:
    # no training time: runs shared the machine with other work and were paused and resumed (cost() times speed)
    lines = ["| segmenter | labeled | seeds | steps | new-drive mIoU | val mIoU |",
             "| --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["fraction"], r["model"], r["variant"]), []).append(r)
    for (fraction, model, variant), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], models.index(kv[0][1]),
                                                                                  kv[0][2])):
        name = model + (f" ({variant})" if variant else "")
        label = f"all {LABELED_POOL}" if fraction == 1 else f"{fraction:g} ({round(fraction * LABELED_POOL)})"
        lines.append(f"| {name} | {label} | {','.join(str(r['seed']) for r in rs)} | "
                     f"{'/'.join(sorted({str(r['steps']) for r in rs}))} | "
                     f"{mean_spread([r['new_drive_miou'] for r in rs])} | {mean_spread([r['val_miou'] for r in rs])} |")
    return "\n".join(lines)


def per_class(rows: list[dict], models: list[str]) -> str:
    """New-drive IoU per class, mean over seeds, one row per (segmenter, fraction)."""
    if not rows:
        return ""
    names = list(rows[0]["new_drive_per_class"])
    lines = ["| segmenter | labeled | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not r["variant"]:
            groups.setdefault((r["fraction"], r["model"]), []).append(r)
    for (fraction, model), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], models.index(kv[0][1]))):
        cells = [f"{100 * statistics.mean(r['new_drive_per_class'][n] or 0.0 for r in rs):.1f}" for n in names]
        lines.append(f"| {model} | {fraction:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gains(rows: list[dict], models: list[str]) -> list[str]:
    base, out = models[0], []
    for model in models[1:]:
        for fraction in sorted({r["fraction"] for r in rows}):
            pick = lambda m: {r["seed"]: r["new_drive_miou"] for r in rows  # noqa: E731
                              if r["model"] == m and r["fraction"] == fraction and not r["variant"]}
            a, b = pick(base), pick(model)
            seeds = sorted(set(a) & set(b))
            if seeds:
                diffs = [100 * (b[s] - a[s]) for s in seeds]
                out.append(f"- {fraction:g} labeled: {model} minus {base} on the new drive, per seed "
                           f"{', '.join(f'{d:+.1f}' for d in diffs)} (mean {statistics.mean(diffs):+.1f})")
    return out


def cost(models: list[str], args, data_root: Path) -> list[dict]:
    """Parameters, GMACs and ONNX Runtime CPU FPS (segmenter and labeler, FP32 and INT8) of each model's run."""
    import subprocess

    import torch

    from ssseg.models import count_macs, count_parameters, create_model

    fraction = args.fraction_list[0]
    rows = []
    for model in models:
        m = create_model(model, num_classes=11)
        r = {"model": model, "params_m": count_parameters(m) / 1e6,
             "gmacs_360x480": count_macs(m, torch.zeros(1, 3, 360, 480)) / 1e9,
             "gmacs_512x1024": count_macs(m, torch.zeros(1, 3, 512, 1024)) / 1e9}
        run = args.runs / run_name(model, "", fraction, args.seed_list[0])
        if finished(run):
            export = run / "model-bench"
            if not (export / "model.json").is_file():
                cmd = [sys.executable, "-m", "ssseg", "export", str(run), "--out", str(export), "--input-size",
                       "360x480", "--calib-data", str(data_root / "val"), "--calib-images", "100"]
                done = subprocess.run([*cmd, "--precision", "fp32,int8"], capture_output=True, text=True)
                print(done.stdout + done.stderr, flush=True)
                if done.returncode:  # INT8 that does not hold is a result: say it, time FP32 alone
                    (run / "int8-error.txt").write_text(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                                                        else "failed")
                    subprocess.run([*cmd, "--precision", "fp32"], check=True)
            if (run / "int8-error.txt").is_file():
                r["int8_error"] = (run / "int8-error.txt").read_text()
            js = export / "bench.json"
            # one intra-op thread: the figure that least depends on what else this machine runs
            backends = "ort" if "int8_error" in r else "ort,ort:int8"
            subprocess.run([sys.executable, "-m", "ssseg", "bench", str(export), "--backend", backends,
                            "--batch", "1", "--stages", "segmenter,labeler", "--threads", "1",
                            "--iters", str(args.bench_iters), "--warmup", "5", "--json", str(js)], check=True)
            r["bench"] = json.loads(js.read_text())
            reduced = json.loads((export / "model.json").read_text()).get("reduced", [])
            r["int8"] = [{"graph": e["graph"], "form": e["form"], "calibration": e["how"].get("calibration"),
                          "fp32_layers": e["how"].get("fp32_layers", []), "attempts": e["how"].get("attempts"),
                          **{k: e["check"].get(k) for k in ("argmax_agreement", "miou_fp32", "miou", "miou_drop")}}
                         for e in reduced if e["precision"] == "int8"]
        rows.append(r)
    return rows


def cost_table(rows: list[dict]) -> str:
    cases = [(stage, precision) for stage in ("segmenter", "labeler") for precision in ("fp32", "int8")]
    lines = ["| segmenter | parameters | GMACs 360x480 | GMACs 512x1024 | "
             + " | ".join(f"{s} {p.upper()} FPS" for s, p in cases) + " |", "| --- " * (4 + len(cases)) + "|"]
    for r in rows:
        fps = {(x["stage"], x["precision"]): x["fps"] for x in r.get("bench", {}).get("results", [])}
        cells = [f"{fps[c]:.1f}" if c in fps else "-" for c in cases]
        lines.append(f"| {r['model']} | {r['params_m']:.2f}M | {r['gmacs_360x480']:.2f} | {r['gmacs_512x1024']:.2f} | "
                     + " | ".join(cells) + " |")
    checks = [(r["model"], c) for r in rows for c in r.get("int8", []) if c["graph"] == "labeler"]
    if checks:
        lines += ["", "INT8 labelers against their FP32 graph (export's checks: arg-max agreement on held-out val "
                      "frames, mIoU on CamVid val at 360x480):", "",
                  "| segmenter | form | calibration | layers in FP32 | arg-max agreement | val mIoU FP32 | INT8 | "
                  "drop |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for model, c in checks:
            lines.append(f"| {model} | {c['form']} | {c['calibration']} | {len(c['fp32_layers'])} | "
                         f"{100 * c['argmax_agreement']:.2f} % | {100 * c['miou_fp32']:.2f} | {100 * c['miou']:.2f} | "
                         f"{100 * c['miou_drop']:.2f} |")
    lines += [f"\n- {r['model']}: the export refused its INT8 graphs: {r['int8_error']}" for r in rows
              if "int8_error" in r]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camvid", type=Path, required=True, help="CamVid folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--runs", type=Path, default=Path("runs/bench/backbones"))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_backbones")
    p.add_argument("--models", default="dsnet-fast-ss,efficientnet-lite0", help="the first is the baseline")
    p.add_argument("--fractions", default="0.5,0.125,1")
    schedule_args(p)
    p.add_argument("--variants", default="", help=f"comma-separated fine-tuning variants of the first pretrained "
                                                  f"model at the first fraction, every seed: {', '.join(VARIANTS)}")
    p.add_argument("--cost", action="store_true", help="also measure parameters, GMACs and ORT CPU FPS")
    p.add_argument("--bench-iters", type=int, default=30)
    p.add_argument("--report", action="store_true", help="train nothing: rewrite the results from finished runs")
    args = p.parse_args()
    models = [m for m in args.models.split(",") if m]
    args.fraction_list = [float(f) for f in args.fractions.split(",")]
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    data_root = build_protocol(args.camvid, args.runs / "protocol")
    data = f"camvid:{data_root}"
    from ssseg.segmenters import get_spec

    pretrained = [m for m in models if get_spec(m).pretrained]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown --variants {','.join(unknown)} (choose from {', '.join(VARIANTS)})")
    plan = []
    for s in args.seed_list:  # seed-major, so an interrupted benchmark has whole seeds to report
        for f in args.fraction_list:
            plan += [(m, "", f, s) for m in models]
            if f == args.fraction_list[0] and pretrained:
                plan += [(pretrained[0], v, f, s) for v in variants]
    costs: list[dict] = []
    recorded = recorded_rows(args.out, comparable(args), row_key)
    for arm in [] if args.report else plan:
        t0 = time.perf_counter()
        if not finished(args.runs / run_name(*arm)) and arm not in recorded:
            run_arm(*arm, args, data)
            print(f"[{run_name(*arm)}] {time.perf_counter() - t0:.0f} s", flush=True)
        report(plan, models, args, data, costs)
    if args.cost:
        costs = cost(models, args, data_root)
    report(plan, models, args, data, costs)


def row_key(r: dict) -> tuple:
    return r["model"], r["variant"], r["fraction"], r["seed"]


def comparable(args) -> dict:
    """The settings under which two invocations' rows belong in one table."""
    return {"steps": args.steps, "batch_size": args.batch_size, "scale": args.scale}


def report(plan: list[tuple], models: list[str], args, data: str, costs: list[dict]) -> None:
    recorded = recorded_rows(args.out, comparable(args), row_key)  # rows whose run folder is gone stay
    if not costs and recorded:  # nor is the cost measured with them lost by a run without --cost
        costs = json.loads(args.out.with_suffix(".json").read_text()).get("cost", [])
    rows = [row(*arm, args.runs / run_name(*arm), data) if finished(args.runs / run_name(*arm)) else recorded[arm]
            for arm in plan if finished(args.runs / run_name(*arm)) or arm in recorded]
    info = machine()
    result = {"machine": info, "command": " ".join(sys.argv),
              "protocol": {"labeled_drives": ["0001TP", "0016E5"], "new_drive": "0006R0",
                           "labeled_pool": LABELED_POOL, "val": "CamVid val (0016E5, 101 frames)"},
              "settings": {"steps": args.steps, "batch_size": args.batch_size, "scale": args.scale,
                           "seeds": args.seed_list, "fractions": args.fraction_list, "method": "supervised"},
              "rows": rows, "cost": costs}
    md = (f"# CamVid new-drive protocol: the paper's segmenter vs ImageNet-pretrained ones (supervised)\n\n"
          f"`{result['command']}`\n\n{info['cpu']} ({info['cores']} cores), {args.steps} steps of {args.batch_size} "
          f"labeled images per arm at {args.scale}, rounded up to whole epochs (the steps column: equal within a "
          f"labeled fraction), each segmenter with its recipe. mIoU in %, mean ± half the range over seeds."
          f"\n\n{table(rows, models)}\n\n" + "\n".join(gains(rows, models)) +
          "\n\nNew-drive IoU per class (mean over seeds):\n\n" + per_class(rows, models) + "\n" +
          (f"\n## Cost\n\n{cost_table(costs)}\n" if costs else ""))
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
