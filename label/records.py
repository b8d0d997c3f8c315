"""What has been labeled: a per-source journal while frames are written, manifest.json when a source ends,
and the job's job.json and summary.json.

The journal (``frames.jsonl`` beside the manifest) gets one line per frame after that frame's files are
renamed into place, so after a kill every line names complete files; ``--resume`` keeps the frames whose
line and files are intact and labels the rest. The manifest is the sorted journal plus totals; its frame
records are streamed from the journal, so memory does not grow with footage length.

Over 300 lines on purpose: a label job's records are one contract, written, read and validated here alone
(the report and a resume read them through this module; ssseg-cpp's records.hpp is the twin)."""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from ssseg.errors import LabelError
from ssseg.io import atomic_write_text, check_format, read_format, temporary_name, write_json
from ssseg.label.inputs import Source
from ssseg.versions import __version__

MANIFEST_FORMAT, SUMMARY_FORMAT, JOB_FORMAT = "ssseg.label.manifest", "ssseg.label.summary", "ssseg.label.job"
FORMAT_VERSION = 1
NEXT_TO_LABEL = 100
MAX_DAMAGE = 20  # damaged ranges per source in the summary (the manifest lists all)
LOWEST_PER_SOURCE = NEXT_TO_LABEL  # so the job's ranking is exact even with one source
# a label job's record files, each named once here: OUT/job.json, a summary per shard, and per source a
# journal of its frames while it is labeled and its manifest when done (label/layouts.py: where they live)
JOB_FILE = "job.json"
SUMMARY_FILE = "summary.json"
JOURNAL_FILE = "frames.jsonl"
MANIFEST_FILE = "manifest.json"
LEGACY_SETTINGS = {"orientation": "stored"}  # what a job written before a setting existed did


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_job(out: Path, settings: dict, ignore: Callable[[str], bool] = lambda name: False) -> None:
    """Refuse an OUT_DIR that holds someone else's files (names ``ignore`` accepts aside: the job locks) or
    labels made with other settings."""
    out = Path(out)
    job = out / JOB_FILE
    if job.is_file():
        data = read_format(job, JOB_FORMAT, FORMAT_VERSION, what="an ssseg label job", error=LabelError,
                           damaged_fix="choose a new --out", foreign_fix="choose a new --out",
                           version_fix="label into a new --out, or use ssseg {written}")
        old = {**LEGACY_SETTINGS, **data.get("settings", {})}
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            diffs = ", ".join(f"{k} {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise LabelError(f"labels here were made with other settings ({diffs})", path=job,
                             fix="repeat the original options to continue, or choose a new --out")
        return
    if out.is_dir() and any(not ignore(e.name) for e in out.iterdir()):
        raise LabelError("output folder is not empty and was not written by ssseg label", path=out,
                         fix="choose a new or empty --out; nothing is overwritten")


def write_job(out: Path, settings: dict) -> None:
    """Record the settings in OUT/job.json once (shards of one job share it)."""
    if not (Path(out) / JOB_FILE).is_file():
        write_json(Path(out) / JOB_FILE, {"format": JOB_FORMAT, "format_version": FORMAT_VERSION,
                                          "ssseg_version": __version__, "created": now(), "settings": settings})


