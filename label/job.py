"""``ssseg label``: check everything that can be checked before the first frame, then run the pipeline and
write the job summary. Exit status: 0 when every source was labeled completely, 1 when a source failed (its
errors are listed; --resume retries them), 3 when every source was labeled but damaged stretches of video were
skipped or concealed (listed with their frame ranges under ``damaged`` in the summary and each manifest)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from ssseg.config import LabelConfig
from ssseg.errors import ConfigError, Interrupted, LabelError, continue_command, invoked_command
from ssseg.gate import describe
from ssseg.io import write_json
from ssseg.label.decode import FFMPEG_LOG, log_ffmpeg_to
from ssseg.label.inputs import expand_inputs, shard
from ssseg.label.layouts import make_layout
from ssseg.label.lock import JobLock, is_lock_file
from ssseg.label.pipeline import Pipeline
from ssseg.label.progress import Progress
from ssseg.label.records import (
    MANIFEST_FILE,
    SourceState,
    check_job,
    now,
    recorded_keys,
    summary,
    summary_name,
    write_job,
)
from ssseg.runtime.model import MODEL_FILE, ModelSpec, read_model

DAMAGED = 3  # exit status: everything labeled that could be, damaged stretches skipped
FFMPEG_LOG_FILE = "ffmpeg.log"  # in OUT: what FFmpeg logged that was not read as damage of a source


def settings_of(cfg: LabelConfig, spec: ModelSpec, threshold: float | None) -> dict:
    """The options that decide the files' contents: a --resume or another shard must repeat them."""
    return {"model_labeler_sha256": spec.data["graphs"]["labeler"]["sha256"], "threshold": threshold,
            "every": cfg.every, "fps": cfg.fps, "format": cfg.format, "confidence": cfg.confidence,
            "overlay": cfg.overlay, "min_coverage": cfg.min_coverage, "orientation": cfg.orientation}


def resolve_threshold(cfg: LabelConfig, spec: ModelSpec) -> float | list[float | None] | None:
    """The gate: one threshold (--threshold, else model.json's when it has no per-class table), per-class
    thresholds (--target-precision, else model.json's table), or None for a model without a confidence source
    (refusing options that need one)."""
    if spec.gate.available:
        return spec.gate.choose(cfg.threshold, cfg.target_precision, spec.root / MODEL_FILE)
    needs = [opt for opt, v in (("--threshold", cfg.threshold), ("--confidence", cfg.confidence or None),
                                ("--min-coverage", cfg.min_coverage), ("--target-precision", cfg.target_precision))
             if v is not None]
    if needs:
        reason = spec.data["gate"].get("reason", "it was exported without a confidence net")
        raise ConfigError(f"{', '.join(needs)} need a confidence net, and this model has none ({reason})",
                          path=spec.root / "model.json",
                          fix=f"drop {', '.join(needs)} to write ungated labels, or export a --method aux run")
    return None


def resolve_batch(cfg: LabelConfig, spec: ModelSpec) -> int:
    lo, opt, hi = spec.batch_range
    batch = cfg.batch or opt
    if batch > hi:
        raise ConfigError(f"--batch {batch} is above the model's maximum batch {hi}", path=spec.root / "model.json",
                          fix=f"use --batch {hi} or less, or re-export with --dynamic-batch 1:{batch}:{batch}")
    return batch


