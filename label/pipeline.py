"""Decode, infer and write, overlapped: decoder threads (one per source in flight) turn frames into
model-size RGB, the calling thread runs fixed-size batches on the backend and gates them at the model's
resolution, a writer pool resizes masks back to the frame size (nearest), counts pixels and writes PNGs.
Every queue is bounded, so memory does not grow with footage length; a source's manifest is written when
its last frame is on disk."""

from __future__ import annotations

import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.errors import filesystem_error
from ssseg.gate import applied, apply
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
from ssseg.label.layouts import Layout, confidence_u8
from ssseg.label.overlay import OverlayWriter
from ssseg.label.records import SourceState
from ssseg.runtime.frames import resize_labels, resize_rgb

DONE = object()


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


class Pipeline:
    def __init__(self, backend, layout: Layout, *, batch: int, threshold: float | list | None,
                 min_coverage: float | None, every: int | None, fps: float | None, overlay: bool, writers: int,
                 decoders: int, progress: "Progress", say: Callable[[str], None], orientation: str = "displayed"):
        self.backend, self.layout, self.batch, self.orientation = backend, layout, batch, orientation
        self.threshold, self.min_coverage, self.every, self.fps = applied(threshold), min_coverage, every, fps
        self.overlay, self.decoders, self.progress, self.say = overlay, decoders, progress, say
        self.model_hw = backend.spec.input_hw
        self.keep_rgb = overlay or "image" in layout.files("k", 0, "f")
        self.frames: queue.Queue = queue.Queue(maxsize=2 * batch)
        self.slots = threading.BoundedSemaphore(4 * writers)  # frames handed to writers, not yet on disk
        self.writers = ThreadPoolExecutor(writers, thread_name_prefix="ssseg-write")
        self.stop = threading.Event()
        self.interrupt = threading.Event()  # Ctrl-C
        self.fatal: BaseException | None = None
        self.results: list[dict] = []
        self.results_lock = threading.Lock()
        self.run_info: dict = {}
        self.timings = {"infer_s": 0.0, "wait_frames_s": 0.0, "wait_writers_s": 0.0}
        self.labeled = 0

    # --- the calling thread: batching and inference ---
    def run(self, states: list[SourceState], run_info: dict) -> list[dict]:
        self.run_info = run_info
        todo = [s for s in states if not s.complete_before]
        for s in states:
            if s.complete_before:
                self.results.append(s.finalize(run_info))
                self.say(f"{s.source.key}: complete in an earlier run, skipped")
        decoders = ThreadPoolExecutor(max(1, min(self.decoders, len(todo))), thread_name_prefix="ssseg-decode")
        futures = [decoders.submit(self._decode, s) for s in todo]
        threading.Thread(target=lambda: (wait(futures), self.frames.put(DONE)), daemon=True).start()
        pending: list[Item] = []  # frames waiting for a full batch, not yet handed to a writer
        interrupted = False
        # Ctrl-C sets a flag, acted on between frames: a KeyboardInterrupt raised mid-handoff would lose a frame
        # between `pending` and the writers, and its source would never settle. A second Ctrl-C raises at once.
        handler = None

        def on_interrupt(*_) -> None:
            self.interrupt.set()
            signal.signal(signal.SIGINT, handler)

        if threading.current_thread() is threading.main_thread():
            handler = signal.signal(signal.SIGINT, on_interrupt)
        try:
            while True:
                if self.interrupt.is_set() and not self.stop.is_set():
                    interrupted = True
                    self._stop(pending)
                t = time.perf_counter()
                try:
                    item = self.frames.get(timeout=0.1)
                except queue.Empty:
                    continue
                finally:
                    self.timings["wait_frames_s"] += time.perf_counter() - t
                if item is DONE:
                    break
                if isinstance(item, End):
                    self._end(item)
                elif self.stop.is_set():
                    self._discard(item)
                else:
                    pending.append(item)
                    if len(pending) == self.batch:
                        self._infer(pending)
                if self.fatal is not None and not self.stop.is_set():
                    self._stop(pending)
            if pending and not self.stop.is_set():
                self._infer(pending)
        except BaseException as e:  # a second Ctrl-C, or a backend error: stop the decoders, settle every source
            interrupted = isinstance(e, KeyboardInterrupt)
            if not interrupted:
                self.fatal = self.fatal or e
            self._stop(pending)
            self._drain()
        finally:
            if handler is not None:
                signal.signal(signal.SIGINT, handler)
            self.writers.shutdown(wait=True)
            decoders.shutdown(wait=True)
        if isinstance(self.fatal, OSError):  # a full disk: one line naming the file, as every command says it
            self.fatal.filename = self.fatal.filename or str(self.layout.out)
            raise filesystem_error(self.fatal) from None
        if self.fatal is not None:
            raise self.fatal
        if interrupted:
            raise KeyboardInterrupt
        return self.results

    def _stop(self, pending: list[Item]) -> None:
        self.stop.set()
        while pending:
            self._discard(pending.pop())

    def _drain(self) -> None:
        """After a stop: let decoders finish (they stop at the next frame) and settle their sources."""
        while True:
            item = self.frames.get()
            if item is DONE:
                return
            if isinstance(item, End):
                self._end(item)
            else:
                self._discard(item)

    def _infer(self, pending: list[Item]) -> None:
        """Run ``pending`` as one batch and hand each frame to the writers (and its overlay), taking it out of
        ``pending`` as it goes, so a stop part-way discards exactly the frames not handed over."""
        frames = [it.model for it in pending]
        frames += [frames[-1]] * (self.batch - len(frames))  # always full batches: same per-frame results on resume
        t = time.perf_counter()
        labels, conf = self.backend.infer(np.stack(frames))
        self.timings["infer_s"] += time.perf_counter() - t
        for i in range(len(pending)):
            c = None if conf is None else conf[i]
            gated = labels[i] if self.threshold is None else apply(labels[i], c, self.threshold)
            it = pending[0]
            if it.state.overlay is not None:  # before the write: the last write may shut the overlay pool
                self._acquire()
                it.state.overlay_pool.submit(self._overlay, it, gated)
            self._acquire()
            pending.pop(0)
            self.writers.submit(self._write, it, gated, c)

    def _acquire(self) -> None:
        t = time.perf_counter()
        self.slots.acquire()
        self.timings["wait_writers_s"] += time.perf_counter() - t

    # --- decoder threads ---
    def _decode(self, state: SourceState) -> None:
        if self.stop.is_set():
            return  # never started: leaves no trace, so a later run starts it fresh
        if state.error is not None:  # nothing to decode (an empty file, a folder without images)
            self._put(End(state, state.error), force=True)
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
                self._put(item)
        except DecodeError as e:
            error = str(e)
        except BaseException as e:  # noqa: BLE001 - reported by the calling thread
            self.fatal = self.fatal or e
        self._put(End(state, error), force=True)

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
        if self.overlay:
            state.overlay = OverlayWriter(state.overlay_path, rate, self.layout.classes)
            state.overlay_pool = ThreadPoolExecutor(1, thread_name_prefix="ssseg-overlay")

    def _put(self, item, force: bool = False) -> None:
        while True:
            try:
                self.frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and not force and isinstance(item, Item):
                    self._discard(item)
                    return

    # --- writer threads ---
    def _write(self, it: Item, labels: np.ndarray, conf: np.ndarray | None) -> None:
        try:
            if it.write:
                full = resize_labels(labels, it.hw)
                counts = np.bincount(full.ravel(), minlength=256)[: self.layout.classes.num_classes]
                coverage = float(counts.sum()) / full.size
                written = self.min_coverage is None or coverage >= self.min_coverage
                files, digests = [], []
                if written:
                    conf_full = None
                    if conf is not None and self.layout.confidence:
                        conf_full = resize_labels(confidence_u8(conf), it.hw)
                    files, digests = self.layout.write(it.state.source.key, it.index, it.name, full, conf_full,
                                                       it.rgb)
                it.state.record({"index": it.index, "name": it.name, "time": it.time, "size": list(it.hw),
                                 "coverage": round(coverage, 6), "classes": counts.tolist(), "written": written,
                                 "files": files, "sha256": digests, **it.origin})
                with self.results_lock:
                    self.labeled += 1
            self.progress.advance(it.state)
        except BaseException as e:  # noqa: BLE001 - a full disk or a bug: stop the job, keep what is written
            self.fatal = self.fatal or e
        finally:
            self.slots.release()
            self._done_one(it.state)

    def _overlay(self, it: Item, labels: np.ndarray) -> None:
        try:
            rgb = it.rgb
            it.state.overlay.add(rgb, resize_labels(labels, it.hw))
        except BaseException as e:  # noqa: BLE001
            self.fatal = self.fatal or e
        finally:
            self.slots.release()

    # --- settling sources ---
    def _discard(self, item: Item) -> None:
        self._done_one(item.state)

    def _done_one(self, state: SourceState) -> None:
        with state.lock:
            state.outstanding -= 1
        self._settle(state)

    def _end(self, end: End) -> None:
        with end.state.lock:
            end.state.ended = True
            if end.error:
                end.state.error = end.error
        self._settle(end.state)

    def _settle(self, state: SourceState) -> None:
        with state.lock:
            ready = state.ended and state.outstanding == 0 and not state.finalized
            state.finalized = state.finalized or ready
        if not ready:
            return
        try:
            stopped = self.stop.is_set() or self.fatal is not None
            if state.overlay is not None:
                state.overlay_pool.shutdown(wait=True)
                if stopped:
                    state.overlay.abort()
                else:
                    state.overlay.close()
            result = state.finalize(self.run_info, interrupted=stopped)
            with self.results_lock:
                self.results.append(result)
            self.progress.end(state, result)
        except BaseException as e:  # noqa: BLE001 - often in a writer thread: report through the calling thread
            self.fatal = self.fatal or e


