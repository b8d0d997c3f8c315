"""``ssseg demo``: the main job end to end on the embedded synthetic data, sized for a 2-core CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

DEMO_DATA = "synthetic:size=96x128,train=64,val=16,test=16"


def run_demo(out: Path, epochs: int, device: str, say: Callable[[str], None]) -> None:
    from ssseg.config import TrainConfig
    from ssseg.train.evaluate import run_eval
    from ssseg.train.loop import train

    t0 = time.perf_counter()
    run = Path(out) / "supervised"
    say(f"[1/2] training the segmenter on {DEMO_DATA} (labeled fraction 0.5) for {epochs} epochs")
    cfg = TrainConfig(data=DEMO_DATA, labeled_fraction=0.5, out=run, epochs=epochs, batch_size=8, lr=0.05,
                      device=device, workers=0, eval_every=5, resume=(run / "config.json").exists())
    train(cfg, log=say)
    say("[2/2] evaluating best.pt on the synthetic test split")
    result, path = run_eval(run, None, "test", None, device)
    from ssseg.cli import print_scores

    print_scores(result)
    say(f"done in {time.perf_counter() - t0:.0f} s. Run directory: {run} (config.json, splits/, metrics.jsonl, "
        f"last.pt, best.pt); evaluation: {path}")
