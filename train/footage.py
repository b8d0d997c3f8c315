"""Unlabeled footage as training images (``ssseg train --unlabeled SOURCES``): videos, image folders, globs and
list files, the inputs ``ssseg label`` takes. Frames are decoded once, every N-th, resized to the training scale
and kept as JPEG files under the run directory (footage/<source>/), so every epoch reads small files instead of
decoding video; a source's done.json marks it complete, and an interrupted extraction continues where it
stopped. The frames form a dataset without labels: every pixel is "ignore"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.data.base import Sample, SegDataset, image_size, read_image
from ssseg.errors import DataError, LabelError
from ssseg.io import write_json

JPEG_QUALITY = 95


class Footage(SegDataset):
    """Frames without labels: ``load`` returns the image and an all-ignore label of its size."""

    kind = "footage"

    def __init__(self, root: Path, classes: ClassSet, samples: list[Sample]):
        super().__init__(root, "unlabeled", classes, samples, None)

    def load_label(self, i: int) -> np.ndarray:
        return np.full(image_size(self.samples[i].image), IGNORE_INDEX, np.uint8)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(self.samples[i].image)
        return image, np.full(image.shape[:2], IGNORE_INDEX, np.uint8)

    def check(self, i: int, decode_image: bool = True) -> np.ndarray:
        return self.load(i)[1] if decode_image else self.load_label(i)


def extract_footage(inputs: tuple[str, ...], every: int, scale: tuple[int, int] | None, out: Path, classes: ClassSet,
                    skip_bad: bool, log: Callable[[str], None], write: bool = True) -> tuple[Footage, list[str]]:
    """The frames of ``inputs`` (every ``every``-th) under ``out``, decoded where not done yet; returns the
    dataset and one "source<TAB>reason" line per source skipped (--skip-bad) or cut short by damage.
    ``write`` False (torchrun ranks other than 0) only reads what rank 0 wrote."""
    from ssseg.label.decode import DecodeError, image_frames, open_container, video_frames
    from ssseg.label.inputs import expand_inputs, frame_names

    try:
        sources = expand_inputs(inputs)
    except LabelError as e:
        raise DataError(f"--unlabeled: {e}") from None
    samples, problems = [], []
    for source in sources:
        folder = out / source.key
        done = folder / "done.json"
        if not done.is_file() and write:
            reason = source.error
            if reason is None and source.kind == "stream":
                reason = "streams cannot be training footage (they do not end)"
            if reason is None:
                try:
                    frames = (image_frames(source, frame_names(source.images)) if source.kind == "images"
                              else video_frames(open_container(source)))
                    count = _write_frames(frames, every, scale, folder)
                except DecodeError as e:
                    reason = str(e)
                    count = len(list(folder.glob("*.jpg"))) if folder.is_dir() else 0
                if reason is None or count:
                    write_json(done, {"source": source.input, "every": every, "scale": list(scale) if scale else None,
                                      "frames": count, "problem": reason})
            if reason is not None:
                line = f"unlabeled source {source.input}: {reason}"
                if not skip_bad and not (folder / "done.json").is_file():
                    raise DataError(line, path=source.input, fix="remove it from --unlabeled, or pass --skip-bad to "
                                                                 "train without it")
                problems.append(f"{source.input}\t{reason}")
                log(f"warning: {line}" + (" (its frames before the damage are used)" if done.is_file() else
                                          " (skipped, --skip-bad)"))
        if done.is_file():
            names = sorted(p.name for p in folder.glob("*.jpg"))
            samples += [Sample(f"footage-{source.key}-{Path(n).stem}", folder / n, None) for n in names]
    if not samples:
        raise DataError("--unlabeled gave no frames", path=inputs[0] if inputs else None,
                        fix="check the sources (videos, image folders, globs, list files)")
    return Footage(out, classes, samples), problems


def _write_frames(frames, every: int, scale: tuple[int, int] | None, folder: Path) -> int:
    """Every ``every``-th frame as folder/<frame>.jpg (resized to ``scale``), each written atomically; frames
    already there are kept, so an interrupted source continues."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for frame in frames:
        if frame.index % every:
            continue
        count += 1
        path = folder / f"{frame.name}.jpg"
        if path.is_file():
            continue
        image = Image.fromarray(frame.rgb())
        if scale is not None and image.size != (scale[1], scale[0]):
            image = image.resize((scale[1], scale[0]), Image.BILINEAR)
        tmp = folder / f".{frame.name}.jpg.tmp"
        image.save(tmp, format="JPEG", quality=JPEG_QUALITY)
        os.replace(tmp, path)
    return count
