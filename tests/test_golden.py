"""A fixed-seed short run of each method on synthetic data gives the values recorded in golden_metrics.json.

The values were recorded with the code before the training engine was rewritten (issue 15), so this test
holds the rewrite to the old behaviour: same initialisation, same batches, same random-number order, same
losses. Timings are left out; the tolerance absorbs float differences between CPUs (AVX2 vs AVX-512 kernels),
while a changed random-number order or loss moves the values by whole percents.

Re-record (only after a deliberate change of behaviour, said so in the commit):
    SSSEG_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ssseg.io import read_jsonl
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train

GOLDEN = Path(__file__).with_name("golden_metrics.json")
DATA = "synthetic:size=64x64,train=8,val=4,test=4,seed=3"
COMMON = dict(data=DATA, model="dsnet-fast-ss", labeled_fraction=0.5, epochs=2, batch_size=4, lr=0.05, workers=0,
              device="cpu", seed=7)
METHODS = {
    "supervised": {},
    "aux": dict(aux_epochs=2, t_aux=0.5),
    "adversarial": dict(adv_warmup="1ep"),
    "dual-disc": dict(adv_warmup="1ep"),
    "latent": dict(latent_classes=6),
    "self-train": dict(st_all_batch=2),
}
TIMING = ("images_per_s", "epoch_s", "seconds", "finished", "seconds_this_invocation")


def strip(value):
    """The record without timings, for comparison."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def record(run: Path) -> dict:
    """metrics.jsonl of every folder of the run, its done.json and summary.json, by relative path."""
    out = {}
    for path in sorted(run.rglob("metrics.jsonl")):
        out[str(path.relative_to(run))] = strip(read_jsonl(path))
    for name in ("done.json", "summary.json", "aux_terms.json", "manifest.json"):
        for path in sorted(run.rglob(name)):
            data = json.loads(path.read_text())
            if name == "manifest.json":
                data = {k: data[k] for k in ("images", "kept_share") if k in data}
            if name == "done.json":
                data = {k: v for k, v in data.items() if k not in ("init", "sha256")}
            out[str(path.relative_to(run))] = strip(data)
    return out


def close(a, b, where: str) -> None:
    if isinstance(a, dict):
        # new keys (files, fields) may appear; every recorded one must still be there with its value
        assert isinstance(b, dict) and set(a) <= set(b), f"{where}: missing {sorted(set(a) - set(b))}"
        for k in a:
            close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: length {len(b)} != {len(a)}"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        # past a hard pseudo-label threshold (stage 3, and the summary that reports it) a kernel-level float
        # difference flips the pixels at the threshold: 2.6e-3 between an AVX2 and an AVX-512 CPU, still well
        # below the whole percents a changed random-number order or loss moves
        tol = 5e-3 if "stage3" in where or "summary.json" in where else 1e-3
        assert b == pytest.approx(a, rel=1e-3, abs=tol), f"{where}: {b} != {a} (recorded)"
    else:
        assert a == b, f"{where}: {b!r} != {a!r} (recorded)"


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_fixed_seed_run_matches_the_recorded_metrics(tmp_path, method):
    cfg = TrainConfig(method=method, out=tmp_path / method, **COMMON, **METHODS[method])
    got = record(train(cfg, log=lambda *_: None))
    if os.environ.get("SSSEG_WRITE_GOLDEN"):
        golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        golden[method] = got
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {method} in {GOLDEN.name}")
    close(json.loads(GOLDEN.read_text())[method], got, method)
