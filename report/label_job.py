"""The report of a label job: what was labeled, how confidently, where the footage was damaged, and which frames
a person should label next, for every shard of the job together.

Sources are found from their manifests (OUT/<source>/ or OUT/meta/<source>/), or their journals while a job
runs or after it stopped; every shard's summary adds its runs (backend, speed, the exact command).

Just over 300 lines: one page's data and its HTML, read from the job's records (label/records.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ssseg.classes import ClassSet
from ssseg.errors import ModelError, ReportError
from ssseg.io import read_format
from ssseg.label.layouts import make_layout
from ssseg.label.records import (
    FORMAT_VERSION,
    JOB_FILE,
    JOB_FORMAT,
    LEGACY_SETTINGS,
    SUMMARY_FORMAT,
    bad_files,
    damage_ranges,
    journal_records,
    now,
    record_files,
    summary_files,
)
from ssseg.report import frames as pictures
from ssseg.report import page, plots
from ssseg.report.manifests import Timeline, read_manifest
from ssseg.versions import __version__

REPORT_FORMAT = "ssseg.report.label"
REPORT_VERSION = 1
TIMELINE_POINTS = 400  # bins per source timeline (mean and lowest coverage in each)
PICKS_PER_SOURCE = 4  # frames to label next, per source
MAX_PICTURES = 48  # pictures in the whole report, so a job of hundreds of sources opens quickly
MAX_CORRUPT_LISTED = 50  # frames with damaged output files listed per source (all are counted)
MAX_SOURCE_PLOTS = 24  # sources with their own timeline (the lowest-covered first); the overview shows all
THUMB_HEIGHT, FULL_HEIGHT = 96, 400


def is_label_job(folder: Path) -> bool:
    return (folder / JOB_FILE).is_file()


def build(job: Path, json_name: str, say=lambda m: None) -> tuple[str, dict]:
    """(report.html's text, report.json's data) of the label job in ``job``."""
    job = Path(job)
    head = read_format(job / JOB_FILE, JOB_FORMAT, FORMAT_VERSION, what="an ssseg label job", error=ReportError,
                       damaged_fix="restore it, or label into a new --out", foreign_fix="pass the --out of ssseg label",
                       version_fix="report it with ssseg {written}")
    settings = head.get("settings", {})
    runs, failures = _summaries(job)
    model = _model(runs, settings)
    sources = [_source(job, path, kind) for path, kind in _source_files(job)]
    if not sources and not failures:
        raise ReportError("the label job has no labeled source yet (no manifest.json or frames.jsonl)", path=job,
                          fix="report it once ssseg label has labeled a frame")
    names = model["class_names"] or _names_from(sources)
    colours = model["colours"] or plots.class_colours(names)
    classes = ClassSet("job", tuple(names), tuple(map(tuple, colours)))
    layout = make_layout(settings.get("format", "png"), job, classes, settings.get("confidence"))
    sources.sort(key=lambda s: s["key"])
    _pick(sources)
    orientation = {**LEGACY_SETTINGS, **settings}["orientation"]
    pics = _pictures(job, sources, layout, names, colours, orientation, say)
    per_class = [sum(s["per_class"][i] if i < len(s["per_class"]) else 0 for s in sources) for i in range(len(names))]
    pixels = sum(s["pixels"] for s in sources)
    data = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "ssseg_version": __version__, "written": now(),
        "job": {"folder": str(job.resolve()), "created": head.get("created"), "settings": settings},
        "model": {k: v for k, v in model.items() if k != "colours"},
        "runs": runs,
        "totals": {"sources": len(sources), "frames_labeled": sum(s["frames"] for s in sources),
                   "frames_written": sum(s["written"] for s in sources),
                   "frames_skipped": sum(s["frames_skipped"] for s in sources),
                   "corrupt_outputs": sum(s["corrupt_outputs"] for s in sources),
                   "coverage": sum(per_class) / pixels if pixels else None,
                   "per_class": dict(zip(names, per_class))},
        "sources": [{**s, "per_class": dict(zip(names, s["per_class"]))} for s in sources],
        "failures": failures,
        "next_to_label": [{**{k: p[k] for k in ("source", "index", "name", "coverage", "time", "files", "note")},
                           "file": p.get("file")} for p in pics],
    }
    return _html(data, sources, pics, names, colours, json_name), data


# --- reading the job ------------------------------------------------------------------------------------
def _summaries(job: Path) -> tuple[list[dict], list[dict]]:
    """Every shard's runs (the latest summary of each shard) and the sources that failed."""
    runs, failures = [], []
    for path in summary_files(job):
        s = read_format(path, SUMMARY_FORMAT, FORMAT_VERSION, what="an ssseg label summary", error=ReportError,
                        damaged_fix="run the shard again with --resume", foreign_fix="remove it",
                        version_fix="report it with ssseg {written}")
        run = s.get("run", {})
        runs.append({"summary": path.name, "shard": s.get("shard"), "started": run.get("started"),
                     "finished": run.get("finished"), "seconds": run.get("seconds"), "fps": run.get("fps"),
                     "frames_labeled": run.get("frames_labeled"), "interrupted": run.get("interrupted"),
                     "backend": run.get("backend", {}), "batch": run.get("batch"), "command": run.get("command"),
                     "model": run.get("model"), "runtime": run.get("runtime", "ssseg")})
        failures += s.get("failures", [])
    return runs, failures