class SourceState:
    """Progress of one source. Decoder, inference and writer threads update it; ``finalize`` runs once,
    in whichever thread finishes its last frame."""

    def __init__(self, source: Source, meta_dir: Path, settings: dict, classes: list[str], out: Path):
        self.source, self.meta, self.settings, self.classes, self.out = source, Path(meta_dir), settings, classes, out
        self.journal_path = self.meta / JOURNAL_FILE
        self.manifest_path = self.meta / MANIFEST_FILE
        self.overlay_path = self.meta / "overlay.mp4"
        self.done: set[int] = set()  # frames whose outputs are complete (skipped on --resume)
        self.complete_before = False  # finished by an earlier run: nothing to do
        self.previous: dict | None = None  # an earlier manifest's head
        self.lock = threading.Lock()
        self.outstanding = 0
        self.ended = False
        self.error: str | None = source.error
        self.frame_errors = 0
        self.decoded = self.sampled = self.labeled = 0
        self.started = time.perf_counter()
        self.journal = None
        self._kept: list[str] = []
        self.finalized = False
        self.overlay = self.overlay_pool = None  # set by the pipeline with --overlay

    # --- before the run ---
    def has_output(self) -> bool:
        return self.journal_path.exists() or self.manifest_path.exists()

    def prepare(self, resume: bool, overlay: bool) -> None:
        """Load what an earlier run wrote (with --resume) and open the journal."""
        if self.has_output() and not resume:
            raise LabelError(f"{self.source.input} was already labeled here", path=self.meta,
                             fix="pass --resume to continue, or choose a new --out")
        records: dict[int, str] = {}
        old_identity = None
        if self.manifest_path.exists():
            try:
                self.previous = json.loads(self.manifest_path.read_text())
            except ValueError:
                self.previous = None
            if self.previous is not None:
                check_format(self.previous, MANIFEST_FORMAT, FORMAT_VERSION, what="an ssseg label manifest",
                             path=self.manifest_path, error=LabelError, foreign_fix="choose a new --out",
                             version_fix="label into a new --out, or use ssseg {written}")
                old_identity = self.previous["source"].get("identity")
                for rec in self.previous.pop("frames", []):  # the head stays; the frames move to the journal
                    records[rec["index"]] = json.dumps(rec)
        for rec in journal_records(self.journal_path, header=True):
            if "identity" in rec:
                old_identity = rec["identity"]
            elif "index" in rec:
                records[rec["index"]] = json.dumps(rec)
        new_identity = self.source.identity()
        if records and old_identity and new_identity and old_identity != new_identity:
            # a source that failed before any frame (an empty file since replaced) may change
            raise LabelError(f"{self.source.input} changed since it was labeled ({old_identity} -> {new_identity})",
                             path=self.meta,
                             fix="label it into a new --out; the existing labels belong to the old file")
        kept = [line for _, line in sorted(records.items()) if self._valid(json.loads(line))]
        self.done = {json.loads(line)["index"] for line in kept}
        prev = self.previous or {}
        self.complete_before = (prev.get("complete", False) and len(kept) == len(records) == prev.get("frames_sampled")
                                and (not overlay or self.overlay_path.exists()))
        self._kept = kept

    def open_journal(self) -> None:
        """Start the journal with the frames kept from earlier runs (called when decoding starts, so a
        source the job never reached leaves no trace)."""
        if self.complete_before or self.error:
            return
        self.meta.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"identity": self.source.identity(), "input": self.source.input,
                             "path": self.source.where, "key": self.source.key})
        atomic_write_text(self.journal_path, "".join(line + "\n" for line in [header, *self._kept]))
        self._kept = []
        self.journal = open(self.journal_path, "a")

    def _valid(self, rec: dict) -> bool:
        return "error" not in rec and not bad_files(self.out, rec)

    # --- during the run ---
    def record_damage(self, damage) -> None:
        """A damaged stretch of the source (label.decode.Damage): journaled like a frame, so the manifest
        lists it; a resumed run decodes the source again and finds it again."""
        self.record({"damage": [damage.first, damage.last], "skipped": damage.skipped, "reason": damage.reason})

    def record(self, rec: dict) -> None:
        line = json.dumps(rec)
        with self.lock:
            if "error" in rec:
                self.frame_errors += 1
            elif "index" in rec:
                self.labeled += 1
            self.journal.write(line + "\n")
            self.journal.flush()

    # --- at the end ---
    def finalize(self, run: dict, interrupted: bool = False) -> dict:
        """Write manifest.json from the journal; returns the compact result the job summary needs."""
        if self.journal is not None:
            self.journal.close()
        runs = list((self.previous or {}).get("runs", []))
        if self.complete_before:
            return compact(self.previous, self.manifest_path, self.out)
        errors = [] if self.error is None else [{"source": self.error}]
        offsets: dict[int, int] = {}  # frame -> its latest journal line; lines are read back one at a time
        damage: dict[int, dict] = {}  # first frame -> its damage record (a resumed run finds it again)
        with open(self.journal_path, "rb") if self.journal_path.exists() else open(os.devnull, "rb") as f:
            while True:
                pos, line = f.tell(), f.readline()
                if not line:
                    break
                rec = _parse(line)
                if rec is None or "identity" in rec:
                    continue
                if "damage" in rec:
                    damage[rec["damage"][0]] = rec
                elif "error" in rec:
                    errors.append({"index": rec["index"], "name": rec["name"], "error": rec["error"]})
                    offsets.pop(rec["index"], None)
                else:
                    offsets[rec["index"]] = pos
            order = sorted(offsets)
            per_class, pixels, written, low = [0] * len(self.classes), 0, 0, []
            for rec in _records_at(f, order, offsets):
                pixels += rec["size"][0] * rec["size"][1]
                per_class = [a + b for a, b in zip(per_class, rec["classes"])]
                written += bool(rec["written"])
                low.append((rec["coverage"], rec["index"], rec["name"], rec["files"][:1]))
                if len(low) > 4 * LOWEST_PER_SOURCE:
                    low = heapq.nsmallest(LOWEST_PER_SOURCE, low)
            low = heapq.nsmallest(LOWEST_PER_SOURCE, low)
            confident = sum(per_class)
            complete = not interrupted and self.error is None and not errors
            runs.append({**run, "frames_labeled": self.labeled,
                         "seconds": round(time.perf_counter() - self.started, 3)})
            head = {
                "format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, "ssseg_version": __version__,
                "key": self.source.key,
                "source": {"input": self.source.input, "path": self.source.where, "kind": self.source.kind,
                           "identity": self.source.identity()},
                "settings": self.settings,
                "complete": complete, "interrupted": interrupted, "errors": errors,
                "frames_decoded": self.decoded, "frames_sampled": self.sampled,
                "frames_written": written, "frames_below_min_coverage": len(order) - written,
                "frames_skipped": sum(d["last"] - d["first"] + 1 for d in damage_ranges(damage) if d["skipped"]),
                "damage": damage_ranges(damage),
                "totals": {"pixels": pixels, "confident": confident,
                           "coverage": confident / pixels if pixels else None,
                           "per_class": dict(zip(self.classes, per_class))},
                "lowest_coverage": [{"index": i, "name": nm, "coverage": c, "file": fl[0] if fl else None}
                                    for c, i, nm, fl in low],
                "overlay": self.overlay_path.relative_to(self.out).as_posix() if self.overlay_path.exists() else None,
                "runs": runs,
            }
            tmp = temporary_name(self.manifest_path)
            self.meta.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as out:
                out.write(json.dumps(head, indent=2)[:-2] + ',\n  "frames": [')  # reopen the object for the frames
                for n, rec in enumerate(_records_at(f, order, offsets)):
                    out.write(("\n    " if n == 0 else ",\n    ") + json.dumps(rec))
                out.write("\n  ]\n}\n")
            os.replace(tmp, self.manifest_path)
        self.journal_path.unlink(missing_ok=True)
        return compact(head, self.manifest_path, self.out)


