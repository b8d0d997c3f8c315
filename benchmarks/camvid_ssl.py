"""Semi-supervised vs supervised on CamVid's new-drive protocol: does unlabeled footage of a drive make the
segmenter better on that drive?

Protocol (issue 16): drive 0006R0 (101 of CamVid's train frames) never gives a label. The labeled set is a
seeded fraction (1/8, 1/2) of the other drives' 266 train frames; the rest of them, and 0006R0's images given as
``--unlabeled`` footage, are the unlabeled data. Scores: mIoU on 0006R0's labels (the new drive) and on CamVid val
(drive 0016E5, which the labeled drives include) beside it. Every arm runs the same number of optimisation steps
(--steps, batches of --batch-size labeled images), so a gain is not bought with more steps.

Arms: the core grid, with --seeds: supervised with strong augmentation (--strong-aug, the fair control) and
--method weak-strong with its default class-balanced selection. Around it, the first seed only: supervised with
weak augmentation, weak-strong with max-softmax selection, the paper's --method aux (stage 1 and stage 3 each at
--steps, stage 3's epochs counted over labeled + pseudo-labeled images), weak-strong selecting with that aux
run's confidence net, and supervised on all 266 labeled-drive frames.
Recipe variants (TUNING, only when named in --arms, with every seed of --seeds): weak-strong with the teacher
started after half of the steps, and with the unlabeled losses at half weight.

--model picks the segmenter of every arm (default: ssseg's default, the ImageNet-pretrained EfficientNet-Lite0,
each with its own recipe); the paper's net from scratch is --model dsnet-fast-ss (its results:
benchmarks/results/camvid_ssl_dsnet.md). Runs go to --runs/<arm>_f<fraction>_s<seed>; a finished run is skipped,
an interrupted one continues (--resume), and the JSON + markdown are rewritten after every run from every finished
run of the grid, so the benchmark can run in pieces, and several processes (--arms/--fractions/--seeds,
--threads 1 each) can share the two cores."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, recorded_rows, schedule_args, write_results  # noqa: E402

from ssseg.segmenters import DEFAULT_SEGMENTER  # noqa: E402

NEW_DRIVE = "0006R0"
CORE = ("supervised-strong", "weak-strong")
AROUND = ("supervised-weak", "weak-strong-softmax", "aux", "weak-strong-aux", "supervised-all")
# recipe variants of weak-strong for the pretrained segmenter (issue 29), run with --arms and --seeds as asked:
# a teacher started later (after half of the steps, not a quarter), and unlabeled pixels weighing half
TUNING = ("weak-strong-late", "weak-strong-half")
ARMS = {  # arm -> (method, extra options)
    "supervised-strong": ("supervised", {"strong_aug": True}),
    "weak-strong": ("weak-strong", {"select": "class-balanced"}),
    "supervised-weak": ("supervised", {}),
    "weak-strong-softmax": ("weak-strong", {"select": "softmax"}),
    "aux": ("aux", {}),
    "weak-strong-aux": ("weak-strong", {"select": "aux"}),
    "supervised-all": ("supervised", {}),
    "weak-strong-late": ("weak-strong", {"select": "class-balanced", "unlabeled_warmup": 0.5}),
    "weak-strong-half": ("weak-strong", {"select": "class-balanced", "lambda_u": 0.5}),
}
# the options of a method that a row records, so a table never mixes runs of different method settings
ARM_OPTIONS = {"supervised": ("strong_aug",),
               "weak-strong": ("select", "select_threshold", "min_class_share", "lambda_u", "ema_decay",
                               "unlabeled_warmup"),
               "aux": ("t_aux", "strong_aug", "stage3_epochs")}


def build_protocol(camvid: Path, root: Path) -> Path:
    """A CamVid-layout folder of links: train = the labeled drives, val = CamVid val, test = drive 0006R0."""
    for split, source, keep in (("train", "train", lambda n: not n.startswith(NEW_DRIVE)), ("val", "val", None),
                                ("test", "train", lambda n: n.startswith(NEW_DRIVE))):
        for sub, src in ((split, source), (f"{split}annot", f"{source}annot")):
            folder = root / sub
            folder.mkdir(parents=True, exist_ok=True)
            for f in sorted((camvid / src).iterdir()):
                if (keep is None or keep(f.name)) and not (folder / f.name).exists():
                    try:
                        (folder / f.name).symlink_to(f.resolve())
                    except FileExistsError:  # another process of the grid linked it first
                        pass
    return root


def run_arm(arm: str, fraction: float, seed: int, args, data: str, footage: Path, runs: Path) -> dict:
    from ssseg.api import train
    from ssseg.train.config import TrainConfig

    method, extra = ARMS[arm]
    if arm == "weak-strong-aux":
        extra = {**extra, "select_gater": runs / f"aux_f{fraction:g}_s{seed}"}
    frac = 1.0 if arm == "supervised-all" else fraction
    labeled = round(frac * 266)
    per_epoch = max(1, labeled // args.batch_size)
    epochs = math.ceil(args.steps / per_epoch)
    if method == "aux":  # stage 3's epochs also pass over the pseudo-labeled pool: the same step budget
        unlabeled = (266 - labeled) + 101  # the labeled drives' other frames and the new drive's
        extra = {**extra, "stage3_epochs": math.ceil(args.steps / ((labeled + unlabeled) // args.batch_size))}
    out = runs / run_dir_name(arm, fraction, seed)
    cfg = TrainConfig(data=data, method=method, model=args.model, labeled_fraction=frac, out=out, epochs=epochs,
                      batch_size=args.batch_size, scale=args.scale, seed=seed, workers=args.workers, device="auto",
                      eval_every=max(1, epochs // 5), resume=(out / "config.json").is_file(),
                      unlabeled=() if method == "supervised" else (str(footage),),
                      aux_epochs=max(1, epochs // 2), **extra)
    t0 = time.perf_counter()
    train(cfg, say=lambda m: print(f"[{out.name}] {m}", flush=True))
    return {"out": out, "epochs": epochs, "wall_s": time.perf_counter() - t0}


def score(out: Path, data: str, split: str) -> dict:
    from ssseg.train.evaluate import run_eval

    path = out / f"eval_{split}.json"
    if path.is_file() and path.stat().st_mtime >= (out / "run.json").stat().st_mtime:
        return json.loads(path.read_text())
    result, _ = run_eval(out, data, split, path, "auto")
    return result


def finished(out: Path) -> bool:
    from ssseg.rundir import RunDir

    run = RunDir(out)
    return (out / "run.json").is_file() and run.unfinished() is None


def row(arm: str, fraction: float, seed: int, out: Path, data: str) -> dict:
    done = [json.loads(p.read_text()) for p in sorted(out.rglob("done.json")) if "replaced" not in p.parts]
    config = json.loads((out / "config.json").read_text())
    new, val = score(out, data, "test"), score(out, data, "val")
    r = {"arm": arm, "fraction": fraction, "seed": seed, "steps": done[-1].get("iterations"),
         "new_drive_miou": new["miou"], "val_miou": val["miou"], "new_drive_per_class": new["per_class_iou"],
         "val_per_class": val["per_class_iou"], "minutes": sum(d.get("seconds", 0.0) for d in done) / 60,
         "run": str(out), "model": config.get("model"),
         "options": {k: config.get(k) for k in ARM_OPTIONS.get(ARMS[arm][0], ())}}
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").is_file() else []
    shares = metrics[-1].get("pass_share") if metrics else None
    if shares:
        r["lowest_pass_share"] = min(v for v in shares.values() if v is not None)
        r["pass_share"] = shares
    return r


def table(rows: list[dict]) -> str:
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = ["| arm | labeled | seeds | new-drive mIoU | val mIoU | lowest class pass share | minutes per run |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["fraction"]), []).append(r)
    for (arm, fraction), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], list(ARMS).index(kv[0][0]))):
        def stat(key: str) -> str:
            vals = [r[key] for r in rs]
            if len(vals) == 1:
                return pct(vals[0])
            return f"{pct(statistics.mean(vals))} ± {100 * (max(vals) - min(vals)) / 2:.1f}"
        share = [r["lowest_pass_share"] for r in rs if "lowest_pass_share" in r]
        label = "all 266" if arm == "supervised-all" else f"{fraction:g}"
        lines.append(f"| {arm} | {label} | {','.join(str(r['seed']) for r in rs)} | {stat('new_drive_miou')} | "
                     f"{stat('val_miou')} | {pct(min(share)) + ' %' if share else '-'} | "
                     f"{statistics.mean(r['minutes'] for r in rs):.1f} |")
    return "\n".join(lines)


def gains(rows: list[dict]) -> list[str]:
    """Each semi-supervised arm minus the supervised twin, per seed both ran (never across seeds)."""
    out = []
    for fraction in sorted({r["fraction"] for r in rows}):
        at = {(r["arm"], r["seed"]): r["new_drive_miou"] for r in rows if r["fraction"] == fraction}
        for arm in ARMS:
            if ARMS[arm][0] == "supervised":
                continue
            seeds = sorted(s for a, s in at if a == arm and (CORE[0], s) in at)
            if not seeds:
                continue
            diffs = [at[arm, s] - at[CORE[0], s] for s in seeds]
            out.append(f"- {fraction:g} labeled: {arm} minus {CORE[0]} on the new drive, per seed "
                       f"{', '.join(f'{100 * d:+.1f}' for d in diffs)} (mean {100 * statistics.mean(diffs):+.1f})")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camvid", type=Path, required=True, help="CamVid folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--runs", type=Path, default=None, help="run folder (default: runs/bench/ssl/MODEL)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_ssl")
    p.add_argument("--model", default=DEFAULT_SEGMENTER, help="the segmenter of every arm")
    p.add_argument("--fractions", default="0.125,0.5")
    schedule_args(p)
    p.add_argument("--arms", default=",".join(CORE + AROUND), help="which arms, in this order of priority")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--report", action="store_true", help="train nothing: rewrite the results from the finished runs")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    args.runs = args.runs or Path("runs/bench/ssl") / args.model
    data_root = build_protocol(args.camvid, args.runs / "protocol")
    data, footage = f"camvid:{data_root}", data_root / "test"
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    plan = []  # the core grid first (seed by seed), then one seed of each arm around it
    for seed in seeds:
        plan += [(a, f, seed) for f in fractions for a in arms if a in CORE + TUNING]
    plan += [(a, f, seeds[0]) for a in arms if a not in CORE + TUNING for f in fractions
             if not (a == "supervised-all" and f != fractions[-1])]
    grid = [(a, f, s) for a in ARMS for f in fractions for s in seeds]  # what other processes may have finished
    recorded = recorded_rows(args.out, comparable(args), row_key)
    plan = [arm for arm in plan if arm not in recorded or finished(args.runs / run_dir_name(*arm))]
    for arm, fraction, seed in [] if args.report else plan:
        run_arm(arm, fraction, seed, args, data, footage, args.runs)
        report(grid, args, data, seeds, fractions)
    if args.report:
        report(grid, args, data, seeds, fractions)


def run_dir_name(arm: str, fraction: float, seed: int) -> str:
    return f"{arm}_f{fraction:g}_s{seed}"


def row_key(r: dict) -> tuple:
    return r["arm"], r["fraction"], r["seed"]


def comparable(args) -> dict:
    """The settings under which two invocations' rows belong in one table."""
    return {"model": args.model, "steps": args.steps, "batch_size": args.batch_size, "scale": args.scale}


