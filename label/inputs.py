"""What to label: INPUT arguments expanded into sources (one video, one image folder or one stream each),
their output names, and the deterministic split of the sources into shards.

Output names (a source's key, a frame's stem) follow one rule that does not depend on the order of the inputs
or on sort order: the name itself when it is already safe ([A-Za-z0-9._-], short, not one of the job's own
file names) and no other source of the job (or frame of the folder) cleans to the same name, ignoring case;
otherwise the cleaned name plus the first 8 hex digits of the sha256 of the source's absolute path (the
frame's file name). A resume keeps the key each source was labeled under (by its path), so adding an input
never renames one already labeled. ssseg-cpp names alike (names.cpp)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ssseg.data.base import IMAGE_EXTS
from ssseg.errors import LabelError
from ssseg.label.rules import HASH_DIGITS, NAME_LENGTH, RESERVED

VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".ts", ".mts", ".mpg", ".mpeg", ".h264", ".h265")
LIST_EXTS = (".txt", ".lst", ".list")
STREAM_PREFIXES = ("/dev/video",)  # V4L2 cameras; URLs are recognised by their scheme
HASHED = re.compile(rf"-[0-9a-f]{{{HASH_DIGITS}}}$")  # what the rule appends: a plain name never ends like it


@dataclass
class Source:
    """One unit of work: its frames are named, sampled and written together, with one manifest."""

    input: str  # as the user gave it (a video path, a folder, a URL)
    kind: str  # video | images | stream
    key: str = ""  # output name: safe for any file system, unique within the job
    images: list[Path] = field(default_factory=list)  # kind images: the frames, in order
    error: str | None = None  # why it cannot be labeled at all (found while expanding)
    base: str = ""  # the name its key is made from (file stem, folder name, or its path under a --recursive folder)
    notes: list[str] = field(default_factory=list)  # what expanding it left out, for the console

    @property
    def where(self) -> str:
        """Its absolute path (a stream: its URL): the identity resume matches it by."""
        return self.input if self.kind == "stream" else os.path.abspath(self.input)

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
    return name.strip("._-")[:NAME_LENGTH] or "input"


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_DIGITS]


def unique_names(bases: list[str], ids: list[str], allow_underscore: bool, taken: set[str] = frozenset()) -> list[str]:
    """The naming rule (module docstring): ``bases[i]`` as it is, or cleaned plus the hash of ``ids[i]``.
    ``taken``: names already in use (a resumed job's keys), compared ignoring case."""
    cleaned = [safe_name(b, allow_underscore) for b in bases]
    count: dict[str, int] = {}
    for c in [*cleaned, *taken]:
        count[c.lower()] = count.get(c.lower(), 0) + 1
    out = []
    for base, clean, ident in zip(bases, cleaned, ids):
        as_is = base if allow_underscore else base.replace("_", "-")
        plain = clean == as_is and count[clean.lower()] == 1 and not RESERVED.match(clean) and not HASHED.search(clean)
        out.append(clean if plain else f"{clean}-{short_hash(ident)}")
    return out


def frame_names(images: list[Path]) -> list[str]:
    """Output stems of an image sequence: the stem, or (unsafe, or shared with another image of the folder:
    a.png and a.jpg) the cleaned stem plus the hash of the file name."""
    return unique_names([p.stem for p in images], [p.name for p in images], allow_underscore=True)


def expand_inputs(inputs: list[str] | tuple[str, ...], recursive: bool = False,
                  recorded: dict[str, str] | None = None) -> list[Source]:
    """Every INPUT as sources, in the order given. Images named one by one (globs, list files) are grouped
    by folder. A folder's videos and subfolders are sources too with ``recursive`` (named by their path under
    the folder); without it they are left out and the folder's ``notes`` say so. A path or glob that matches
    nothing is refused here, before any work; a folder without images or an empty file becomes a source with
    ``error`` set, recorded as a failure of the job. ``recorded``: {absolute path: key} of sources an earlier
    run of the job labeled, which keep their keys."""
    videos: dict[str, Source] = {}
    folders: dict[Path, Source] = {}
    order: list[Source] = []

    def add_images(folder: Path, images: list[Path], label: str, base: str | None = None) -> Source:
        key = folder.resolve()
        if key not in folders:
            folders[key] = Source(label, "images", base=base or Path(os.path.abspath(folder)).name)
            order.append(folders[key])
        src = folders[key]
        src.images = sorted(set(src.images) | set(images))
        return src

    def add_video(path: Path, base: str | None = None) -> None:
        key = str(path.resolve())
        if key not in videos:
            videos[key] = Source(str(path), "video", error=None if path.stat().st_size else "file is empty",
                                 base=base or Path(os.path.abspath(path)).stem)
            order.append(videos[key])

    def add_folder(path: Path, base: str | None, depth: int) -> None:
        entries = sorted(path.iterdir())
        images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
        clips = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTS]
        subfolders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        base = base or Path(os.path.abspath(path)).name
        if recursive:
            if images or depth == 0:
                src = add_images(path, images, str(path), base)
                if not images and not clips and not subfolders:
                    src.error = "folder holds no images (.png/.jpg/...) or videos"
                elif not images:  # only a container for what is below: not a source of its own
                    order.remove(src)
                    del folders[path.resolve()]
            for clip in clips:
                add_video(clip, f"{base}-{clip.stem}")
            for sub in subfolders:
                if depth < 16 and not sub.is_symlink():  # a link back up would never end
                    add_folder(sub, f"{base}-{sub.name}", depth + 1)
            return
        src = add_images(path, images, str(path), base)
        left = [f"{len(clips)} video(s)"] * bool(clips) + [f"{len(subfolders)} subfolder(s)"] * bool(subfolders)
        if not images:
            src.error = "folder holds no images (.png/.jpg/...)" + (
                f"; it holds {' and '.join(left)}: pass --recursive to label them" if left else "")
        elif left:
            src.notes.append(f"{' and '.join(left)} in it not labeled (pass --recursive to label them)")

    def add(item: str, origin: str | None, depth: int = 0) -> None:
        where = f" (listed in {origin})" if origin else ""
        if is_stream(item):
            if item not in videos:
                videos[item] = Source(item, "stream")
                order.append(videos[item])
            return
        path = Path(item)
        if path.is_dir():
            add_folder(path, None, 0)
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
            add_video(path)
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
    assign_keys(order, recorded or {})
    return order


def assign_keys(sources: list[Source], recorded: dict[str, str] | None = None) -> None:
    """Keys by the naming rule (module docstring), of the absolute path (``sub/..`` is named after the folder
    it means), so reordering the inputs changes nothing; a source in ``recorded`` keeps its key. Underscores
    become hyphens: Cityscapes file names split on them. Streams are named by host and last path part
    (rtsp://cam7:554/live/main -> cam7-554-main, the job adds a time stamp)."""
    recorded = recorded or {}
    fresh = [s for s in sources if s.kind == "stream" or s.where not in recorded]  # a stream never repeats
    for src in sources:
        if src not in fresh:
            src.key = recorded[src.where]
        elif src.kind == "stream":
            url = urlsplit(src.input)
            src.base = safe_name(f"{url.netloc}-{PurePosixPath(url.path).name}", allow_underscore=False)
        elif not src.base:
            path = Path(os.path.abspath(src.path))
            src.base = path.name if src.kind == "images" else path.stem
    taken = set(recorded.values())  # also of sources this run was not given: their folders stay theirs
    keys = unique_names([s.base for s in fresh], [s.where for s in fresh], allow_underscore=False, taken=taken)
    for src, key in zip(fresh, keys):
        src.key = key


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
