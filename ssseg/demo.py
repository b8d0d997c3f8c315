"""``ssseg demo``: the main job end to end on the embedded synthetic data, sized for a 2-core CPU: the
three stages of --method aux, the baseline-vs-semi comparison and the confidence gate on the test split, then
the export to ONNX (segmenter and fused labeler, gated by max softmax at per-class thresholds for 0.97
precision, the default) verified against PyTorch in ONNX Runtime, a
short speed comparison of the two runtimes, and auto-labeling a synthetic clip with the exported model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

# 80x112 and 60 + 20 epochs: the whole demo in about 5 minutes of a 2-core AVX2 CPU (at 96x128 and 100 + 30
# epochs it took 13); the segmenter still learns the scenes and the gate still separates right from wrong
DEMO_DATA = "synthetic:size=80x112,train=64,val=16,test=16"
DEMO_GATES = (0.0, 0.7, 0.8, 0.9)


def run_demo(out: Path, epochs: int, aux_epochs: int, device: str, say: Callable[[str], None]) -> None:
    from ssseg import api
    from ssseg.config import BenchConfig, ExportConfig, LabelConfig
    from ssseg.data.synthetic import write_synthetic_clip
    from ssseg.label.records import JOB_FILE
    from ssseg.rundir import BEST_FILE, RunDir
    from ssseg.tables import print_gate
    from ssseg.train.config import TrainConfig
    from ssseg.train.evaluate import run_eval, run_gate_eval

    t0 = time.perf_counter()
    run = Path(out) / "aux"
    rundir = RunDir(run)
    say(f"[1/6] --method aux on {DEMO_DATA}: half the training images labeled, {epochs} segmenter epochs, "
        f"{aux_epochs} auxiliary-net epochs")
    cfg = TrainConfig(data=DEMO_DATA, method="aux", labeled_fraction=0.5, out=run, epochs=epochs, aux_epochs=aux_epochs,
                      batch_size=8, lr=0.05, device=device, workers=0, eval_every=5,
                      resume=rundir.exists())
    api.train(cfg, say)
    say("[2/6] the confidence gate of the stage-1 segmenter on the synthetic test split")
    gate, gate_path = run_gate_eval(run, None, "test", None, DEMO_GATES, device=device)
    print_gate(gate)
    say("[3/6] baseline vs semi-supervised on the synthetic test split")
    base, _ = run_eval(rundir.stage(1) / BEST_FILE, None, "test", run / "eval_test_stage1.json", device)
    semi, _ = run_eval(rundir.stage(3) / BEST_FILE, None, "test", run / "eval_test_stage3.json", device)
    say(f"  stage 1, labeled images only:        test mIoU {100 * base['miou']:.1f}")
    say(f"  stage 3, + gated pseudo-labels (0.9): test mIoU {100 * semi['miou']:.1f} "
        f"({100 * (semi['miou'] - base['miou']):+.1f})")
    say("[4/6] export to ONNX, verified against PyTorch in ONNX Runtime")
    model = api.export(ExportConfig(run=run, out=run / "model", verify_images=8), say)
    say("[5/6] speed of the exported labeler: ONNX Runtime vs PyTorch eager on this machine")
    api.bench(BenchConfig(model.parent, backends=("ort", "torch"), iters=20, warmup=3, stages=("segmenter", "labeler"),
                          compare=True), say)
    say("[6/6] auto-labeling a synthetic drive clip with the exported model (gated masks, overlay, summary)")
    clip = Path(out) / "clip.mp4"
    if not clip.exists():  # rewriting it would change its mtime, and the labels of a re-run would not resume
        write_synthetic_clip(clip, 48, (96, 128))
    labels = Path(out) / "labels"
    api.label(LabelConfig(inputs=(str(clip),), model=model.parent, out=labels, overlay=True, confidence=True,
                          resume=(labels / JOB_FILE).exists(), report=True), say)
    say(f"done in {time.perf_counter() - t0:.0f} s. "
        f"Run directory: {run} (stage1/, stage2/, stage3/pseudo/, summary.json); "
        f"gate: {gate_path} and {gate_path.with_suffix('.png')}; model: {model.parent}; labels: {labels} "
        f"(clip/labels/, clip/overlay.mp4, summary.json). Open {run / 'report.html'} and {labels / 'report.html'} "
        f"in a browser")
