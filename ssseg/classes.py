"""Class sets: names, display colours and the raw-label -> train-id mapping of each dataset.

This is the one place class definitions live; datasets, training, export (model.json) and the
labeling tools all read them from here or from a checkpoint/model.json that copied them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
# Marks raw label values that are not part of a dataset's label space (an error, not "ignore").
INVALID = -1


@dataclass(frozen=True)
class ClassSet:
    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(f"class set {self.name!r}: {len(self.names)} names, {len(self.colors)} colours")
        if not 0 < len(self.names) < IGNORE_INDEX:
            raise ValueError(f"class set {self.name!r}: needs 1..254 classes, has {len(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"name": self.name, "names": list(self.names), "colors": [list(c) for c in self.colors]}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassSet":
        return cls(str(d["name"]), tuple(str(n) for n in d["names"]),
                   tuple(tuple(int(v) for v in c) for c in d["colors"]))

    def identity_lut(self) -> np.ndarray:
        """Raw value -> train id for label maps that already hold train ids (0..C-1, 255 ignore)."""
        lut = np.full(256, INVALID, np.int16)
        lut[: self.num_classes] = np.arange(self.num_classes)
        lut[IGNORE_INDEX] = IGNORE_INDEX
        return lut

    def palette(self) -> np.ndarray:
        """A 256x3 uint8 palette: class colours, black elsewhere (ignore included)."""
        pal = np.zeros((256, 3), np.uint8)
        pal[: self.num_classes] = np.asarray(self.colors, np.uint8)
        return pal


CAMVID = ClassSet(
    "camvid",
    ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
     (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
)
# SegNet-layout CamVid stores 0..10 and 11 = Unlabelled.
CAMVID_RAW_IGNORE = 11

CITYSCAPES = ClassSet(
    "cityscapes",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
     "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
     (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
     (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)),
)
# Cityscapes labelIds (0..33) of the 19 evaluated classes, in train-id order (cityscapesScripts' labels.py).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

SYNTHETIC = ClassSet(
    "synthetic",
    ("sky", "building", "road", "sidewalk", "vegetation", "car", "pole", "sign", "pedestrian"),
    ((70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 142),
     (153, 153, 153), (220, 220, 0), (220, 20, 60)),
)

PRESETS: dict[str, ClassSet] = {c.name: c for c in (CAMVID, CITYSCAPES, SYNTHETIC)}


def camvid_lut() -> np.ndarray:
    lut = CAMVID.identity_lut()
    lut[CAMVID_RAW_IGNORE] = IGNORE_INDEX
    lut[IGNORE_INDEX] = INVALID
    return lut


def cityscapes_lut() -> np.ndarray:
    # Every labelId 0..33 is legal; those outside the 19 classes are ignored. -1 (license plate)
    # is stored as 255 by some tools and is ignored as well.
    lut = np.full(256, INVALID, np.int16)
    lut[:34] = IGNORE_INDEX
    lut[255] = IGNORE_INDEX
    for train_id, label_id in enumerate(CITYSCAPES_LABEL_IDS):
        lut[label_id] = train_id
    return lut
