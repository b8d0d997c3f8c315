"""One job per output folder at a time. Two jobs writing the same --out would each rewrite the other's
journals and manifests, so each job holds a lock file there while it runs: ``.ssseg-label.lock``, or one per
shard (``.ssseg-label.shard-I-of-N.lock``) so the shards of one job run side by side. A lock is created
whole or not at all (hard link of a written temporary), names its holder (host, process, runtime, start), and
one left by a killed process on this host is taken over with a line saying so. ssseg-cpp writes and honours
the same files (cpp/src/lock.cpp)."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Callable

from ssseg.errors import LabelError
from ssseg.io import process_alive, temporary_name
from ssseg.label.records import now

LOCK = ".ssseg-label.lock"
SHARD_LOCK = re.compile(r"^\.ssseg-label\.shard-(\d+)-of-(\d+)\.lock$")


def is_lock_file(name: str) -> bool:
    """A lock, or the temporary it is written to."""
    name = re.sub(r"^\.(.+)\.tmp\d+$", r"\1", name)
    return name == LOCK or SHARD_LOCK.match(name) is not None


def lock_name(shard: tuple[int, int] | None) -> str:
    return LOCK if shard is None else f".ssseg-label.shard-{shard[0]}-of-{shard[1]}.lock"


class JobLock:
    def __init__(self, out: Path, shard: tuple[int, int] | None, runtime: str, say: Callable[[str], None]):
        self.out, self.shard, self.runtime, self.say = Path(out), shard, runtime, say
        self.path = self.out / lock_name(shard)
        self.held = False

    def acquire(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for other in self._conflicting():
            self._clear(other)
        tmp = temporary_name(self.path)
        tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "runtime": self.runtime,
                                   "started": now()}) + "\n")
        try:
            os.link(tmp, self.path)  # fails if it exists: two jobs starting at once cannot both win
        except FileExistsError:
            self._refuse(self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self.held = True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _conflicting(self) -> list[Path]:
        """The whole job conflicts with every lock; a shard with the whole job's and its own."""
        names = [LOCK] if self.shard is None else [LOCK, self.path.name]
        if self.shard is None:
            names += [e.name for e in os.scandir(self.out) if SHARD_LOCK.match(e.name)]
        return [self.out / n for n in names if (self.out / n).exists()]

    def _clear(self, path: Path) -> None:
        holder = _read(path)
        if holder is not None and holder.get("host") == socket.gethostname() and not process_alive(holder["pid"]):
            path.unlink(missing_ok=True)
            self.say(f"{path}: removed a stale lock (process {holder['pid']}, {holder.get('runtime')}, started "
                     f"{holder.get('started')}, is gone); run --resume to keep what it labeled")
            return
        self._refuse(path)

    def _refuse(self, path: Path) -> None:
        holder = _read(path)
        who = ("another job" if holder is None else
               f"another {holder.get('runtime', 'ssseg')} job (process {holder.get('pid')} on {holder.get('host')}, "
               f"started {holder.get('started')})")
        raise LabelError(f"{who} is labeling into this folder", path=path,
                         fix="wait for it to end, or split the work with --shard I/N; if no such job runs, delete "
                             "this lock file and run again with --resume")


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None
    except (OSError, ValueError):
        return None