class Progress:
    """A rich progress bar per source and overall (frames/s, ETA) on a terminal; elsewhere one line per
    finished source."""

    def __init__(self, say: Callable[[str], None], live: bool):
        self.say = say
        self.bar = None
        self.tasks: dict[str, int] = {}
        if live:
            from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class Speed(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:.1f} frames/s" if task.speed else "")

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Speed(),
                                    TimeRemainingColumn(), transient=False)
            self.overall = self.bar.add_task("all", total=None)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def start(self, state: SourceState, total: int | None) -> None:
        if self.bar is not None:
            self.tasks[state.source.key] = self.bar.add_task(state.source.key, total=total)

    def advance(self, state: SourceState) -> None:
        if self.bar is None:
            return
        for task in (self.tasks.get(state.source.key), self.overall):
            if task is not None:
                self.bar.advance(task)

    def end(self, state: SourceState, result: dict) -> None:
        task = self.tasks.pop(state.source.key, None)
        if task is not None:
            self.bar.remove_task(task)
        cov = result["totals"]["coverage"]
        skipped = f", {result['frames_skipped']} damaged frame(s) skipped" if result.get("frames_skipped") else ""
        status = f"done{skipped}" if result["complete"] else ("FAILED: " + "; ".join(
            str(e.get("source") or f"frame {e['name']}: {e['error']}") for e in result["errors"][:3])
            if result["errors"] else "stopped")
        self.say(f"{state.source.key}: {result['frames_written']}/{result['frames_sampled']} frames written, "
                 f"coverage {'-' if cov is None else f'{100 * cov:.1f}%'}, {status}")
