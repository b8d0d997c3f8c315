"""Small file helpers: every file ssseg writes goes through a temporary name and a rename, so an
interrupted process never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before its rename: hidden, and naming the writing process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def remove_stale_temporaries(folder: Path, prefix: str = "") -> int:
    """Delete the temporaries that killed processes left in ``folder`` for files named ``prefix``*; the
    files they were to become are rewritten by whoever resumes the work. Returns how many went."""
    removed = 0
    if not Path(folder).is_dir():
        return 0
    for entry in os.scandir(folder):
        m = _TEMPORARY.match(entry.name)
        if not m or not m["name"].startswith(prefix) or process_alive(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this process never counts: what it left from an earlier
    job in this process is not in flight)."""
    if pid == os.getpid():
        return False  # ours from an earlier job in this process cannot be in flight now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk: no half-written temporary left behind either
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not e.filename:
            e.filename = str(path)  # write() names no file
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict) -> None:
    """One whole line or none: a line torn by a full disk is cut off again before the error goes on."""
    with open(path, "a") as f:
        size = f.tell()
        try:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            f.truncate(size)
            e.filename = e.filename or str(path)
            raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_format(obj: Any, expected: str, version: int | tuple[int, ...], *, what: str, path: Path, error: type,
                 foreign_fix: str, version_fix: str) -> None:
    """Refuse a file without ``expected``'s format marker or of a format version not in ``version``.
    ``version_fix`` may name ``{written}``, the ssseg version that wrote the file."""
    versions = version if isinstance(version, tuple) else (version,)
    if not isinstance(obj, dict) or obj.get("format") != expected:
        raise error(f"not {what} (no {expected} format marker)", path=path, fix=foreign_fix)
    if obj.get("format_version") not in versions:
        written = obj.get("ssseg_version")
        raise error(f"{what} format {obj.get('format_version')} (written by ssseg {written}), this ssseg reads "
                    f"format {' or '.join(map(str, versions))}", path=path, fix=version_fix.format(written=written))


def read_format(path: Path, expected: str, version: int | tuple[int, ...], *, what: str, error: type,
                damaged_fix: str, foreign_fix: str, version_fix: str) -> dict:
    """One of ssseg's JSON files: its object once ``check_format`` accepts it; a file that is not JSON is refused
    with ``damaged_fix``."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError:
        raise error(f"{Path(path).name} is not valid JSON", path=path, fix=damaged_fix) from None
    check_format(data, expected, version, what=what, path=path, error=error, foreign_fix=foreign_fix,
                 version_fix=version_fix)
    return data
