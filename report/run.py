"""The report of a training run: what each stage learned (loss, validation score, per-class IoU), how the gate
trades coverage for precision, what the pseudo-labels held, the split, the configuration and the timings.

Everything comes from the run directory's files (RunDir knows its layout): metrics.jsonl and done.json per
stage, the gate measurement ``ssseg train`` writes at its end (gate_val.json and .png, as ``ssseg eval --gate``
writes them), pseudo-label manifests, splits/ and config.json."""

from __future__ import annotations

import json
from pathlib import Path

from ssseg import __version__
from ssseg.errors import ReportError
from ssseg.label.records import now
from ssseg.report import page, plots
from ssseg.rundir import RunDir

REPORT_FORMAT = "ssseg.report.run"
REPORT_VERSION = 1
GATE_FILE = "gate_val.json"  # the gate measurement on the validation split (train/engine.py writes it)


def is_run(folder: Path) -> bool:
    return RunDir(folder).exists()


def build(root: Path, json_name: str) -> tuple[str, dict]:
    run = RunDir(root)
    cfg = run.config
    stages = [_stage(folder, title) for folder, title in _stage_folders(run)]
    stages = [s for s in stages if s["epochs"]]
    names = next((list(s["per_class_iou"]) for s in stages if s.get("per_class_iou")), [])
    segmenters = [s for s in stages if s["score_name"] == "mIoU" and s.get("per_class_iou")]
    gate = _gate(run)
    data = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "ssseg_version": __version__, "written": now(),
        "run": str(Path(root).resolve()), "method": run.method, "layout": run.layout,
        "unfinished": run.unfinished(),
        "summary": _json(run.root / "summary.json"),
        "split": _split(run),
        "stages": [{k: v for k, v in s.items() if k not in ("epochs_list",)} for s in stages],
        "evaluations": {p.name: _json(p) for p in sorted(run.root.rglob("eval_*.json"))},
        "gate": gate and {k: v for k, v in gate.items() if k not in ("curve", "reliability", "sources")} | {
            "sources": {n: {k: v for k, v in src.items() if k != "curve"} for n, src in gate.get("sources", {}).items()}},
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
    gate_png = _gate_png(run)
    pseudo = data["pseudo_labels"]
    shares = None
    if pseudo and pseudo.get("class_share"):
        colours = _colours(names)
        shares = page.png(plots.class_shares(list(pseudo["class_share"]), list(pseudo["class_share"].values()),
                                             colours, pseudo["title"], pseudo["xlabel"]))
    html = page.render(RUN_BODY, title=f"Training run {Path(root).resolve().name}",
                       subtitle=f"{data['run']} · method {run.method} · "
                                + ("finished" if not data["unfinished"] else f"unfinished: {data['unfinished']}"),
                       nav=[("curves", "Curves"), ("iou", "Per-class IoU"), ("gate", "Gate"),
                            ("pseudo", "Pseudo-labels"), ("split", "Split"), ("timings", "Timings"),
                            ("config", "Config")],
                       version=__version__, written=data["written"], json_name=json_name, data=data,
                       stages=stages, curves=curves, iou=iou, gate_png=gate_png, shares=shares, pct=_pct,
                       names=names, reproduce=f"ssseg train --config {run.config_path} --out NEW_RUN")
    return html, data


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
    path = folder / "metrics.jsonl"
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
        value = val.get("miou", val.get("auroc"))
        score.append(value)
        if value is not None and (best is None or value > best[0]):
            best = (value, rec.get("epoch"))
            per_class = val.get("per_class_iou")
    done = _json(folder / "done.json")
    return {"title": title, "folder": folder.name, "epochs": len(epochs), "epochs_list": epochs, "loss": loss,
            "score": score, "score_name": score_name, "best": best and best[0], "best_epoch": best and best[1],
            "per_class_iou": per_class, "seconds": round(seconds, 1),
            "images_per_s": round(sum(speed) / len(speed), 2) if speed else None,
            "finished": done.get("finished") if done else None}


