"""Is `ssseg export` byte for byte what it was? Trains two tiny runs on synthetic data once (kept in --work, so a
second checkout reuses them), exports them five ways (a confidence net with a dynamic batch, softmax with two
calibrated precisions, entropy with FP16 graphs, ungated at a fixed batch, an ImageNet-pretrained
efficientnet-lite0) and writes the sha256 of every ONNX file and of each model.json (less its creation time and
the run's absolute path). Run it on two commits, each installed (`make install`), and compare the JSON files:

    python benchmarks/export_identity.py --out /tmp/before   # on the old commit
    python benchmarks/export_identity.py --out /tmp/after    # on the new one
    diff /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

DATA = "synthetic:size=64x64,train=8,val=4,test=4"
RUNS = {
    "aux": dict(data=DATA, method="aux", labeled_fraction=0.5, epochs=2, aux_epochs=1, batch_size=4, lr=0.05,
                t_aux=0.7),
    "sup": dict(data=DATA, method="supervised", epochs=1, batch_size=4),
    "lite0": dict(data=DATA, method="supervised", model="efficientnet-lite0", epochs=1, batch_size=4),
}
EXPORTS = {
    "lite0-softmax": ("lite0", {}),
    "aux-net-dyn": ("aux", dict(gate="net", dynamic_batch="1:2:4")),
    "aux-softmax-tp": ("aux", dict(target_precision="0.9,0.97")),
    "aux-entropy-fp16": ("aux", dict(gate="entropy", threshold=0.5, precision="fp32,fp16")),
    "sup-none": ("sup", dict(gate="none", input_size="64x64", batch=2)),
}


def main() -> None:
    from ssseg.config import ExportConfig
    from ssseg.export import run_export
    from ssseg.train.config import TrainConfig
    from ssseg.train.engine import train

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/ssseg-export-identity"), help="runs and exports")
    p.add_argument("--out", type=Path, required=True, help="writes OUT.json")
    args = p.parse_args()
    runs = {}
    for name, kw in RUNS.items():
        out = args.work / "runs" / name
        if not (out / ".trained").exists():  # trained once: both checkouts export the same checkpoints
            train(TrainConfig(out=out, workers=0, device="cpu", **kw), log=lambda *_: None)
            (out / ".trained").write_text("")
        runs[name] = out
    hashes = {}
    for name, (run, kw) in EXPORTS.items():
        out = args.work / args.out.name / name
        run_export(ExportConfig(run=runs[run], out=out, **kw), say=lambda *_: None)
        for f in sorted(out.glob("*.onnx")):
            hashes[f"{name}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
        model = json.loads((out / "model.json").read_text())
        model.pop("created")
        model["source"]["run"] = "-"
        hashes[f"{name}/model.json"] = hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(hashes, indent=1) + "\n")
    print(f"{len(hashes)} files hashed; wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