def run_label(cfg: LabelConfig, say: Callable[[str], None]) -> int:
    spec = read_model(cfg.model)
    threshold = resolve_threshold(cfg, spec)
    batch = resolve_batch(cfg, spec)
    out = Path(cfg.out)
    layout = make_layout(cfg.format, out, spec.classes, cfg.confidence)
    sources = expand_inputs(cfg.inputs, cfg.recursive, recorded_keys(layout.meta_dirs()) if out.is_dir() else {})
    for s in sources:
        for note in s.notes:
            say(f"{s.input}: {note}")
    if cfg.fps is not None:
        stills = [s.input for s in sources if s.kind == "images"]
        if stills:
            raise ConfigError(f"--fps samples by video timestamps, and {stills[0]} is a folder of images without them",
                              fix="use --every K for image folders (or label them in a separate job)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for s in sources:
        if s.kind == "stream":  # a stream never repeats: each job labels it into a new folder
            s.key = f"{s.key}-{stamp}"
    mine = shard(sources, *cfg.shard) if cfg.shard else sources
    if cfg.shard:
        say(f"shard {cfg.shard[0]}/{cfg.shard[1]}: {len(mine)} of {len(sources)} sources")
    settings = settings_of(cfg, spec, threshold)
    existed = out.exists()
    lock = JobLock(out, cfg.shard, "ssseg", say)
    lock.acquire()
    try:
        ffmpeg_log = log_ffmpeg_to(out / FFMPEG_LOG_FILE)  # FFmpeg's own lines: never on the terminal
        try:
            return _run(cfg, spec, layout, threshold, batch, sources, mine, settings, say)
        finally:
            FFMPEG_LOG.removeHandler(ffmpeg_log)
            ffmpeg_log.close()
    finally:
        lock.release()
        if not existed and not any(out.iterdir()):
            out.rmdir()  # a job that could not start leaves no trace


def _run(cfg: LabelConfig, spec: ModelSpec, layout, threshold, batch: int, sources: list, mine: list,
         settings: dict, say: Callable[[str], None]) -> int:
    out = Path(cfg.out)
    check_job(out, settings, ignore=lambda name: is_lock_file(name) or name == FFMPEG_LOG_FILE)
    states = [SourceState(s, layout.meta_dir(s.key), settings, list(spec.classes.names), out) for s in mine]
    for state in states:
        state.prepare(cfg.resume, cfg.overlay)
        if cfg.resume:
            layout.remove_stale(state.source.key)

    from ssseg.runtime.backends import open_backend

    name, _, variant = cfg.backend.partition(":")
    backend = open_backend(spec, name, variant or None, say=say, threads=cfg.threads).load()
    info = backend.describe()
    write_job(out, settings)  # only now: a job that could not start leaves --out as it was
    say(f"labeling {len(mine)} source(s) with {info['backend']} ({info.get('provider') or info['precision']}), "
        f"batch {batch}, {describe(threshold)}, format {cfg.format} -> {out}")

    run = {"started": now(), "backend": info, "batch": batch, "command": invoked_command(),
           "model": str(Path(cfg.model).resolve())}
    t0 = time.perf_counter()
    interrupted = False
    with Progress(say, live=sys.stderr.isatty()) as progress:
        pipeline = Pipeline(backend, layout, batch=batch, threshold=threshold, min_coverage=cfg.min_coverage,
                            every=cfg.every, fps=cfg.fps, overlay=cfg.overlay, writers=cfg.writers, decoders=2,
                            progress=progress, say=say, orientation=cfg.orientation)
        try:
            results = pipeline.run(states, run)
        except KeyboardInterrupt:
            interrupted, results = True, pipeline.results
    seconds = time.perf_counter() - t0
    run.update(finished=now(), seconds=round(seconds, 3), frames_labeled=pipeline.labeled,
               fps=round(pipeline.labeled / seconds, 3) if seconds > 0 else None, interrupted=interrupted,
               timings={k: round(v, 3) for k, v in pipeline.timings.items()})
    results.sort(key=lambda r: r["key"])
    report = summary(results, settings, run, cfg.shard)
    path = write_json(out / summary_name(cfg.shard), report)
    layout.finish([layout.meta_dir(s.key) / MANIFEST_FILE for s in sources])
    say(f"{pipeline.labeled} frames labeled in {seconds:.1f} s ({run['fps'] or 0:.1f} frames/s); summary: {path}")
    if report["next_to_label"]:
        worst = report["next_to_label"][0]
        say(f"lowest confident coverage: {worst['source']} frame {worst['name']} ({100 * worst['coverage']:.1f}%); "
            f"the {len(report['next_to_label'])} lowest are listed under next_to_label")
    if interrupted:
        raise Interrupted(f"{pipeline.labeled} frames labeled in this run are kept in {out} (every frame on disk is "
                          f"complete; {path.name} lists them); continue with: {continue_command()}")
    for d in report["damaged"]:  # whatever the other sources did
        ranges = ", ".join(f"{r['first']}-{r['last']}" + ("" if r["skipped"] else " (concealed)")
                           for r in d["damage"][:5])
        say(f"DAMAGED {d['input']}: {d['frames_skipped']} frame(s) skipped, frames {ranges}"
            + (" ..." if len(d["damage"]) > 5 else "") + f" ({d['damage'][0]['reason']})")
    if report["failures"]:
        for f in report["failures"]:
            first = f["errors"][0]
            say(f"FAILED {f['input']}: {first.get('source') or first.get('error')}"
                + (f" (+{len(f['errors']) - 1} more)" if len(f["errors"]) > 1 else ""))
        raise LabelError(f"{len(report['failures'])} of {len(results)} sources failed (listed above and in {path})",
                         fix="fix or remove those inputs and run again with --resume")
    if report["damaged"]:
        say(f"{len(report['damaged'])} source(s) had damaged data: the rest of each was labeled; the frame ranges are "
            f"under 'damaged' in {path} (exit status 3)")
        return DAMAGED
    return 0
