"""What to label: INPUT arguments expanded into sources (one video, one image folder or one stream each),
their output names, and the deterministic split of the sources into shards."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ssseg.data.base import IMAGE_EXTS
from ssseg.errors import LabelError

VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".ts", ".mts", ".mpg", ".mpeg", ".h264", ".h265")
LIST_EXTS = (".txt", ".lst", ".list")
STREAM_PREFIXES = ("/dev/video",)  # V4L2 cameras; URLs are recognised by their scheme
RESERVED = re.compile(r"^(job\.json|summary(\.shard-\d+-of-\d+)?\.json|meta)$")


@dataclass
class Source:
    """One unit of work: its frames are named, sampled and written together, with one manifest."""

    input: str  # as the user gave it (a video path, a folder, a URL)
    kind: str  # video | images | stream
    key: str = ""  # output name: safe for any file system, unique within the job
    images: list[Path] = field(default_factory=list)  # kind images: the frames, in order
    error: str | None = None  # why it cannot be labeled at all (found while expanding)

    @property
    def path(self) -> Path:
        return Path(self.input)

    def identity(self) -> dict:
        """Size and modification time of what is read, so a resume notices a changed input."""
        if self.kind == "stream":
            return {}
        files = self.images if self.kind == "images" else [self.path]
        stats = [p.stat() for p in files if p.exists()]
        return {"bytes": sum(s.st_size for s in stats), "mtime": max((s.st_mtime for s in stats), default=0.0),
                "files": len(files)}

    def weight(self) -> int:
        return self.identity().get("bytes", 0) if self.error is None else 0


def is_stream(text: str) -> bool:
    return "://" in text or text.startswith(STREAM_PREFIXES)


def safe_name(text: str, allow_underscore: bool = True) -> str:
    """A single path component made of [A-Za-z0-9._-] that cannot be '.', '..' or hidden, so output paths
    stay inside OUT_DIR whatever the inputs are called."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    if not allow_underscore:
        name = name.replace("_", "-")
    return name.strip("._-")[:80] or "input"


def frame_names(images: list[Path]) -> list[str]:
    """Output stems of an image sequence: the safe stem, made unique (a.png and a.jpg both exist)."""
    seen: dict[str, int] = {}
    names = []
    for p in images:
        base = safe_name(p.stem)
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n + 1}")
    return names


def expand_inputs(inputs: list[str] | tuple[str, ...]) -> list[Source]:
    """Every INPUT as sources, in the order given. Images named one by one (globs, list files) are grouped
    by folder. A path or glob that matches nothing is refused here, before any work; a folder without
    images or an empty file becomes a source with ``error`` set, recorded as a failure of the job."""
    videos: dict[str, Source] = {}
    folders: dict[Path, Source] = {}
    order: list[Source] = []

    def add_images(folder: Path, images: list[Path], label: str) -> None:
        key = folder.resolve()
        if key not in folders:
            folders[key] = Source(label, "images")
            order.append(folders[key])
        src = folders[key]
        src.images = sorted(set(src.images) | set(images))

    def add(item: str, origin: str | None, depth: int = 0) -> None:
        where = f" (listed in {origin})" if origin else ""
        if is_stream(item):
            if item not in videos:
                videos[item] = Source(item, "stream")
                order.append(videos[item])
            return
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            add_images(path, images, str(path))
            if not images:
                folders[path.resolve()].error = "folder holds no images (.png/.jpg/...)"
            return
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix in LIST_EXTS:
                if depth > 4:
                    raise LabelError("list files nest too deeply", path=path, fix="list videos, folders or images")
                for line in path.read_text(errors="replace").splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        target = line if is_stream(line) or Path(line).is_absolute() else str(path.parent / line)
                        add(target, str(path), depth + 1)
                return
            if suffix in IMAGE_EXTS:
                add_images(path.parent, [path], str(path.parent))
                return
            key = str(path.resolve())
            if key not in videos:
                videos[key] = Source(str(path), "video", error=None if path.stat().st_size else "file is empty")
                order.append(videos[key])
            return
        if any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise LabelError(f"glob matches nothing{where}", path=item,
                                 fix="check the pattern (quote it in the shell)")
            for m in matches:
                add(m, origin, depth)
            return
        raise LabelError(f"input does not exist{where}", path=item,
                         fix="pass video files, image folders, globs, list files (.txt) or stream URLs")

    for item in inputs:
        add(str(item), None)
    assign_keys(order)
    return order


def assign_keys(sources: list[Source]) -> None:
    """Output names from file/folder names (of the absolute path: ``sub/..`` is named after the folder it
    means), made unique in the order of their absolute paths, not of the arguments (a/cam.mp4 and b/cam.mp4
    become cam and cam-2 however they are given, so a --resume with the inputs reordered finds its files).
    Underscores are avoided: Cityscapes file names split on them. ssseg-cpp names them alike (names.cpp)."""
    bases = []
    for src in sources:
        if src.kind == "stream":  # host and last path part: rtsp://cam7:554/live/main -> cam7-554-main
            url = urlsplit(src.input)
            base = f"{url.netloc}-{PurePosixPath(url.path).name}"
        else:
            path = Path(os.path.abspath(src.path))
            base = path.name if src.kind == "images" else path.stem
        base = safe_name(base, allow_underscore=False)
        if RESERVED.match(base):  # OUT/<source>/ must not collide with the job's own files
            base += "-source"
        bases.append(base)
    used: set[str] = set()
    order = sorted(range(len(sources)), key=lambda i: src_order(sources[i]))
    for i in order:
        key, n = bases[i], 1
        while key in used:
            n += 1
            key = f"{bases[i]}-{n}"
        used.add(key)
        sources[i].key = key


def src_order(src: Source) -> str:
    return src.input if src.kind == "stream" else os.path.abspath(src.path)


def shard(sources: list[Source], index: int, count: int) -> list[Source]:
    """Shard ``index`` of ``count``: sources dealt out largest first to the least loaded shard (bytes), ties
    by name. Every machine given the same INPUTs computes the same split; the shards cover every source
    exactly once."""
    loads = [0] * count
    owner: dict[str, int] = {}
    for src in sorted(sources, key=lambda s: (-s.weight(), s.key)):
        target = min(range(count), key=lambda i: (loads[i], i))
        owner[src.key] = target
        loads[target] += max(src.weight(), 1)
    return [s for s in sources if owner[s.key] == index]
