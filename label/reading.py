"""The label job's decoder side: a thread per source in flight turns its frames (video or images, sampled by
--every/--fps, turned as --orientation says) into Items at the model's size for the pipeline's queue, records
damage and undecodable frames, and starts the source's overlay and progress bar."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.label.decode import (
    DEFAULT_IMAGE_RATE,
    Damage,
    DecodeError,
    RawFrame,
    Sampler,
    frame_rate,
    image_frames,
    open_container,
    video_frames,
)
from ssseg.label.inputs import frame_names
from ssseg.label.overlay import OverlayWriter
from ssseg.label.progress import Progress
from ssseg.label.records import SourceState
from ssseg.runtime.frames import resize_rgb


@dataclass
class Item:
    state: SourceState
    index: int
    name: str
    time: float | None
    hw: tuple[int, int]
    model: np.ndarray  # the frame at the model's size
    rgb: np.ndarray | None  # the frame as decoded, when an image file or the overlay needs it
    write: bool  # False: already on disk (re-inferred only for the overlay)
    origin: dict  # where the frame came from, for its record: an image's file, size and time; what was turned


@dataclass
class End:
    """A source's last message: it ended, with ``error`` when it failed."""

    state: SourceState
    error: str | None


def frame_origin(raw: RawFrame) -> dict:
    """A frame record's source fields: an image's file as given, its size and modification time (a video's
    are its manifest's), and the orientation applied, if any."""
    out = {}
    if isinstance(raw.payload, Path):
        st = raw.payload.stat()
        out = {"source": str(raw.payload), "bytes": st.st_size, "mtime": round(st.st_mtime, 3)}
    if raw.turned:
        out["turned"] = raw.turned
    return out


class Reader:
    """Decodes sources into ``put`` (the pipeline's bounded queue: ``put(item, force)``) until ``stop`` is set;
    an unexpected error goes to ``fail``, and every source ends with an End, whatever happened."""

    def __init__(self, *, model_hw: tuple[int, int], every: int | None, fps: float | None, orientation: str,
                 keep_rgb: bool, overlay_classes, progress: Progress, stop: threading.Event,
                 put: Callable[[object, bool], None], fail: Callable[[BaseException], None]):
        self.model_hw, self.every, self.fps, self.orientation = model_hw, every, fps, orientation
        self.keep_rgb, self.overlay_classes, self.progress = keep_rgb, overlay_classes, progress
        self.stop, self.put, self.fail = stop, put, fail

    def decode(self, state: SourceState) -> None:
        if self.stop.is_set():
            return  # never started: leaves no trace, so a later run starts it fresh
        if state.error is not None:  # nothing to decode (an empty file, a folder without images)
            self.put(End(state, state.error), True)
            return
        state.open_journal()
        error = None
        try:
            sampler = Sampler(self.every, self.fps)
            for raw in self._raw_frames(state):
                if self.stop.is_set():
                    break
                if isinstance(raw, Damage):
                    state.record_damage(raw)
                    continue
                if not sampler.take(raw.index, raw.time):
                    continue
                state.sampled += 1
                write = raw.index not in state.done
                if not write and state.overlay is None:
                    self.progress.advance(state)
                    continue
                try:
                    rgb = raw.rgb()
                except DecodeError as e:
                    state.record({"index": raw.index, "name": raw.name, "error": str(e)})
                    self.progress.advance(state)
                    continue
                item = Item(state, raw.index, raw.name, None if raw.time is None else round(raw.time, 6),
                            rgb.shape[:2], resize_rgb(rgb, self.model_hw), rgb if self.keep_rgb else None, write,
                            frame_origin(raw))
                with state.lock:
                    state.outstanding += 1
                self.put(item, False)
        except DecodeError as e:
            error = str(e)
        except BaseException as e:  # noqa: BLE001 - reported by the calling thread
            self.fail(e)
        self.put(End(state, error), True)

    def _raw_frames(self, state: SourceState):
        src = state.source
        if src.kind == "images":
            rate = DEFAULT_IMAGE_RATE
            state.decoded = len(src.images)
            self._start_overlay(state, rate / (self.every or 1))
            self.progress.start(state, len(range(0, len(src.images), self.every or 1)))
            yield from image_frames(src, frame_names(src.images), self.orientation)
            return
        container = open_container(src)
        try:
            rate = frame_rate(container) or DEFAULT_IMAGE_RATE
            sampled_rate = Fraction(self.fps).limit_denominator(1000) if self.fps else rate / (self.every or 1)
            self._start_overlay(state, sampled_rate)
            stream = container.streams.video[0] if container.streams.video else None
            total = stream.frames if stream is not None and stream.frames else None
            if total and self.fps and stream.duration and stream.time_base:
                total = int(float(stream.duration * stream.time_base) * self.fps) + 1
            elif total:
                total = len(range(0, total, self.every or 1))
            self.progress.start(state, total)
            for raw in video_frames(container, self.orientation):
                if isinstance(raw, RawFrame):
                    state.decoded += 1
                yield raw
        finally:
            container.close()

    def _start_overlay(self, state: SourceState, rate: Fraction) -> None:
        if self.overlay_classes is not None:
            state.overlay = OverlayWriter(state.overlay_path, rate, self.overlay_classes)
            state.overlay_pool = ThreadPoolExecutor(1, thread_name_prefix="ssseg-overlay")