def _source_files(job: Path) -> list[tuple[Path, str]]:
    """(manifest.json or frames.jsonl, "manifest" or "journal") per source folder, a manifest preferred."""
    return record_files(sorted([*job.glob("*/"), *job.glob("meta/*/")]))


def _source(job: Path, path: Path, kind: str) -> dict:
    line = Timeline(TIMELINE_POINTS, 8 * PICKS_PER_SOURCE)
    corrupt: list[dict] = []  # frames whose files are not as written (missing, cut short, changed)
    if kind == "manifest":
        head, records = read_manifest(path)
        for rec in records:
            line.add(rec)
            bad = bad_files(job, rec)
            if bad:
                corrupt.append({"index": rec["index"], "name": rec["name"], "source": rec.get("source"), "files": bad})
        damage, state = head.get("damage", []), ("complete" if head.get("complete") else
                                                 "interrupted" if head.get("interrupted") else "incomplete")
        source = head.get("source", {})
        errors = head.get("errors", [])
        class_names = list(head.get("totals", {}).get("per_class", {}))
    else:  # a running or stopped job: its journal, frames in the order they were finished
        frames, marks = {}, {}
        for rec in journal_records(path):
            if "damage" in rec:
                marks[rec["damage"][0]] = rec
            elif "error" not in rec and "coverage" in rec:
                frames[rec["index"]] = {k: rec.get(k) for k in ("index", "name", "time", "size", "coverage",
                                                                 "classes", "written", "files")}
        for index in sorted(frames):
            line.add(frames[index])
        damage, state, errors, class_names = damage_ranges(marks), "in progress or stopped (journal)", [], []
        source = _journal_source(path)
    series = line.series()
    return {"key": path.parent.name, "input": source.get("input"), "kind": source.get("kind"), "state": state,
            "record": str(path.relative_to(job)), "frames": line.frames, "written": line.written,
            "frames_skipped": sum(d["last"] - d["first"] + 1 for d in damage if d.get("skipped")),
            "pixels": line.pixels, "per_class": line.per_class, "class_names": class_names,
            "coverage": sum(line.per_class) / line.pixels if line.pixels else None,
            "lowest_bin": min((b["mean"] for b in series), default=None),
            "damage": damage, "errors": errors, "timeline": series, "lowest": line.lowest_frames(),
            "corrupt_outputs": len(corrupt), "corrupt": corrupt[:MAX_CORRUPT_LISTED]}


def _journal_source(path: Path) -> dict:
    with open(path) as f:
        try:
            first = json.loads(f.readline())
        except ValueError:
            return {}
    found = first.get("input") or ""
    kind = "images" if Path(found).is_dir() else "video" if Path(found).is_file() else None  # for the pictures
    return {"input": found or None, "kind": kind}