def _gate(run: RunDir) -> dict | None:
    for folder in (run.root, run.segmenter_folder()):
        data = _json(folder / GATE_FILE)
        if data:
            return data
    return None


def _gate_png(run: RunDir) -> str | None:
    for folder in (run.root, run.segmenter_folder()):
        path = (folder / GATE_FILE).with_suffix(".png")
        if path.is_file():
            return page.png(path.read_bytes())
    return None


def _pseudo(run: RunDir, stages: list[dict]) -> dict | None:
    """The pseudo-labels' class shares: a stage's pseudo/manifest.json (offline pseudo-labels), else the last
    epoch's per-class pass share of an online method (metrics.jsonl ``pass_share``)."""
    folders = [run.root] + [run.stage(k) for k in range(1, run.layout.get("stages", 0) + 1)]
    for folder in reversed(folders):
        m = _json(folder / "pseudo" / "manifest.json")
        if m and m.get("class_pixels"):
            return {"source": f"{folder.name}/pseudo/manifest.json", "images": m.get("images"),
                    "kept_share": m.get("kept_share"), "threshold": m.get("threshold"),
                    "class_share": m["class_pixels"], "title": "pseudo-labeled pixels by class",
                    "xlabel": "share of kept pseudo-label pixels (%)"}
    for folder in reversed(folders):
        path = folder / "metrics.jsonl"
        last = None
        for line in (path.read_text().splitlines() if path.is_file() else []):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if any(v is not None for v in (rec.get("pass_share") or {}).values()):
                last = rec
        if last:
            return {"source": f"{folder.name}/metrics.jsonl epoch {last['epoch']}", "selected": last.get("selected"),
                    "pass_share": last["pass_share"],
                    "class_share": {k: v or 0.0 for k, v in last["pass_share"].items()},
                    "title": "pseudo-label pass share by class (last epoch; shares of each class, not of the total)",
                    "xlabel": "relative pass share (%)"}
    return None


def _split(run: RunDir) -> dict:
    def count(name: str) -> int | None:
        path = run.split_file(name)
        return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else None

    footage = {p.name: sum(1 for _ in p.glob("*.jpg")) for p in sorted(run.footage.glob("*")) if p.is_dir()} \
        if run.footage.is_dir() else {}
    return {"data": run.config.get("data"), "labeled": count("labeled"), "unlabeled": count("unlabeled"),
            "labeled_fraction": run.config.get("labeled_fraction"), "footage_frames": footage}


def _colours(names: list[str]) -> list:
    from ssseg.classes import PRESETS

    for preset in PRESETS.values():
        if tuple(preset.names) == tuple(names):
            return [list(c) for c in preset.colors]
    return [[31, 119, 180]] * len(names)


def _json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise ReportError(f"{Path(path).name} is not valid JSON", path=path,
                          fix="restore it from the run, or remove it") from None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


