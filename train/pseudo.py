"""Pseudo-labels as PNGs: stage 3 of --method aux (the unlabeled images, labeled by the stage-1 segmenter
and gated by the auxiliary net: label and confidence maps) and the pseudo-masks of --method self-train (every
training image, the segmenter's arg-max, no gate).

Resumable image by image: each image's two PNGs are written atomically, then one line goes into this
rank's manifest.rank{R}.jsonl; a re-run skips the images listed there. Rank 0 merges the lines into
manifest.json at the end."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ssseg.classes import IGNORE_INDEX
from ssseg.data import SegDataset
from ssseg.data.pseudo import pseudo_label_path
from ssseg.gate import apply
from ssseg.io import read_jsonl, write_json
from ssseg.models.confidence import segment_with_confidence
from ssseg.rundir import MANIFEST_FILE
from ssseg.train.data import Norm, normalize
from ssseg.train.distributed import DistInfo, barrier
from ssseg.train.transforms import resize_pair


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)


class _Images(torch.utils.data.Dataset):
    def __init__(self, ds: SegDataset, indices: list[int]):
        self.ds, self.indices = ds, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = self.indices[k]
        return i, torch.from_numpy(np.array(self.ds.load_image(i)))


@torch.no_grad()
def write_pseudo_labels(segmenter: torch.nn.Module, aux: torch.nn.Module | None, images: SegDataset, out: Path,
                        threshold: float, scale: tuple[int, int] | None, info: DistInfo, log: Callable[[str], None],
                        workers: int = 0, amp: bool = False, provenance: dict | None = None) -> dict:
    """Write out/labels/{id}.png (train ids, 255 = not confident) and out/confidence/{id}.png (confidence x 255)
    for every image of ``images``, at the image's own size; returns the manifest (also out/manifest.json).
    Without ``aux`` every pixel keeps its arg-max and no confidence maps are written.

    The network runs at ``scale`` (the training scale) and the gate is applied there; label and confidence
    are then resized back with nearest-neighbour, so the pseudo-label matches its image like ground truth."""
    device = info.device
    c = images.classes.num_classes
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / f"manifest.rank{info.rank}.jsonl"
    done = {r["id"] for r in read_jsonl(records_path)
            if pseudo_label_path(out / "labels", r["id"]).exists()
            and (aux is None or pseudo_label_path(out / "confidence", r["id"]).exists())}
    mine = [i for i in range(info.rank, len(images), info.world_size) if images.samples[i].id not in done]
    if done:
        log(f"pseudo-labels: {len(done)} image(s) already written, {len(mine)} to go (this process)")
    segmenter.eval()
    if aux is not None:
        aux.eval()
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(_Images(images, mine), batch_size=None, num_workers=workers)
    with open(records_path, "a") as records:
        for n, (i, image) in enumerate(loader, 1):
            native = image.shape[:2]
            x = image.numpy()
            if scale:
                x, _ = resize_pair(x, None, scale)
            xt = normalize(torch.from_numpy(np.array(x))[None], device, Norm.of(segmenter))
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                if aux is None:
                    logits, aux_logits = segmenter(xt), None
                else:
                    logits, aux_logits = segment_with_confidence(segmenter, aux, xt)
            label = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
            maps = {"labels": label}
            if aux_logits is not None:
                conf = torch.sigmoid(aux_logits.float())[0, 0].cpu().numpy()
                maps = {"labels": apply(label, conf, threshold),
                        "confidence": np.clip(np.rint(conf * 255), 0, 255).astype(np.uint8)}
            sid = images.samples[int(i)].id
            for folder, array in maps.items():
                if tuple(array.shape) != tuple(native):
                    array = np.asarray(Image.fromarray(array).resize((int(native[1]), int(native[0])), Image.NEAREST))
                maps[folder] = array
                _save_png(array, pseudo_label_path(out / folder, sid))
            label = maps["labels"]
            counts = np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=c)[:c]
            records.write(json.dumps({"id": sid, "pixels": int(label.size), "kept": int(counts.sum()),
                                      "class_pixels": counts.tolist()}) + "\n")
            records.flush()
            if n % 50 == 0 or n == len(mine):
                log(f"pseudo-labels: {n}/{len(mine)} ({n / (time.perf_counter() - t0):.1f} img/s)")
    barrier(info)
    manifest = merge_manifest(out, images, threshold, provenance or {})
    if info.is_main:
        write_json(out / MANIFEST_FILE, manifest)
    barrier(info)
    return manifest


def merge_manifest(out: Path, images: SegDataset, threshold: float, provenance: dict) -> dict:
    """Collect every rank's lines into one manifest (counts per image and in total)."""
    by_id: dict[str, dict] = {}
    for path in sorted(out.glob("manifest.rank*.jsonl")):
        for r in read_jsonl(path):
            by_id[r["id"]] = r
    missing = [s.id for s in images.samples if s.id not in by_id]
    if missing:
        raise RuntimeError(f"{len(missing)} unlabeled image(s) have no pseudo-label record, e.g. {missing[0]}")
    rows = [by_id[s.id] for s in images.samples]
    pixels = sum(r["pixels"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    class_pixels = np.sum([r["class_pixels"] for r in rows], axis=0).astype(np.int64)
    manifest = {
        "threshold": threshold,
        "images": len(rows),
        "pixels": pixels,
        "kept_pixels": kept,
        "kept_share": kept / pixels if pixels else 0.0,
        "class_pixels": dict(zip(images.classes.names, class_pixels.tolist())),
        **provenance,
        "per_image": rows,
    }
    return manifest
