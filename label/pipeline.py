"""Decode, infer and write, overlapped: decoder threads (one per source in flight, label/reading.py) turn
frames into model-size RGB, the calling thread runs fixed-size batches on the backend and gates them at the
model's resolution (here), a writer pool (label/writing.py) resizes masks back to the frame size (nearest),
counts pixels and writes PNGs. Every queue is bounded, so memory does not grow with footage length; a source's
manifest is written when its last frame is on disk."""

from __future__ import annotations

import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

import numpy as np

from ssseg.errors import filesystem_error
from ssseg.gate import applied, apply
from ssseg.label.layouts import Layout
from ssseg.label.progress import Progress
from ssseg.label.reading import End, Item, Reader
from ssseg.label.records import SourceState
from ssseg.label.writing import Writer

DONE = object()


class Pipeline:
    def __init__(self, backend, layout: Layout, *, batch: int, threshold: float | list | None,
                 min_coverage: float | None, every: int | None, fps: float | None, overlay: bool, writers: int,
                 decoders: int, progress: Progress, say: Callable[[str], None], orientation: str = "displayed"):
        self.backend, self.layout, self.batch = backend, layout, batch
        self.threshold, self.decoders, self.progress, self.say = applied(threshold), decoders, progress, say
        self.frames: queue.Queue = queue.Queue(maxsize=2 * batch)
        self.stop = threading.Event()
        self.interrupt = threading.Event()  # Ctrl-C
        self.fatal: BaseException | None = None
        self.results: list[dict] = []
        self.results_lock = threading.Lock()
        self.run_info: dict = {}
        self.timings = {"infer_s": 0.0, "wait_frames_s": 0.0, "wait_writers_s": 0.0}
        self.reader = Reader(model_hw=backend.spec.input_hw, every=every, fps=fps, orientation=orientation,
                             keep_rgb=overlay or "image" in layout.files("k", 0, "f"),
                             overlay_classes=layout.classes if overlay else None, progress=progress,
                             stop=self.stop, put=self._put, fail=self._fail)
        self.writer = Writer(layout, min_coverage=min_coverage, writers=writers, progress=progress,
                             done=self._done_one, fail=self._fail)

    @property
    def labeled(self) -> int:
        return self.writer.labeled

    def _fail(self, e: BaseException) -> None:
        self.fatal = self.fatal or e

    # --- the calling thread: batching and inference ---
    def run(self, states: list[SourceState], run_info: dict) -> list[dict]:
        self.run_info = run_info
        todo = [s for s in states if not s.complete_before]
        for s in states:
            if s.complete_before:
                self.results.append(s.finalize(run_info))
                self.say(f"{s.source.key}: complete in an earlier run, skipped")
        decoders = ThreadPoolExecutor(max(1, min(self.decoders, len(todo))), thread_name_prefix="ssseg-decode")
        futures = [decoders.submit(self.reader.decode, s) for s in todo]
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
            self.writer.shutdown()
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
                self.timings["wait_writers_s"] += self.writer.acquire()
                self.writer.overlay(it, gated)
            self.timings["wait_writers_s"] += self.writer.acquire()
            pending.pop(0)
            self.writer.write(it, gated, c)

    # --- the decoders' queue, and settling sources ---
    def _put(self, item, force: bool = False) -> None:
        while True:
            try:
                self.frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and not force and isinstance(item, Item):
                    self._discard(item)
                    return

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
