"""A label job's records read without holding them: manifests and journals are streamed frame by frame into
bounded summaries (a coverage timeline of at most ``points`` bins, the lowest-coverage frames), so a job of a
million frames costs the report time, not memory.

Both runtimes write a manifest as its head (indented JSON) and then one frame record per line after
``"frames": [`` (label/records.py, cpp/src/records.cpp); that layout is read line by line. A manifest laid out
otherwise (reformatted by hand) is still read, whole."""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ssseg.errors import ReportError
from ssseg.io import check_format
from ssseg.label.records import FORMAT_VERSION, MANIFEST_FORMAT, read_head


def read_manifest(path: Path) -> tuple[dict, Iterator[dict]]:
    """(head without frames, an iterator over the frame records) of one manifest.json."""
    path = Path(path)
    f = open(path, "rb")
    text = read_head(f)
    if text is None:  # no streamed frame list: read it whole
        f.close()
        head = _loads(path.read_bytes(), path)
        _check(head, path)
        frames = head.pop("frames", [])
        return head, iter(frames)
    head = _loads(text, path)
    _check(head, path)

    def frames() -> Iterator[dict]:
        with f:
            for line in f:
                line = line.strip().rstrip(b",")
                if line.startswith(b"{"):
                    yield _loads(line, path)
    return head, frames()


def _loads(data: bytes, path: Path) -> dict:
    try:
        return json.loads(data)
    except ValueError:
        raise ReportError("is not a complete manifest (not valid JSON)", path=path,
                          fix="finish the job with `ssseg label ... --resume`, which writes it again") from None


def _check(head: dict, path: Path) -> None:
    check_format(head, MANIFEST_FORMAT, FORMAT_VERSION, what="an ssseg label manifest", path=path, error=ReportError,
                 foreign_fix="pass the --out folder of ssseg label",
                 version_fix="report it with ssseg {written}")


@dataclass
class Timeline:
    """Coverage along one source in at most ``points`` bins of consecutive frames (mean and minimum per bin),
    the ``lowest`` frames, and the totals, filled one record at a time."""

    points: int
    lowest_count: int
    frames: int = 0
    bins: list[list] = field(default_factory=list)  # [first time, last time, first index, n, sum, min]
    lowest: list[tuple] = field(default_factory=list)
    per_class: list[int] = field(default_factory=list)
    pixels: int = 0
    written: int = 0
    _width: int = 1

    def add(self, rec: dict) -> None:
        t = rec.get("time")
        t = float(rec["index"]) if t is None else float(t)
        cov = float(rec["coverage"])
        self.frames += 1
        self.pixels += rec["size"][0] * rec["size"][1]
        self.written += bool(rec.get("written"))
        counts = rec.get("classes") or []
        if len(self.per_class) < len(counts):
            self.per_class += [0] * (len(counts) - len(self.per_class))
        for i, c in enumerate(counts):
            self.per_class[i] += c
        last = self.bins[-1] if self.bins else None
        if last is not None and last[3] < self._width:
            last[1], last[3], last[4], last[5] = t, last[3] + 1, last[4] + cov, min(last[5], cov)
        else:
            self.bins.append([t, t, rec["index"], 1, cov, cov])
            if len(self.bins) > self.points:  # twice as many frames per bin from here on: merge pairs
                self._width *= 2
                self.bins = [_merge(self.bins[i:i + 2]) for i in range(0, len(self.bins), 2)]
        # a max-heap of the lowest kept so far: keyed by (-coverage, -index), its top is the one to drop first
        entry = (-cov, -rec["index"], rec["name"], rec.get("time"), tuple(rec.get("files") or ()), rec.get("source"))
        if len(self.lowest) < self.lowest_count:
            heapq.heappush(self.lowest, entry)
        elif cov < -self.lowest[0][0]:
            heapq.heapreplace(self.lowest, entry)

    def lowest_frames(self) -> list[dict]:
        return [{"coverage": -c, "index": -i, "name": n, "time": t, "files": list(fl), "file": src}
                for c, i, n, t, fl, src in sorted(self.lowest, key=lambda e: (-e[0], -e[1]))]

    def series(self) -> list[dict]:
        return [{"t0": b[0], "t1": b[1], "index": b[2], "frames": b[3], "mean": b[4] / b[3], "min": b[5]}
                for b in self.bins]


def _merge(pair: list[list]) -> list:
    a = pair[0]
    if len(pair) == 1:
        return a
    b = pair[1]
    return [a[0], b[1], a[2], a[3] + b[3], a[4] + b[4], min(a[5], b[5])]

