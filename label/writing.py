"""The label job's writer side: a pool of threads resizes each gated mask back to its frame's size
(nearest), counts its classes, writes its files through the layout and records the frame; the source's
overlay is fed on its own thread. A bounded number of frames is in their hands at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ssseg.label.layouts import Layout, confidence_u8
from ssseg.label.progress import Progress
from ssseg.label.reading import Item
from ssseg.label.records import SourceState
from ssseg.runtime.frames import resize_labels


class Writer:
    """``done(state)`` after each frame handed over (written or not); an error goes to ``fail``."""

    def __init__(self, layout: Layout, *, min_coverage: float | None, writers: int, progress: Progress,
                 done: Callable[[SourceState], None], fail: Callable[[BaseException], None]):
        self.layout, self.min_coverage, self.progress, self.done, self.fail = layout, min_coverage, progress, done, fail
        self.slots = threading.BoundedSemaphore(4 * writers)  # frames handed to writers, not yet on disk
        self.pool = ThreadPoolExecutor(writers, thread_name_prefix="ssseg-write")
        self.labeled = 0
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """A slot for one more frame; returns the seconds waited for it."""
        t = time.perf_counter()
        self.slots.acquire()
        return time.perf_counter() - t

    def write(self, it: Item, labels: np.ndarray, conf: np.ndarray | None) -> None:
        """Hand ``it`` over (after ``acquire``)."""
        self.pool.submit(self._write, it, labels, conf)

    def overlay(self, it: Item, labels: np.ndarray) -> None:
        """Add ``it`` to its source's overlay (after ``acquire``)."""
        it.state.overlay_pool.submit(self._overlay, it, labels)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)

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
                with self.lock:
                    self.labeled += 1
            self.progress.advance(it.state)
        except BaseException as e:  # noqa: BLE001 - a full disk or a bug: stop the job, keep what is written
            self.fail(e)
        finally:
            self.slots.release()
            self.done(it.state)

    def _overlay(self, it: Item, labels: np.ndarray) -> None:
        try:
            it.state.overlay.add(it.rgb, resize_labels(labels, it.hw))
        except BaseException as e:  # noqa: BLE001
            self.fail(e)
        finally:
            self.slots.release()
