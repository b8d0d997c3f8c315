"""The README's report screenshots: `ssseg report` on a CamVid training run and on a label job of CamVid footage.

The footage is a clip of the frames in --frames (in name order, which is capture order; H.264, 10 fps), labeled by
the model exported from --run with --confidence --report. The run's gate is measured on its val split first when
the run has no gate_val.json (`ssseg eval RUN --gate ...`, what `ssseg train` now does at its end). Screenshots of
the top of both pages (headless Chromium) go to --docs. The clip and the labels are not kept.

    .venv/bin/python benchmarks/camvid_report_example.py --run runs/bench/ssl-gpu/supervised-strong_f0.5_s0 \\
        --model runs/bench/models/paper-sup --frames runs/bench/ssl-gpu/protocol/test --docs docs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402
from label_throughput import make_clip  # noqa: E402

SSSEG = [sys.executable, "-m", "ssseg"]


def shoot(html: Path, png: Path, height: int) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"] if os.getuid() == 0 else [])
        page = browser.new_context(offline=True, viewport={"width": 1150, "height": height}).new_page()
        page.goto(html.resolve().as_uri(), wait_until="load")
        page.screenshot(path=str(png))
        browser.close()
    Image.open(png).convert("RGB").quantize(128).save(png, optimize=True)  # small enough to commit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a CamVid training run")
    p.add_argument("--model", type=Path, required=True, help="that run exported (ssseg export)")
    p.add_argument("--frames", type=Path, required=True, help="a folder of consecutive CamVid frames")
    p.add_argument("--docs", type=Path, required=True, help="where the screenshots go")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_report_example")
    args = p.parse_args()
    timings = {}
    if not (args.run / "gate_val.json").is_file():
        subprocess.run([*SSSEG, "eval", str(args.run), "--gate", "0.5,0.7,0.8,0.9", "--json",
                        str(args.run / "gate_val.json"), "--device", "cpu"], check=True)
    t0 = time.perf_counter()
    subprocess.run([*SSSEG, "report", str(args.run)], check=True)
    timings["run_report_s"] = round(time.perf_counter() - t0, 2)
    shoot(args.run / "report.html", args.docs / "report_run.png", 1500)
    frames = sorted(f for f in args.frames.iterdir() if f.suffix.lower() in (".png", ".jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(frames, len(frames), Path(tmp) / f"{args.frames.name}.mp4")
        job = Path(tmp) / "labels"
        t0 = time.perf_counter()
        r = subprocess.run([*SSSEG, "label", str(clip), "--model", str(args.model), "--out", str(job), "--confidence",
                            "--backend", "ort", "--report"], capture_output=True, text=True)
        timings["label_with_report_s"] = round(time.perf_counter() - t0, 2)
        print(r.stdout[-2000:], r.stderr[-2000:])
        t0 = time.perf_counter()
        subprocess.run([*SSSEG, "report", str(job)], check=True)
        timings["label_report_s"] = round(time.perf_counter() - t0, 2)
        shoot(job / "report.html", args.docs / "report_label.png", 1900)
        data = json.loads((job / "report.json").read_text())
    summary = {"frames": data["totals"]["frames_labeled"], "coverage": data["totals"]["coverage"],
               "pictures": len(data["next_to_label"]), "gate": data["model"]["gate"] and data["model"]["gate"]["kind"]}
    result = {"machine": machine(), "settings": {k: str(v) for k, v in vars(args).items()}, "timings": timings,
              "label_job": summary}
    md = (f"# CamVid report example\n\nMachine: {result['machine'].get('cpu')}.\n\n"
          f"| run report | label job ({summary['frames']} frames) with --report | label report alone | "
          f"confident pixels | pictures |\n|---|---|---|---|---|\n"
          f"| {timings['run_report_s']} s | {timings['label_with_report_s']} s | {timings['label_report_s']} s | "
          f"{100 * summary['coverage']:.1f}% | {summary['pictures']} |\n")
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
