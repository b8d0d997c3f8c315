"""Export-time parity: each ONNX graph in ONNX Runtime against the PyTorch module it came from, on the
same uint8 frames. Tolerances are for FP32 on both sides; a breach fails the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.runtime.frames import batches
from ssseg.runtime.ort import ort_session

TOLERANCES = {
    "logits_max_abs_diff": 1e-2,    # logits span about +-30; FP32 reorderings differ by ~1e-5
    "min_argmax_agreement": 0.999,  # share of pixels whose class matches (ties may flip a few)
    "confidence_max_abs_diff": 1e-3,
}


def _run_torch(module: torch.nn.Module, *args: np.ndarray):
    with torch.no_grad():
        out = module(*(torch.from_numpy(a) for a in args))
    return tuple(o.numpy() for o in (out if isinstance(out, tuple) else (out,)))


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def compare(graphs: dict[str, tuple[torch.nn.Module, Path]], frames: np.ndarray, batch_sizes: list[int]) -> dict:
    """Run every graph (the segmenter always among them) on ``frames`` (uint8 NHWC) at each batch size;
    returns the worst case per metric."""
    stats: dict[str, dict[str, float]] = {}

    def worst(graph: str, key: str, value: float, lower_is_worse: bool) -> None:
        cur = stats.setdefault(graph, {}).get(key)
        if cur is None or (value < cur if lower_is_worse else value > cur):
            stats[graph][key] = value

    sessions = {name: ort_session(path) for name, (_, path) in graphs.items()}
    for size in batch_sizes:
        for batch in batches(list(frames), size, fill=True):
            (logits,) = _run_torch(graphs["segmenter"][0], batch)
            (got,) = sessions["segmenter"].run(None, {"image": batch})
            worst("segmenter", "logits_max_abs_diff", float(np.abs(logits - got).max()), False)
            worst("segmenter", "argmax_agreement", _agreement(logits.argmax(1), got.argmax(1)), True)
            if "aux" in graphs:
                module = graphs["aux"][0]
                probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
                feeds = {"probs": probs, **({"image": batch} if module.aux.with_rgb else {})}
                (ref,) = _run_torch(module, *feeds.values())
                (got,) = sessions["aux"].run(None, feeds)
                worst("aux", "confidence_max_abs_diff", float(np.abs(ref - got).max()), False)
            if "labeler" in graphs:
                ref = _run_torch(graphs["labeler"][0], batch)
                got = sessions["labeler"].run(None, {"image": batch})
                worst("labeler", "label_agreement", _agreement(ref[0], got[0]), True)
                if len(ref) > 1:
                    worst("labeler", "confidence_max_abs_diff", float(np.abs(ref[1] - got[1]).max()), False)
    return stats


def failures(stats: dict[str, dict[str, float]], tolerances: dict = TOLERANCES) -> list[str]:
    out = []
    for graph, metrics in stats.items():
        for key, value in metrics.items():
            if key.endswith("agreement"):
                if value < tolerances["min_argmax_agreement"]:
                    out.append(f"{graph}: {key} {100 * value:.3f}% < {100 * tolerances['min_argmax_agreement']:.1f}%")
            elif value > tolerances[key]:
                out.append(f"{graph}: {key} {value:.2e} > {tolerances[key]:.0e}")
    return out


def format_table(stats: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"  {'graph':<10} {'metric':<26} {'value':>12}  tolerance"]
    for graph, metrics in stats.items():
        for key, value in metrics.items():
            if key.endswith("agreement"):
                lines.append(f"  {graph:<10} {key:<26} {100 * value:>11.4f}%  "
                             f">= {100 * TOLERANCES['min_argmax_agreement']:.1f}%")
            else:
                lines.append(f"  {graph:<10} {key:<26} {value:>12.2e}  <= {TOLERANCES[key]:.0e}")
    return lines