def bad_files(out: Path, rec: dict) -> list[str]:
    """The files of a frame record that are not as written: missing, or (a sha256 recorded) changed, or (an
    older record without one) not a complete PNG of the frame's size. Empty when the frame is intact."""
    if not rec.get("written"):
        return []
    bad = []
    digests = rec.get("sha256") or [None] * len(rec.get("files", []))
    for rel, digest in zip(rec.get("files", []), digests):
        try:
            if digest is not None:
                if hashlib.sha256((Path(out) / rel).read_bytes()).hexdigest() != digest:
                    bad.append(rel)
                continue
            from PIL import Image

            with Image.open(Path(out) / rel) as im:
                im.load()  # all of it: a file cut short keeps a valid header
                if im.format != "PNG" or list(im.size[::-1]) != rec["size"]:
                    bad.append(rel)
        except Exception:  # noqa: BLE001 - missing or damaged: label the frame again
            bad.append(rel)
    return bad


FRAMES_KEY = b'"frames": ['  # the line after which a manifest's frame records follow, one per line


def read_head(f) -> bytes | None:
    """A manifest's head as the bytes of a JSON object, read from the binary file ``f`` up to its frame list
    (``f`` is left at the first frame record); None when the manifest streams no frame list (laid out
    otherwise, ``f`` read to its end). Both runtimes write the frames last, and they can be millions."""
    lines = []
    for line in f:
        if line.rstrip().endswith(FRAMES_KEY):
            lines.append(line.rstrip()[: -len(FRAMES_KEY)])
            return b"".join(lines).rstrip().rstrip(b",") + b"}"
        lines.append(line)
    return None


def manifest_head(path: Path) -> dict | None:
    """A manifest without its frames; None when it is not readable JSON."""
    try:
        with open(path, "rb") as f:
            text = read_head(f)
        head = json.loads(text if text is not None else Path(path).read_bytes())
        head.pop("frames", None)
        return head
    except (OSError, ValueError):
        return None


def recorded_keys(meta_dirs: list[Path]) -> dict[str, str]:
    """{absolute path: key} of the sources a job labeled (any shard), from their manifests and journals, so a
    resume gives each its key again whatever else it is given."""
    found: dict[str, str] = {}
    for folder in meta_dirs:
        head: dict = {}
        if (folder / MANIFEST_FILE).is_file():
            head = manifest_head(folder / MANIFEST_FILE) or {}
            head = {**head.get("source", {}), "key": head.get("key")}
        if not head.get("key"):
            head = next(journal_records(folder / JOURNAL_FILE, header=True), {}) or {}
            head.setdefault("key", folder.name)
        where = head.get("path") or (os.path.abspath(head["input"]) if head.get("input") and "://" not in
                                     head["input"] else None)
        if where and head.get("kind") != "stream":
            found.setdefault(where, head["key"])
    return found