def _model(runs: list[dict], settings: dict) -> dict:
    """The model the job used, from its model.json when it is still there and still the same labeler."""
    from ssseg.runtime.model import read_model

    path = next((r["model"] for r in reversed(runs) if r.get("model")), None)
    info = {"path": path, "found": False, "note": None, "class_names": None, "colours": None, "gate": None,
            "method": None, "input": None, "threshold_used": settings.get("threshold")}
    if path is None:
        info["note"] = "this job's summaries do not name the model (written by an older ssseg)"
        return info
    try:
        spec = read_model(Path(path))
    except ModelError as e:
        info["note"] = f"model.json could not be read: {e}"
        return info
    if spec.data["graphs"]["labeler"]["sha256"] != settings.get("model_labeler_sha256"):
        info["note"] = "the model folder now holds another labeler than the one this job used"
        return info
    gate = dict(spec.data.get("gate", {}))
    info.update(found=True, class_names=list(spec.classes.names), colours=[list(c) for c in spec.classes.colors],
                gate=gate, method=spec.data.get("method"),
                input=[spec.data["input"]["height"], spec.data["input"]["width"]])
    return info


def _names_from(sources: list[dict]) -> list[str]:
    """The class names the manifests' totals use, when model.json is gone (a journal alone has none)."""
    named = next((s["class_names"] for s in sources if s["class_names"]), None)
    return named or [f"class {i}" for i in range(max((len(s["per_class"]) for s in sources), default=0))]


