"""Readers for CamVid (SegNet layout), Cityscapes (leftImg8bit + gtFine) and plain folders."""

from __future__ import annotations

import json
from pathlib import Path

from ssseg.classes import CAMVID, CITYSCAPES, PRESETS, ClassSet, camvid_lut, cityscapes_lut
from ssseg.data.base import IMAGE_EXTS, Sample, SegDataset, find_by_stem, list_images
from ssseg.errors import DataError


def _need_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what} folder not found", path=path, fix=fix)
    return path


class CamVid(SegDataset):
    """SegNet layout: {split}/ images, {split}annot/ labels, optional {split}.txt "image label" lists."""

    kind = "camvid"

    def __init__(self, root: Path, split: str):
        root = _need_dir(Path(root), "CamVid", "pass camvid:PATH pointing at the folder holding train/ and trainannot/")
        list_file = root / f"{split}.txt"
        if list_file.exists():
            samples = self._from_list(root, list_file)
        else:
            img_dir = _need_dir(root / split, f"CamVid {split}",
                                f"add {split}/ and {split}annot/ or a {split}.txt list")
            ann_dir = _need_dir(root / f"{split}annot", f"CamVid {split}annot",
                                f"add {split}annot/ with the label PNGs")
            samples = []
            for img in list_images(img_dir):
                lbl = find_by_stem(ann_dir, img.stem, (".png",))
                if lbl is None:
                    raise DataError(f"no label for image {img.name}", path=ann_dir / f"{img.stem}.png",
                                    fix="add the label PNG or remove the image")
                samples.append(Sample(img.stem, img, lbl))
        super().__init__(root, split, CAMVID, samples, camvid_lut())

    @staticmethod
    def _from_list(root: Path, list_file: Path) -> list[Sample]:
        samples = []
        for n, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"line {n} should hold 'image label', got {line!r}", path=list_file)
            # The SegNet tutorial's lists hold absolute paths of the authors' machine: keep the last two parts.
            img, lbl = (root.joinpath(*Path(p).parts[-2:]) for p in parts)
            samples.append(Sample(img.stem, img, lbl))
        return samples


class Cityscapes(SegDataset):
    """leftImg8bit/{split}/{city}/*_leftImg8bit.png with gtFine/{split}/{city}/*_gtFine_labelIds.png."""

    kind = "cityscapes"

    def __init__(self, root: Path, split: str):
        root = _need_dir(Path(root), "Cityscapes",
                         "pass cityscapes:PATH pointing at the folder holding leftImg8bit/ and gtFine/")
        img_root = _need_dir(root / "leftImg8bit" / split, f"Cityscapes leftImg8bit/{split}",
                             "unpack leftImg8bit_trainvaltest.zip there")
        gt_root = _need_dir(root / "gtFine" / split, f"Cityscapes gtFine/{split}",
                            "unpack gtFine_trainvaltest.zip there")
        samples = []
        for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
            stem = img.name[: -len("_leftImg8bit.png")]
            lbl = gt_root / img.parent.name / f"{stem}_gtFine_labelIds.png"
            if not lbl.exists():
                raise DataError(f"no gtFine labelIds for {img.name}", path=lbl, fix="unpack gtFine for this split")
            samples.append(Sample(stem, img, lbl))
        super().__init__(root, split, CITYSCAPES, samples, cityscapes_lut())


def read_classes_json(path: Path) -> ClassSet:
    """classes.json: {"preset": "camvid"} or {"name": ..., "names": [...], "colors": [[r,g,b], ...]}."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read classes.json ({e})", path=path, fix="write valid JSON") from None
    if isinstance(raw, dict) and "preset" in raw:
        if raw["preset"] not in PRESETS:
            raise DataError(f"unknown preset {raw['preset']!r}", path=path, fix=f"use one of {', '.join(PRESETS)}")
        return PRESETS[raw["preset"]]
    try:
        return ClassSet.from_dict({"name": raw.get("name", path.parent.name), **raw})
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"bad class definition ({e})", path=path,
                        fix='write {"names": [...], "colors": [[r, g, b], ...]} or {"preset": "camvid"}') from None


class Folder(SegDataset):
    """images/ + labels/ paired by file stem, either per split (PATH/train/images) or flat (PATH/images,
    train split only). Labels hold train ids 0..C-1 and 255 = ignore; classes.json names the classes."""

    kind = "folder"

    def __init__(self, root: Path, split: str):
        root = _need_dir(Path(root), "dataset", "pass folder:PATH pointing at a folder with images/ and labels/")
        classes_file = root / "classes.json"
        if not classes_file.exists():
            raise DataError("classes.json is missing", path=classes_file,
                            fix='add {"preset": "camvid"} or {"names": [...], "colors": [...]}')
        classes = read_classes_json(classes_file)
        base = root / split
        if not (base / "images").is_dir():
            if (root / "images").is_dir() and split == "train":
                base = root
            else:
                raise DataError(f"no {split} split", path=base / "images",
                                fix=f"add {split}/images and {split}/labels "
                                    f"(a flat images/ + labels/ is the train split only)")
        lbl_dir = _need_dir(base / "labels", "labels", "add labels/ with one PNG per image, same stem")
        samples = []
        for img in list_images(base / "images"):
            lbl = find_by_stem(lbl_dir, img.stem, (".png",))
            if lbl is None:
                raise DataError(f"no label for image {img.name}", path=lbl_dir / f"{img.stem}.png",
                                fix="add the label PNG or remove the image")
            samples.append(Sample(img.stem, img, lbl))
        super().__init__(root, split, classes, samples, None)


__all__ = ["CamVid", "Cityscapes", "Folder", "read_classes_json", "IMAGE_EXTS"]