def report(grid: list[tuple], args, data: str, seeds: list[int], fractions: list[float]) -> None:
    recorded = recorded_rows(args.out, comparable(args), row_key)  # rows whose run folder is gone stay
    rows = [row(*arm, args.runs / run_dir_name(*arm), data) if finished(args.runs / run_dir_name(*arm))
            else recorded[arm] for arm in grid if finished(args.runs / run_dir_name(*arm)) or arm in recorded]
    rows += [r for key, r in recorded.items() if key not in grid]  # another invocation's fractions or seeds
    rows = [r for r in rows if r["model"] == args.model]  # a table never mixes segmenters
    info = machine()
    result = {"machine": info, "command": " ".join(sys.argv), "protocol": {
        "labeled_drives": ["0001TP", "0016E5"], "new_drive": NEW_DRIVE, "labeled_pool": 266,
        "new_drive_frames": 101, "val": "CamVid val (0016E5, 101 frames)"},
        "settings": {**comparable(args), "seeds": seeds, "fractions": fractions}, "rows": rows}
    where = f"{info['gpu']} ({info['cpu']})" if info.get("gpu") else info["cpu"]
    md = (f"# CamVid new-drive protocol: semi-supervised vs supervised ({args.model})\n\n`{result['command']}`\n\n"
          f"{where}, segmenter {args.model} with its recipe, {args.steps} steps of {args.batch_size} labeled images "
          f"per arm at {args.scale}. "
          f"mIoU in %, mean ± half the range over seeds.\n\n{table(rows)}\n\n" + "\n".join(gains(rows)) + "\n")
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