# --- what to show ---------------------------------------------------------------------------------------
def _pick(sources: list[dict]) -> None:
    """Per source, up to PICKS_PER_SOURCE of its lowest-coverage frames, spread out (a frame close to one picked
    already shows nothing new)."""
    for s in sources:
        gap = max(1, s["frames"] // 50)
        picks = []
        for f in s["lowest"]:
            if len(picks) < PICKS_PER_SOURCE and all(abs(f["index"] - p["index"]) > gap for p in picks):
                picks.append(f)
        s["picks"] = picks


def _pictures(job: Path, sources: list[dict], layout, names: list[str], colours: list, orientation: str,
              say) -> list[dict]:
    """Pictures of the picked frames, the sources with the lowest-covered frames first, MAX_PICTURES at most."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colours)] = np.asarray(colours, np.uint8)
    order = sorted((s for s in sources if s["picks"]), key=lambda s: s["picks"][0]["coverage"])
    out = []
    for s in order:
        room = MAX_PICTURES - len(out)
        if room <= 0:
            break
        picks = s["picks"][:room]
        files = {p["index"]: layout.files(s["key"], p["index"], p["name"]) for p in picks}
        own = {p["index"]: pictures.read_rgb(job / files[p["index"]]["image"]) for p in picks
               if "image" in files[p["index"]] and p["files"]}
        missing = [p for p in picks if own.get(p["index"]) is None]
        images = {**pictures.source_images(s, missing, orientation),
                  **{i: a for i, a in own.items() if a is not None}}
        for p in picks:
            f = files[p["index"]]
            labels = pictures.read_png(job / f["labels"]) if p["files"] else None
            conf = pictures.read_png(job / f["confidence"]) if "confidence" in f and p["files"] else None
            rgb = images.get(p["index"])
            if labels is None and rgb is None:
                continue  # nothing left to show: files removed since, source moved
            why = "not written: below --min-coverage" if not p["files"] else "its label file is missing or damaged"
            pic = pictures.picture(labels, conf, rgb, palette, len(names), THUMB_HEIGHT, FULL_HEIGHT, why)
            when = f", {p['time']:.1f} s" if p.get("time") is not None else ""
            out.append({"source": s["key"], **p, "note": pic.note, "id": f"f{len(out)}",
                        "thumb": page.jpeg(pic.thumb), "full": page.jpeg(pic.full), "panels": " | ".join(pic.panels),
                        "caption": f"{s['key']} frame {p['name']}{when}"
                                   + (f" ({Path(p['file']).name})" if p.get("file") else "")
                                   + f": {100 * p['coverage']:.1f}% confident"})
    say(f"report: {len(out)} frame pictures")
    return out


def _gate_text(model: dict) -> str:
    gate = model.get("gate") or {}
    if not gate:
        return "unknown (model.json not found)"
    if not gate.get("available"):
        return f"ungated: {gate.get('reason', 'no confidence source')}"
    kind = gate.get("kind")
    if gate.get("thresholds"):
        cal = gate.get("calibration") or {}
        p = cal.get("target_precision")
        measured = "" if p is None else (
            f"; calibrated on {cal.get('split')} ({cal.get('images')} images) for {100 * p:g}% precision per class: "
            f"kept-pixel accuracy {page.pct(cal.get('kept_pixel_acc'))}, "
            f"coverage {page.pct(cal.get('total_coverage'))}")
        return f"{kind}, per-class thresholds{measured}"
    return f"{kind}, threshold {gate.get('threshold')}"


def _html(data: dict, sources: list[dict], pics: list[dict], names: list[str], colours: list, json_name: str) -> str:
    totals = data["totals"]
    videos = all(s["kind"] == "video" for s in sources) and sources
    unit = "minutes into the source" if videos else "frame number"
    rows = []
    for s in sources:
        scale = 60.0 if videos else 1.0
        key = "t0" if videos else "index"
        t_first = s["timeline"][0][key] if s["timeline"] else 0
        series = [{"t0": (b[key] - t_first) / scale, "mean": b["mean"],
                   "t1": ((b["t1"] if videos else b["index"] + b["frames"] - 1) - t_first) / scale}
                  for b in s["timeline"]]
        rows.append({"name": s["key"], "series": series, "length": max((b["t1"] for b in series), default=0.0),
                     "damage": _damage_spans(s, videos, t_first, scale)})
    overview = page.png(plots.coverage_overview(rows, unit)) if sources else None
    detailed = sorted((s for s in sources if s["timeline"]), key=lambda s: s["lowest_bin"])[:MAX_SOURCE_PLOTS]
    note = f"gate: {_gate_text(data['model'])}"
    for s in detailed:
        s["plot"] = page.png(plots.source_timeline(s["timeline"], s["damage"], s["picks"], note))
    shares = (page.png(plots.class_shares(names, list(totals["per_class"].values()), colours,
                                          "confident pixels by class", "share of confident pixels (%)"))
              if sum(totals["per_class"].values()) else None)
    by_source = {p["source"]: [] for p in pics}
    for p in pics:
        by_source[p["source"]].append(p)
    return page.render("label.html", title=f"Label job {Path(data['job']['folder']).name}",
                       subtitle=f"{data['job']['folder']} · {totals['sources']} sources · {totals['frames_labeled']} "
                                f"frames labeled · {page.pct(totals['coverage'])} of pixels confident",
                       nav=[("summary", "Summary"), ("timeline", "Coverage"), ("next", "Label next"),
                            ("classes", "Classes"), ("damage", "Damaged"), ("model", "Model and gate"),
                            ("runs", "Commands")],
                       version=__version__, written=data["written"], json_name=json_name, data=data,
                       sources=sources, detailed=detailed, overview=overview, shares=shares, by_source=by_source,
                       gate_text=_gate_text(data["model"]), names=names,
                       more_sources=max(0, len([s for s in sources if s["timeline"]]) - MAX_SOURCE_PLOTS),
                       max_pictures=MAX_PICTURES)


def _damage_spans(s: dict, videos: bool, t_first: float, scale: float) -> list[tuple[float, float]]:
    """Damaged frame ranges on the overview's axis (a video's frame numbers become times by its bins)."""
    spans = []
    for d in s["damage"]:
        if not videos:
            spans.append(((d["first"] - t_first) / scale, (d["last"] - t_first) / scale))
            continue
        t = [b for b in s["timeline"] if b["frames"] > 0]
        before = [b for b in t if b["index"] <= d["first"]]
        after = [b for b in t if b["index"] > d["last"]]
        t0 = before[-1]["t1"] if before else (t[0]["t0"] if t else 0.0)
        t1 = after[0]["t0"] if after else t0
        spans.append(((t0 - t_first) / scale, (t1 - t_first) / scale))
    return spans


