"""Where each frame's files go, per ``--format``, so labeling and training tools read them directly.

- ``png``: OUT/<source>/labels/<frame>.png (uint8 class ids, 255 = not confident), confidence/<frame>.png.
- ``cityscapes``: the cityscapesScripts layout, one "city" per source, split ``train``:
  leftImg8bit/train/<city>/<city>_000000_<frame>_leftImg8bit.png and gtFine/train/<city>/..._gtFine_
  labelTrainIds.png (255 = ignore), plus ..._gtFine_labelIds.png when the model predicts the 19 Cityscapes
  classes (not-confident pixels become labelId 0, "unlabeled").
- ``camvid``: the SegNet layout: train/<source>_<frame>.png, trainannot/<source>_<frame>.png with
  not-confident pixels = the number of classes (11 = Unlabelled for CamVid), and train.txt.

Per source, manifest.json and overlay.mp4 go to OUT/<source>/ (png) or OUT/meta/<source>/ (the others,
keeping the dataset trees clean). Every file is written through a temporary name and a rename."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ssseg.classes import CITYSCAPES, CITYSCAPES_LABEL_IDS, IGNORE_INDEX, ClassSet
from ssseg.io import atomic_write_bytes, atomic_write_text, remove_stale_temporaries

SPLIT = "train"  # pseudo-labels are training data
PNG_LEVEL = 1  # zlib level: label maps compress almost as well at 1 as at 6, at a fraction of the time


def encode_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def confidence_u8(conf: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] as 0..255 (round half up, the same in the C++ runtime)."""
    return np.floor(np.clip(conf, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Layout:
    """Paths of one format. ``files`` names a frame's outputs relative to OUT; ``write`` writes them."""

    name = "?"

    def __init__(self, out: Path, classes: ClassSet, confidence: bool):
        self.out, self.classes, self.confidence = Path(out), classes, confidence

    def meta_dir(self, key: str) -> Path:
        return self.out / "meta" / key

    def meta_dirs(self) -> list[Path]:
        """Every source folder holding a manifest or journal (of every shard)."""
        return [p.parent for p in sorted([*self.meta_dir("*").parent.glob("*/manifest.json"),
                                          *self.meta_dir("*").parent.glob("*/frames.jsonl")])]

    def files(self, key: str, index: int, name: str) -> dict[str, str]:
        """{role: path relative to OUT}; roles: labels (always), image, label_ids, confidence."""
        raise NotImplementedError

    def remove_stale(self, key: str) -> int:
        """Temporaries a killed run left for this source's files (other sources' are not touched: in a
        shared folder they may belong to another shard that is running)."""
        a, b = self.files(key, 0, "a"), self.files(key, 999999, "b")  # what all of this source's names share
        removed = remove_stale_temporaries(self.meta_dir(key))
        for role in a:
            prefix = os.path.commonprefix([Path(a[role]).name, Path(b[role]).name])
            removed += remove_stale_temporaries((self.out / a[role]).parent, prefix)
        return removed

    def label_arrays(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """The label files' contents from gated class ids (255 = not confident)."""
        return {"labels": labels}

    def write(self, key: str, index: int, name: str, labels: np.ndarray, conf: np.ndarray | None,
              rgb: np.ndarray | None) -> tuple[list[str], list[str]]:
        """Gated labels (255 = not confident), confidence as 0..255 and the decoded frame, all at the frame's
        size -> (the written paths, labels first; the sha256 of each, which --resume and the report check)."""
        files = self.files(key, index, name)
        arrays = self.label_arrays(labels)
        if "confidence" in files:
            arrays["confidence"] = conf
        if "image" in files:
            arrays["image"] = rgb
        digests = {}
        for role, rel in files.items():
            data = encode_png(arrays[role])
            atomic_write_bytes(self.out / rel, data)
            digests[rel] = hashlib.sha256(data).hexdigest()
        paths = [files["labels"], *sorted(v for k, v in files.items() if k != "labels")]
        return paths, [digests[p] for p in paths]

    def finish(self, manifest_paths: list[Path]) -> None:
        """Job-level files (list files) from the manifests of every finished source of the job (all shards')."""


class PngLayout(Layout):
    name = "png"

    def meta_dir(self, key: str) -> Path:
        return self.out / key

    def files(self, key, index, name):
        files = {"labels": f"{key}/labels/{name}.png"}
        if self.confidence:
            files["confidence"] = f"{key}/confidence/{name}.png"
        return files


class CityscapesLayout(Layout):
    name = "cityscapes"

    def __init__(self, out, classes, confidence):
        super().__init__(out, classes, confidence)
        self.label_ids = classes.names == CITYSCAPES.names
        lut = np.zeros(256, np.uint8)  # everything not a class -> 0 "unlabeled"
        lut[: len(CITYSCAPES_LABEL_IDS)] = CITYSCAPES_LABEL_IDS
        self.lut = lut

    def files(self, key, index, name):
        stem = f"{key}_000000_{index:06d}"
        gt = f"gtFine/{SPLIT}/{key}/{stem}_gtFine"
        files = {"image": f"leftImg8bit/{SPLIT}/{key}/{stem}_leftImg8bit.png", "labels": f"{gt}_labelTrainIds.png"}
        if self.label_ids:
            files["label_ids"] = f"{gt}_labelIds.png"
        if self.confidence:
            files["confidence"] = f"{gt}_confidence.png"
        return files

    def label_arrays(self, labels):
        arrays = {"labels": labels}
        if self.label_ids:
            arrays["label_ids"] = self.lut[labels]
        return arrays


class CamvidLayout(Layout):
    name = "camvid"

    def files(self, key, index, name):
        files = {"image": f"{SPLIT}/{key}_{name}.png", "labels": f"{SPLIT}annot/{key}_{name}.png"}
        if self.confidence:
            files["confidence"] = f"{SPLIT}conf/{key}_{name}.png"
        return files

    def label_arrays(self, labels):
        void = np.uint8(self.classes.num_classes)
        return {"labels": np.where(labels == IGNORE_INDEX, void, labels).astype(np.uint8)}

    def finish(self, manifest_paths):
        import fcntl
        import json

        # Shards sharing OUT each rewrite the list after their own manifests are in place; the lock makes the
        # last writer see every finished shard's manifests.
        with open(self.out / f".{SPLIT}.txt.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lines = []
            for path in sorted(p for p in manifest_paths if p.is_file()):
                for frame in json.loads(path.read_text())["frames"]:
                    files = frame.get("files") or []
                    image = next((f for f in files if f.startswith(f"{SPLIT}/")), None)
                    label = next((f for f in files if f.startswith(f"{SPLIT}annot/")), None)
                    if image and label:
                        lines.append(f"/SegNet/CamVid/{image} /SegNet/CamVid/{label}")
            atomic_write_text(self.out / f"{SPLIT}.txt", "".join(line + "\n" for line in lines))


LAYOUTS = {c.name: c for c in (PngLayout, CityscapesLayout, CamvidLayout)}


def make_layout(fmt: str, out: Path, classes: ClassSet, confidence: bool) -> Layout:
    return LAYOUTS[fmt](out, classes, confidence)
