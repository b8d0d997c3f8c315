"""The README's worked example: `ssseg label` on real footage, checked against ground truth.

A clip is assembled from the CamVid val frames (in name order, which is capture order; H.264), labeled by
`ssseg label` with a model trained on CamVid (--overlay --confidence), and the written masks are compared
with CamVid's annotations of the same frames: how much of each frame the gate keeps, and how often the kept
pixels are right, against the ungated arg-max. One overlay frame is saved as a PNG for the README.
Writes <out>.json and <out>.md. The clip and the labels are not kept (CamVid is not ours to commit).

Example (the README's numbers):

    .venv/bin/python benchmarks/camvid_label_example.py --camvid ../shared/datasets/camvid \\
        --model runs/bench/camvid_export_model --image docs/label_overlay.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402
from label_throughput import make_clip  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--camvid", type=Path, required=True, help="CamVid root (SegNet layout: val/, valannot/)")
    p.add_argument("--model", type=Path, required=True, help="a model exported from a CamVid --method aux run")
    p.add_argument("--image", type=Path, required=True, help="where to save one overlay frame (PNG)")
    p.add_argument("--frame", type=int, default=40, help="which overlay frame to save")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camvid_label_example")
    args = p.parse_args()

    import av
    import numpy as np
    from PIL import Image

    from ssseg.classes import camvid_lut
    from ssseg.config import LabelConfig
    from ssseg.label import run_label

    frames = sorted(f for f in (args.camvid / "val").iterdir() if f.suffix.lower() in (".png", ".jpg"))
    lut = camvid_lut()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(frames, len(frames), Path(tmp) / "camvid_val.mp4")
        out = Path(tmp) / "labels"
        t0 = time.perf_counter()
        run_label(LabelConfig(inputs=(str(clip),), model=args.model, out=out, overlay=True, confidence=True,
                              backend="ort"), say=lambda m: print(m, flush=True))
        wall = time.perf_counter() - t0
        ungated = Path(tmp) / "ungated"
        run_label(LabelConfig(inputs=(str(clip),), model=args.model, out=ungated, threshold=0.0, backend="ort"),
                  say=lambda m: None)
        summary = json.loads((out / "summary.json").read_text())
        key = summary["per_source"][0]["key"]
        manifest = json.loads((out / key / "manifest.json").read_text())
        threshold = manifest["settings"]["threshold"]
        kept = right = pixels = right_ungated = 0
        per_frame = []
        for i, f in enumerate(frames):
            gt = lut[np.asarray(Image.open(args.camvid / "valannot" / f"{f.stem}.png"))]
            lbl = np.asarray(Image.open(out / key / "labels" / f"{i:06d}.png"))
            valid = gt != 255
            k = valid & (lbl != 255)
            kept += k.sum()
            right += (k & (lbl == gt)).sum()
            pixels += valid.sum()
            arg_max = np.asarray(Image.open(ungated / key / "labels" / f"{i:06d}.png"))
            right_ungated += (valid & (arg_max == gt)).sum()
            per_frame.append({"frame": f.name, "coverage": float(k.sum() / valid.sum()),
                              "kept_accuracy": float((k & (lbl == gt)).sum() / max(k.sum(), 1))})
        with av.open(str(out / key / "overlay.mp4")) as c:
            for i, fr in enumerate(c.decode(video=0)):
                if i == args.frame:
                    args.image.parent.mkdir(parents=True, exist_ok=True)
                    fr.to_image().quantize(64).save(args.image, optimize=True)  # small enough to commit
                    break
        result = {
            "machine": machine(), "command": " ".join(sys.argv), "model": str(args.model), "frames": len(frames),
            "threshold": threshold, "seconds": wall, "fps": summary["run"]["fps"],
            "coverage": kept / pixels, "kept_accuracy": right / kept, "ungated_accuracy": right_ungated / pixels,
            "next_to_label": [f"{frames[n['index']].name} ({100 * n['coverage']:.1f}%)"
                              for n in summary["next_to_label"][:5]],
            "image": str(args.image), "image_frame": frames[args.frame].name, "per_frame": per_frame,
        }
    md = (f"# `ssseg label` on CamVid val footage\n\n{result['machine']['cpu']}, "
          f"commit {result['machine']['git_commit']}.\n\n"
          f"{len(frames)} frames (360x480) as an H.264 clip, model `{args.model}`, threshold {threshold}, "
          f"ORT on the CPU: "
          f"{result['fps']:.1f} frames/s, {wall:.0f} s with start-up.\n\n"
          f"| | value |\n|---|---|\n| annotated pixels kept by the gate | {100 * result['coverage']:.1f}% |\n"
          f"| kept pixels that match the annotation | {100 * result['kept_accuracy']:.1f}% |\n"
          f"| all pixels that match, ungated (threshold 0) | {100 * result['ungated_accuracy']:.1f}% |\n\n"
          f"Lowest confident coverage (label these next): {', '.join(result['next_to_label'])}.\n\n"
          f"Overlay frame {args.frame} ({result['image_frame']}): `{args.image}`.\n")
    write_results(args.out, result, md, show=True)


if __name__ == "__main__":
    main()
