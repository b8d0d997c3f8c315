"""Dataset specs: ``camvid:PATH``, ``cityscapes:PATH``, ``folder:PATH``, ``synthetic[:options]``."""

from __future__ import annotations

from pathlib import Path

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


__all__ = ["open_dataset", "parse_spec", "KINDS", "SPLITS", "Sample", "SegDataset", "class_histogram",
           "read_image", "read_label_raw"]
