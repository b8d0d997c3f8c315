"""Dataset specs: ``camvid:PATH``, ``cityscapes:PATH``, ``folder:PATH``, ``synthetic[:options]``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ssseg.data.base import SPLITS, Sample, SegDataset, class_histogram, read_image, read_label_raw
from ssseg.errors import DataError

KINDS = ("camvid", "cityscapes", "folder", "synthetic")


def parse_spec(spec: str) -> tuple[str, str]:
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise DataError(f"unknown dataset spec {spec!r}",
                        fix="use camvid:PATH, cityscapes:PATH, folder:PATH or synthetic")
    if kind != "synthetic" and not rest:
        raise DataError(f"dataset spec {spec!r} has no path", fix=f"write {kind}:PATH")
    return kind, rest


def open_dataset(spec: str, split: str) -> SegDataset:
    kind, rest = parse_spec(spec)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", fix=f"choose one of {', '.join(SPLITS)}")
    if kind == "synthetic":
        from ssseg.data.synthetic import Synthetic, parse_synthetic_options

        return Synthetic(split, **parse_synthetic_options(rest))
    from ssseg.data import readers

    cls = {"camvid": readers.CamVid, "cityscapes": readers.Cityscapes, "folder": readers.Folder}[kind]
    return cls(Path(rest).expanduser(), split)


HOLDOUT = "holdout"  # a run's training images kept out of training for calibration (--holdout)


def holdout_ids(ids: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """The ids a run's --holdout keeps out of training: those that start with one of ``prefixes`` (a drive's
    name, e.g. CamVid's 0001TP). A prefix, not a list, so the same rule holds on a dataset that grew."""
    return sorted(i for i in ids if i.startswith(tuple(prefixes)))


def open_split(spec: str, split: str, holdout: Sequence[str] = ()) -> SegDataset:
    """open_dataset, plus a run's ``holdout`` split: its --holdout images of the train split, labeled, never
    trained on, so thresholds fitted there hold on a drive the segmenter has not seen."""
    if split != HOLDOUT:
        return open_dataset(spec, split)
    if not holdout:
        raise DataError("the run holds no images out of training, so it has no holdout split",
                        fix="calibrate on another labeled split (--calib-split val), or train with --holdout DRIVE")
    train = open_dataset(spec, "train")
    return train.subset(holdout_ids(train.ids, holdout))


__all__ = ["open_dataset", "open_split", "holdout_ids", "HOLDOUT", "parse_spec", "KINDS", "SPLITS", "Sample",
           "SegDataset", "class_histogram", "read_image", "read_label_raw"]
