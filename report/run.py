"""The report of a training run: what each stage learned (loss, validation score, per-class IoU), how the gate
trades coverage for precision, what the pseudo-labels held, the split, the configuration and the timings.

Everything comes from the run directory's files (RunDir knows its layout): metrics.jsonl and done.json per
stage, the gate measurement ``ssseg train`` writes at its end (gate_val.json and .png, as ``ssseg eval --gate``
writes them), pseudo-label manifests, splits/ and config.json."""

from __future__ import annotations

import json
from pathlib import Path

from ssseg.errors import ReportError
from ssseg.label.records import now
from ssseg.report import page, plots
from ssseg.rundir import DONE_FILE, GATE_FILE, MANIFEST_FILE, METRICS_FILE, PSEUDO_DIR, SUMMARY_FILE, RunDir
from ssseg.versions import __version__

REPORT_FORMAT = "ssseg.report.run"
REPORT_VERSION = 1


def is_run(folder: Path) -> bool:
    return RunDir(folder).exists()


def build(root: Path, json_name: str) -> tuple[str, dict]:
    run = RunDir(root)
    cfg = run.config
    stages = [_stage(folder, title) for folder, title in _stage_folders(run)]
    stages = [s for s in stages if s["epochs"]]
    names = next((list(s["per_class_iou"]) for s in stages if s.get("per_class_iou")), [])
    segmenters = [s for s in stages if s["score_name"] == "mIoU" and s.get("per_class_iou")]
    gate, gate_png = _gate(run)
    data = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "ssseg_version": __version__, "written": now(),
        "run": str(Path(root).resolve()), "method": run.method, "layout": run.layout,
        "unfinished": _unfinished(run, stages),
        "summary": _json(run.root / SUMMARY_FILE),
        "split": _split(run),
        "stages": [{k: v for k, v in s.items() if k not in ("epochs_list", "selection")} for s in stages],
        "evaluations": {p.name: _json(p) for p in sorted(run.root.rglob("eval_*.json"))},
        "gate": gate and _gate_summary(gate),
        "pseudo_labels": _pseudo(run, stages),
        "config": cfg,
    }
    curves = page.png(plots.training_curves([{"title": s["title"], "epochs": s["epochs_list"], "loss": s["loss"],
                                              "score": s["score"], "score_name": s["score_name"]} for s in stages])) \
        if stages else None
    iou = None
    if segmenters and names:
        groups = {s["title"]: [s["per_class_iou"].get(n) for n in names] for s in
                  ([segmenters[0], segmenters[-1]] if len(segmenters) > 1 else segmenters)}
        iou = page.png(plots.grouped_bars(names, groups, "IoU (%)", "per-class IoU on val (best epoch)"))
    pseudo = data["pseudo_labels"]
    shares = None
    if pseudo and pseudo.get("class_share"):
        colours = plots.class_colours(list(pseudo["class_share"]))
        shares = page.png(plots.class_shares(list(pseudo["class_share"]), list(pseudo["class_share"].values()),
                                             colours, pseudo["title"], pseudo["xlabel"],
                                             fractions="pass_share" in pseudo))
    html = page.render("run.html", title=f"Training run {Path(root).resolve().name}",
                       subtitle=f"{data['run']} · method {run.method} · "
                                + ("finished" if not data["unfinished"] else f"unfinished: {data['unfinished']}"),
                       nav=[("curves", "Curves"), ("iou", "Per-class IoU"), ("gate", "Gate"),
                            ("pseudo", "Pseudo-labels"), ("split", "Split"), ("timings", "Timings"),
                            ("config", "Config")],
                       version=__version__, written=data["written"], json_name=json_name, data=data,
                       stages=stages, curves=curves, iou=iou, gate_png=gate_png, shares=shares,
                       names=names, reproduce=f"ssseg train --config {run.config_path} --out NEW_RUN")
    return html, data


def _unfinished(run: RunDir, stages: list[dict]) -> str | None:
    """Why the run is not finished, from its files alone (RunDir.unfinished reads last.pt, which needs torch)."""
    if run.staged:
        return run.unfinished()
    if run.is_done(run.root):
        return None
    return f"no done.json; {stages[0]['epochs'] if stages else 0} of {run.config.get('epochs')} epochs in metrics.jsonl"


def _stage_folders(run: RunDir) -> list[tuple[Path, str]]:
    if not run.staged:
        return [(run.root, "segmenter")]
    gater = run.layout.get("gater")
    segs = set(run.layout.get("segmenter_stages") or [])
    out = []
    for k in range(1, max(run.layout["stages"], 1) + 1):
        folder = run.stage(k)
        what = "confidence net" if folder.name == gater else "segmenter" if k in segs or not segs else "network"
        out.append((folder, f"stage {k}: {what}"))
    return out


