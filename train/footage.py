"""Unlabeled footage as training images (``ssseg train --unlabeled SOURCES``): videos, image folders, globs and
list files, the inputs ``ssseg label`` takes. Frames are decoded once, every N-th, resized to the training scale
and kept as JPEG files under the run directory (footage/<source>/), so every epoch reads small files instead of
decoding video; a source's done.json marks it complete, and an interrupted extraction continues where it
stopped. The frames form a dataset without labels: every pixel is "ignore".

Hours of footage must not fill the disk: --unlabeled-max-frames bounds the frames kept over all sources. Each
source gets a share of that budget in proportion to the frames it declares and a stride that spreads its share
over the whole source (a drive's first minutes alone would teach little), and never writes more than its share.
Decoding streams frame by frame, each frame written and dropped, so memory does not grow with the footage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.data.base import Sample, SegDataset, image_size, read_image
from ssseg.errors import DataError, LabelError
from ssseg.io import write_json
from ssseg.rundir import DONE_FILE

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


def declared_frames(source) -> int | None:
    """How many frames a source says it holds (a video's stream header, else duration x rate), before
    decoding; None when it does not say."""
    from ssseg.label.decode import DecodeError, frame_rate, open_container

    if source.kind == "images":
        return len(source.images)
    try:
        with open_container(source) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            rate = frame_rate(container)
            if rate and container.duration:
                return int(container.duration / 1_000_000 * rate)
    except DecodeError:
        return None
    return None


def frame_budget(declared: list[int | None], every: int, max_frames: int) -> list[tuple[int, int]]:
    """(stride, quota) per source: every ``every``-th frame while the total fits ``max_frames``; past it, each
    source's quota in proportion to its declared frames (an equal share where it declares none) and the stride
    that spreads the quota over the source."""
    wanted = [None if n is None else -(-n // every) for n in declared]
    known = [w for w in wanted if w is not None]
    if all(w is not None for w in wanted) and sum(known) <= max_frames:
        return [(every, w) for w in wanted]
    equal = max_frames // len(wanted)
    total = sum(known) or 1
    budget = max_frames - equal * (len(wanted) - len(known))  # what the sources that declare a count share
    out = []
    for n, w in zip(declared, wanted):
        if w is None:
            out.append((every, max(1, equal)))
        else:
            quota = max(1, min(w, budget * w // total))
            out.append((max(every, -(-n // quota)), quota))
    return out


def extract_footage(inputs: tuple[str, ...], every: int, scale: tuple[int, int] | None, out: Path, classes: ClassSet,
                    skip_bad: bool, log: Callable[[str], None], write: bool = True,
                    max_frames: int | None = None) -> tuple[Footage, list[str]]:
    """The frames of ``inputs`` (every ``every``-th, at most ``max_frames`` in all) under ``out``, decoded where
    not done yet; returns the dataset and one "source<TAB>reason" line per source skipped (--skip-bad) or cut
    short by damage. ``write`` False (torchrun ranks other than 0) only reads what rank 0 wrote."""
    from ssseg.label.decode import DecodeError, image_frames, open_container, video_frames
    from ssseg.label.inputs import expand_inputs, frame_names

    try:
        sources = expand_inputs(inputs)
    except LabelError as e:
        raise DataError(f"--unlabeled: {e}") from None
    samples, problems = [], []
    budget = [(every, None)] * len(sources)
    todo = [s for s in sources if not (out / s.key / DONE_FILE).is_file() and s.error is None]
    if max_frames is not None and todo and write:
        declared = [declared_frames(s) if s in todo else _kept(out / s.key) for s in sources]
        budget = frame_budget(declared, every, max_frames)
        if any(stride > every for stride, _ in budget):
            log(f"unlabeled footage: {sum(n or 0 for n in declared)} frames declared, more than "
                f"--unlabeled-max-frames {max_frames} at every {every}: each source keeps its share, spread over it "
                f"(strides {', '.join(str(b[0]) for b in budget)})")
    for source, (stride, quota) in zip(sources, budget):
        folder = out / source.key
        done = folder / DONE_FILE
        if not done.is_file() and write:
            reason = source.error
            if reason is None and source.kind == "stream":
                reason = "streams cannot be training footage (they do not end)"
            if reason is None:
                try:
                    frames = (image_frames(source, frame_names(source.images)) if source.kind == "images"
                              else video_frames(open_container(source)))
                    count = _write_frames(frames, stride, scale, folder, quota)
                except DecodeError as e:
                    reason = str(e)
                    count = len(list(folder.glob("*.jpg"))) if folder.is_dir() else 0
                if reason is None or count:
                    write_json(done, {"source": source.input, "every": stride, "scale": list(scale) if scale else None,
                                      "frames": count, "quota": quota, "problem": reason})
            if reason is not None:
                line = f"unlabeled source {source.input}: {reason}"
                if not skip_bad and not (folder / DONE_FILE).is_file():
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


def _kept(folder: Path) -> int | None:
    """A finished source's frame count, as its done.json says (it takes its share of the budget)."""
    import json

    try:
        return json.loads((folder / DONE_FILE).read_text())["frames"]
    except (OSError, ValueError, KeyError):
        return None


def _write_frames(frames, every: int, scale: tuple[int, int] | None, folder: Path, quota: int | None = None) -> int:
    """Every ``every``-th frame as folder/<frame>.jpg (resized to ``scale``), at most ``quota`` of them, each
    written atomically; frames already there are kept, so an interrupted source continues."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    from ssseg.label.decode import Damage

    for frame in frames:
        if isinstance(frame, Damage) or frame.index % every:  # damage is the decoder's to report
            continue
        if quota is not None and count >= quota:
            break
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
