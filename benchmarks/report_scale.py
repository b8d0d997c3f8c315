"""How long `ssseg report` takes on a 10-hour label job, and how quickly its page opens.

A synthetic job is written the way `ssseg label --shard I/N` leaves one: N shard summaries, job.json, and one
manifest per source in the runtimes' layout (head, then one frame record per line), 10 hours of footage in
10-minute sources sampled at --fps frames per second (36,000 frames at 1 fps). Coverage wanders along each source
with dips; some sources have damaged stretches. Label and confidence PNGs are written for each source's 8 least
confident frames (the only frames a report opens); the source videos themselves do not exist, so the pictures
show the mask and confidence over grey (decoding a frame from a real video costs a seek: measure it on real
footage, e.g. the README's CamVid example).

Measured: `ssseg report JOB` wall time and peak memory (a fresh process each run, the median of --runs), the
page's size, and the time headless Chromium takes to load it (offline, from the file, to the load event).

    .venv/bin/python benchmarks/report_scale.py            # writes benchmarks/results/report_scale.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

CLASSES = ["sky", "building", "road", "sidewalk", "vegetation", "car", "pole", "sign", "pedestrian"]
HW = (90, 160)


def write_job(out: Path, hours: float, minutes_per_source: float, fps: float, shards: int, seed: int = 0) -> dict:
    from PIL import Image

    from ssseg.label.records import FORMAT_VERSION, JOB_FORMAT, MANIFEST_FORMAT, SUMMARY_FORMAT

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    settings = {"model_labeler_sha256": "0" * 64, "threshold": 0.9, "every": None, "fps": fps, "format": "png",
                "confidence": True, "overlay": False, "min_coverage": None}
    (out / "job.json").write_text(json.dumps({"format": JOB_FORMAT, "format_version": FORMAT_VERSION,
                                              "ssseg_version": "bench", "created": "now", "settings": settings}))
    sources = int(round(hours * 60 / minutes_per_source))
    per_source = int(minutes_per_source * 60 * fps)
    frames_total = 0
    per_shard: dict[int, list] = {i: [] for i in range(shards)}
    for s in range(sources):
        key = f"drive{s:03d}"
        folder = out / key
        (folder / "labels").mkdir(parents=True)
        (folder / "confidence").mkdir()
        t = np.arange(per_source) / fps
        cov = 0.7 + 0.15 * np.sin(t / (60 + 10 * s)) + 0.05 * rng.standard_normal(per_source)
        for _ in range(3):  # dips: tunnels, glare
            a = rng.integers(0, per_source - 60)
            cov[a:a + 40] -= rng.uniform(0.3, 0.5)
        cov = np.clip(cov, 0.0, 1.0)
        damage = []
        if s % 7 == 3:
            a = int(rng.integers(100, per_source - 100))
            damage = [{"first": a * 30, "last": a * 30 + 29, "skipped": True, "reason": "error while decoding MB"}]
        records = []
        pixels = HW[0] * HW[1]
        per_class = np.zeros(len(CLASSES), np.int64)
        for i in range(per_source):
            confident = int(cov[i] * pixels)
            share = rng.dirichlet(np.ones(len(CLASSES)))
            classes = np.floor(share * confident).astype(int).tolist()
            per_class += classes
            index = i * 30  # 30 fps video sampled at 1 fps: frame numbers step by 30
            records.append({"index": index, "name": f"{index:06d}", "time": round(index / 30, 3), "size": list(HW),
                            "coverage": round(float(cov[i]), 6), "classes": classes, "written": True,
                            "files": [f"{key}/labels/{index:06d}.png", f"{key}/confidence/{index:06d}.png"]})
        for i in np.argsort(cov, kind="stable")[:8]:
            labels = rng.integers(0, len(CLASSES), HW, dtype=np.uint8)
            labels[rng.random(HW) > cov[i]] = 255
            Image.fromarray(labels).save(folder / "labels" / f"{i * 30:06d}.png")
            Image.fromarray((rng.random(HW) * 255).astype(np.uint8)).save(folder / "confidence" / f"{i * 30:06d}.png")
        head = {"format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, "ssseg_version": "bench", "key": key,
                "source": {"input": f"/footage/{key}.mp4", "kind": "video", "identity": None}, "settings": settings,
                "complete": True, "interrupted": False, "errors": [], "frames_decoded": per_source * 30,
                "frames_sampled": per_source, "frames_written": per_source, "frames_below_min_coverage": 0,
                "frames_skipped": sum(d["last"] - d["first"] + 1 for d in damage), "damage": damage,
                "totals": {"pixels": pixels * per_source, "confident": int(per_class.sum()),
                           "coverage": float(per_class.sum() / (pixels * per_source)),
                           "per_class": dict(zip(CLASSES, per_class.tolist()))},
                "lowest_coverage": [], "overlay": None, "runs": []}
        with open(folder / "manifest.json", "w") as f:
            f.write(json.dumps(head, indent=2)[:-2] + ',\n  "frames": [')
            f.write(",".join("\n    " + json.dumps(r) for r in records))
            f.write("\n  ]\n}\n")
        frames_total += per_source
        per_shard[s % shards].append(key)
    for i in range(shards):
        summary = {"format": SUMMARY_FORMAT, "format_version": FORMAT_VERSION, "ssseg_version": "bench",
                   "settings": settings, "shard": [i, shards], "sources": len(per_shard[i]), "failures": [],
                   "per_source": [], "run": {"started": "now", "backend": {"backend": "trt", "precision": "fp16"},
                                             "batch": 8, "fps": 400.0, "frames_labeled": 0,
                                             "command": f"ssseg label /footage --fps {fps} --shard {i}/{shards}"}}
        (out / f"summary.shard-{i}-of-{shards}.json").write_text(json.dumps(summary))
    return {"sources": sources, "frames": frames_total, "shards": shards,
            "manifest_mb": round(sum(p.stat().st_size for p in out.glob("*/manifest.json")) / 2**20, 1)}


def time_report(job: Path, runs: int) -> dict:
    walls, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        code = ("import resource, sys; from ssseg.report.write import write_report; "
                "write_report(sys.argv[1], say=lambda m: None); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        r = subprocess.run([sys.executable, "-c", code, str(job)], capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t0)
        rss.append(int(r.stdout.strip().splitlines()[-1]) / 1024)
    return {"wall_s": [round(w, 2) for w in walls], "median_s": round(statistics.median(walls), 2),
            "peak_rss_mb": round(max(rss), 1)}


def time_page(html: Path, runs: int) -> dict:
    import shutil

    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    loads = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"] if os.getuid() == 0 else [])
        for _ in range(runs):
            page = browser.new_context(offline=True).new_page()
            t0 = time.perf_counter()
            page.goto(html.as_uri(), wait_until="load")
            loads.append(time.perf_counter() - t0)
            images = page.eval_on_selector_all("img", "is => is.length")
            page.close()
        browser.close()
    return {"load_s": [round(x, 3) for x in loads], "median_load_s": round(statistics.median(loads), 3),
            "images": images}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=10.0)
    p.add_argument("--minutes-per-source", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=1.0, help="frames labeled per second of footage")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "report_scale")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job"
        t0 = time.perf_counter()
        size = write_job(job, args.hours, args.minutes_per_source, args.fps, args.shards)
        print(f"synthetic job: {size} ({time.perf_counter() - t0:.0f} s to write)", flush=True)
        report = time_report(job, args.runs)
        html = job / "report.html"
        page = {"html_mb": round(html.stat().st_size / 2**20, 2),
                "json_mb": round((job / "report.json").stat().st_size / 2**20, 2), **time_page(html, args.runs)}
    result = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)}, "job": size, "report": report,
              "page": page, "max_rss_parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    md = (f"# `ssseg report` on a {args.hours:g}-hour label job\n\n"
          f"Machine: {result['machine'].get('cpu')}; command: `python benchmarks/report_scale.py` "
          f"(`--hours {args.hours:g} --fps {args.fps:g} --shards {args.shards}`).\n\n"
          f"| sources | frames | shards | manifests | report (median of {args.runs}) | peak memory | report.html | "
          f"report.json | page load in Chromium (median) | images on the page |\n"
          f"|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {size['sources']} | {size['frames']} | {size['shards']} | {size['manifest_mb']} MB | "
          f"{report['median_s']} s | {report['peak_rss_mb']} MB | {page['html_mb']} MB | {page['json_mb']} MB | "
          f"{page['median_load_s']} s | {page['images']} |\n")
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