def damage_ranges(damage: dict[int, dict]) -> list[dict]:
    """Damage records as ranges, neighbours of one kind and reason merged (a long damaged stretch of concealed
    frames is one range, not one per frame)."""
    out: list[dict] = []
    for first in sorted(damage):
        rec = damage[first]
        a, b = rec["damage"]
        last = out[-1] if out else None
        if last and last["first"] <= a <= last["last"] + 1 and last["skipped"] == rec["skipped"] \
                and last["reason"] == rec["reason"]:
            last["last"] = max(last["last"], b)
        else:
            out.append({"first": a, "last": b, "skipped": rec["skipped"], "reason": rec["reason"]})
    return out


def _records_at(f, order: list[int], offsets: dict[int, int]):
    for index in order:
        f.seek(offsets[index])
        yield json.loads(f.readline())


def compact(manifest: dict, path: Path, out: Path) -> dict:
    """The part of a manifest the job summary needs."""
    keys = ("key", "complete", "errors", "frames_decoded", "frames_sampled", "frames_written",
            "frames_below_min_coverage", "totals", "lowest_coverage")
    return {**{k: manifest[k] for k in keys}, "input": manifest["source"]["input"],
            "frames_skipped": manifest.get("frames_skipped", 0), "damage": manifest.get("damage", [])[:MAX_DAMAGE],
            "manifest": path.relative_to(out).as_posix()}


def summary(results: list[dict], settings: dict, run: dict, shard: tuple[int, int] | None) -> dict:
    pool = [{"source": r["key"], **low} for r in results for low in r["lowest_coverage"]]
    failures = [{"source": r["key"], "input": r["input"], "errors": r["errors"]} for r in results if r["errors"]]
    damaged = [{"source": r["key"], "input": r["input"], "frames_skipped": r.get("frames_skipped", 0),
                "damage": r.get("damage", [])} for r in results if r.get("damage")]
    pixels = sum(r["totals"]["pixels"] for r in results)
    confident = sum(r["totals"]["confident"] for r in results)
    return {
        "format": SUMMARY_FORMAT, "format_version": FORMAT_VERSION, "ssseg_version": __version__,
        "settings": settings, "shard": list(shard) if shard else None,
        "sources": len(results), "failed_sources": len(failures),
        "frames_sampled": sum(r["frames_sampled"] for r in results),
        "frames_written": sum(r["frames_written"] for r in results),
        "frames_below_min_coverage": sum(r["frames_below_min_coverage"] for r in results),
        "frames_skipped": sum(r.get("frames_skipped", 0) for r in results),
        "coverage": confident / pixels if pixels else None,
        "next_to_label": heapq.nsmallest(NEXT_TO_LABEL, pool, key=lambda f: (f["coverage"], f["source"], f["index"])),
        "failures": failures,
        "damaged": damaged,
        "per_source": results,
        "run": run,
    }


def summary_name(shard: tuple[int, int] | None) -> str:
    return SUMMARY_FILE if shard is None else f"summary.shard-{shard[0]}-of-{shard[1]}.json"


def summary_files(out: Path) -> list[Path]:
    """The summaries of every shard of the job in ``out``."""
    return sorted([*out.glob(SUMMARY_FILE), *out.glob("summary.shard-*-of-*.json")])


def record_files(folders: list[Path]) -> list[tuple[Path, str]]:
    """(manifest or journal, "manifest" or "journal") of each source folder that holds one, a manifest
    preferred: what a source's frames are read from."""
    found = []
    for folder in folders:
        if (folder / MANIFEST_FILE).is_file():
            found.append((folder / MANIFEST_FILE, "manifest"))
        elif (folder / JOURNAL_FILE).is_file():
            found.append((folder / JOURNAL_FILE, "journal"))
    return found


def journal_records(path: Path, header: bool = False):
    """The records of a journal (frames.jsonl) in the order written, lines torn by a kill or power cut skipped
    (those frames are labeled again); the header line naming the source only with ``header``."""
    if not Path(path).exists():
        return
    with open(path) as f:
        for line in f:
            rec = _parse(line) if line.strip() else None
            if isinstance(rec, dict) and (header or "identity" not in rec):
                yield rec


def _parse(line: str | bytes) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # a line torn by a power cut: that frame is labeled again
        return None