RUN_BODY = """{% extends "base.html" %}{% from "macros.html" import figure, table %}
{% block body %}
{% if data.summary %}<table>{% for k, v in data.summary.items() %}<tr><th>{{ k }}</th><td><code>{{ v|tojson }}</code></td></tr>{% endfor %}</table>{% endif %}

<h2 id="curves">Loss and validation score per stage</h2>
{% if curves %}{{ figure(curves, "training curves") }}{% else %}<p>No epoch finished yet.</p>{% endif %}
<table><tr><th>stage</th><th>epochs</th><th>best val score</th><th>best epoch</th></tr>
{% for s in stages %}<tr><td>{{ s.title }}</td><td class="n">{{ s.epochs }}</td>
<td class="n">{{ s.score_name }} {{ "%.3f"|format(s.best) if s.best is not none else "-" }}</td><td class="n">{{ s.best_epoch or "-" }}</td></tr>
{% endfor %}</table>

<h2 id="iou">Per-class IoU</h2>
{% if iou %}{{ figure(iou, "per-class IoU") }}{% else %}<p>No validation with per-class IoU (no val split, or no epoch validated).</p>{% endif %}
{% for name, e in data.evaluations.items() %}<h3>{{ name }}</h3>
<p>mIoU {{ pct(e.miou) }}, pixel accuracy {{ pct(e.pixel_acc) }} on {{ e.images }} images of {{ e.split }}</p>{% endfor %}

<h2 id="gate">Gate: coverage against precision</h2>
{% if data.gate %}<p class="sub">{{ data.gate.images }} {{ data.gate.split }} images, segmenter <code>{{ data.gate.segmenter }}</code>{% if data.gate.aux %}, confidence net <code>{{ data.gate.aux }}</code>{% endif %}.
How many pixels each confidence source keeps at a kept-pixel precision, and the class it starves.</p>
{% if gate_png %}{{ figure(gate_png, "gate curves") }}{% endif %}
<table><tr><th>source</th><th>AUROC</th>{% for a in (data.gate.sources.values()|first).at_accuracy %}<th>coverage at {{ pct(a.accuracy) }} (lowest class)</th>{% endfor %}</tr>
{% for name, src in data.gate.sources.items() %}<tr><td>{{ name }}</td><td class="n">{{ "%.3f"|format(src.auroc) if src.auroc is not none else "-" }}</td>
{% for a in src.at_accuracy %}<td class="n">{{ pct(a.coverage) }} ({{ a.lowest_class }} {{ pct(a.lowest_share) }})</td>{% endfor %}</tr>
{% endfor %}</table>
{% else %}<p>No gate measurement in this run (it had no val split, or was trained by an older ssseg): measure it with
<code>ssseg eval {{ data.run }} --gate 0.5,0.7,0.9 --json {{ data.run }}/gate_val.json</code> and report again.</p>{% endif %}

<h2 id="pseudo">Pseudo-labels</h2>
{% if data.pseudo_labels %}<p class="sub">From <code>{{ data.pseudo_labels.source }}</code>{% if data.pseudo_labels.kept_share is defined %}: {{ data.pseudo_labels.images }} images, {{ pct(data.pseudo_labels.kept_share) }} of their pixels kept at threshold {{ data.pseudo_labels.threshold }}{% endif %}{% if data.pseudo_labels.selected is defined %}: {{ pct(data.pseudo_labels.selected) }} of unlabeled pixels selected{% endif %}.</p>
{% if shares %}{{ figure(shares, "pseudo-label class shares") }}{% endif %}
{% else %}<p>This method trains on labeled images only (or wrote no pseudo-labels yet).</p>{% endif %}

<h2 id="split">Split</h2>
{{ table(["dataset", "labeled images", "unlabeled images", "labeled fraction", "footage frames"],
   [[data.split.data, data.split.labeled, data.split.unlabeled, data.split.labeled_fraction,
     data.split.footage_frames|tojson]], numeric=(1, 2)) }}

<h2 id="timings">Timings</h2>
<table><tr><th>stage</th><th>epochs</th><th>training time</th><th>images/s</th><th>finished</th></tr>
{% for s in stages %}<tr><td>{{ s.title }}</td><td class="n">{{ s.epochs }}</td><td class="n">{{ "%.0f"|format(s.seconds) }} s</td>
<td class="n">{{ s.images_per_s or "-" }}</td><td>{{ s.finished or "not yet" }}</td></tr>{% endfor %}</table>

<h2 id="config">Configuration</h2>
<p>Reproduce with <code>{{ reproduce }}</code>.</p>
<details><summary>All {{ data.config|length }} options (config.json)</summary>
<table>{% for k, v in data.config.items() %}<tr><th>{{ k }}</th><td><code>{{ v|tojson }}</code></td></tr>{% endfor %}</table></details>
{% endblock %}
"""
