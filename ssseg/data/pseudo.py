"""Pseudo-labeled images (stage 3 of --method aux) and the union of several datasets.

Pseudo-labels are PNGs of train ids with 255 where the confidence gate said "not sure"; they live in the
run directory, never next to the source images, so ground truth is never overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssseg.data.base import Sample, SegDataset


def pseudo_label_path(root: Path, sample_id: str) -> Path:
    return Path(root) / f"{sample_id}.png"


class PseudoLabeled(SegDataset):
    """The images of ``images`` (a dataset whose labels are not used) with labels read from ``label_root``."""

    kind = "pseudo"

    def __init__(self, images: SegDataset, label_root: Path):
        self.images = images
        samples = [Sample(s.id, s.image, pseudo_label_path(label_root, s.id)) for s in images.samples]
        super().__init__(Path(label_root), images.split, images.classes, samples, None)
        self._index = {s.id: i for i, s in enumerate(images.samples)}

    def load_image(self, i: int) -> np.ndarray:
        return self.images.load_image(self._index[self.samples[i].id])

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.load_image(i), self.load_label(i)
        if image.shape[:2] != label.shape:
            from ssseg.errors import DataError

            raise DataError(f"pseudo-label is {label.shape[1]}x{label.shape[0]} but its image is "
                            f"{image.shape[1]}x{image.shape[0]} (WxH)", path=self.samples[i].label,
                            fix="redo stage 3 (--from-stage 3): the source image changed since it was labeled")
        return image, label

    def check(self, i: int, decode_image: bool = True) -> np.ndarray:
        return self.load(i)[1] if decode_image else self.load_label(i)


class Concat(SegDataset):
    """Several datasets with the same class set, one after the other (ids must not repeat)."""

    kind = "concat"

    def __init__(self, parts: list[SegDataset]):
        names = {tuple(p.classes.names) for p in parts}
        if len(names) != 1:
            raise ValueError("Concat needs parts with one class set")
        self.parts = list(parts)
        self._where = [(k, j) for k, p in enumerate(self.parts) for j in range(len(p))]
        samples = [s for p in self.parts for s in p.samples]
        if len({s.id for s in samples}) != len(samples):
            raise ValueError("Concat parts share sample ids")
        super().__init__(None, parts[0].split, parts[0].classes, samples, None)

    def _part(self, i: int) -> tuple[SegDataset, int]:
        k, j = self._where[i]
        return self.parts[k], j

    def load_image(self, i: int) -> np.ndarray:
        part, j = self._part(i)
        return part.load_image(j)

    def load_label(self, i: int) -> np.ndarray:
        part, j = self._part(i)
        return part.load_label(j)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        part, j = self._part(i)
        return part.load(j)

    def check(self, i: int, decode_image: bool = True) -> np.ndarray:
        part, j = self._part(i)
        return part.check(j, decode_image)

    def subset(self, ids: list[str] | set[str]) -> "Concat":
        return Concat([p.subset(ids) for p in self.parts])