def _stage(folder: Path, title: str) -> dict:
    """A stage's curve and scores from its metrics.jsonl (torn lines skipped) and done.json."""
    epochs, loss, score, seconds, speed, best, per_class, score_name = [], [], [], 0.0, [], None, None, "mIoU"
    selection = None  # the last epoch of an online method that logged its per-class pass share
    path = folder / METRICS_FILE
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        epochs.append(rec.get("epoch"))
        loss.append(rec.get("loss"))
        seconds += rec.get("epoch_s") or 0.0
        if rec.get("images_per_s"):
            speed.append(rec["images_per_s"])
        val = rec.get("val") or {}
        if "auroc" in val and "miou" not in val:
            score_name = "AUROC"
        if any(v is not None for v in (rec.get("pass_share") or {}).values()):
            selection = rec
        value = val.get("miou", val.get("auroc"))
        score.append(value)
        if value is not None and (best is None or value > best[0]):
            best = (value, rec.get("epoch"))
            per_class = val.get("per_class_iou")
    done = _json(folder / DONE_FILE)
    return {"title": title, "folder": folder.name, "epochs": len(epochs), "epochs_list": epochs, "loss": loss,
            "score": score, "score_name": score_name, "best": best and best[0], "best_epoch": best and best[1],
            "per_class_iou": per_class, "seconds": round(seconds, 1),
            "images_per_s": round(sum(speed) / len(speed), 2) if speed else None,
            "finished": done.get("finished") if done else None, "selection": selection}


def _gate(run: RunDir) -> tuple[dict | None, str | None]:
    """gate_val.json and its figure, in the run's root or its final segmenter's folder."""
    for folder in (run.root, run.segmenter_folder()):
        data = _json(folder / GATE_FILE)
        if data:
            png = (folder / GATE_FILE).with_suffix(".png")
            return data, page.png(png.read_bytes()) if png.is_file() else None
    return None, None


def _gate_summary(gate: dict) -> dict:
    """gate_val.json without its curves (the figure shows them)."""
    sources = {n: {k: v for k, v in src.items() if k != "curve"} for n, src in gate.get("sources", {}).items()}
    return {**{k: v for k, v in gate.items() if k not in ("curve", "reliability")}, "sources": sources}


def _pseudo(run: RunDir, stages: list[dict]) -> dict | None:
    """The pseudo-labels' class shares: a stage's pseudo/manifest.json (offline pseudo-labels), else the last
    epoch's per-class pass share of an online method (metrics.jsonl ``pass_share``)."""
    folders = [run.root] + [run.stage(k) for k in range(1, run.layout.get("stages", 0) + 1)]
    for folder in reversed(folders):
        m = _json(folder / PSEUDO_DIR / MANIFEST_FILE)
        if m and m.get("class_pixels"):
            return {"source": f"{folder.name}/{PSEUDO_DIR}/{MANIFEST_FILE}", "images": m.get("images"),
                    "kept_share": m.get("kept_share"), "threshold": m.get("threshold"),
                    "class_share": m["class_pixels"], "title": "pseudo-labeled pixels by class",
                    "xlabel": "share of kept pseudo-label pixels (%)"}
    for stage in reversed(stages):
        last = stage["selection"]
        if last:
            return {"source": f"{stage['folder']}/metrics.jsonl epoch {last['epoch']}",
                    "selected": last.get("selected"), "pass_share": last["pass_share"],
                    "class_share": {k: v or 0.0 for k, v in last["pass_share"].items()},
                    "title": "pseudo-labels: share of each class's pixels selected (last epoch)",
                    "xlabel": "pixels of the class selected (%)"}
    return None


def _split(run: RunDir) -> dict:
    def count(name: str) -> int | None:
        path = run.split_file(name)
        return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else None

    footage = {p.name: sum(1 for _ in p.glob("*.jpg")) for p in sorted(run.footage.glob("*")) if p.is_dir()} \
        if run.footage.is_dir() else {}
    return {"data": run.config.get("data"), "labeled": count("labeled"), "unlabeled": count("unlabeled"),
            "labeled_fraction": run.config.get("labeled_fraction"), "footage_frames": footage}


def _json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise ReportError(f"{Path(path).name} is not valid JSON", path=path,
                          fix="restore it from the run, or remove it") from None


