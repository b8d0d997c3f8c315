"""Pictures of labeled frames for the report: the frame, its gated mask over it and its confidence, side by side.

The frame comes from the job's own image file where the format writes one (cityscapes, camvid), else from the
source: a video is decoded from the nearest key frame before the frame's timestamp, an image folder read by
the frame's position. A source that moved or a stream shows the mask on grey, and the report says so."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssseg.label.decode import DecodeError, RawFrame
from ssseg.label.inputs import expand_inputs, frame_names


@dataclass
class Picture:
    """One frame's panels as JPEG bytes: a thumbnail strip and a larger one to enlarge to."""

    thumb: bytes
    full: bytes
    panels: list[str]  # what each panel shows, left to right
    note: str | None  # why a panel is missing


def source_images(source: dict, frames: list[dict], orientation: str = "displayed") -> dict[int, np.ndarray]:
    """{frame index: RGB frame} for the frames of one source that can be found again (the rest are absent),
    turned as the job turned them (``orientation``)."""
    kind, path = source.get("kind"), source.get("input", "")
    try:
        if kind == "video" and Path(path).is_file():
            return _video_frames(Path(path), frames, orientation)
        if kind == "images" and Path(path).is_dir():
            return _folder_frames(path, frames, orientation)
    except Exception:  # noqa: BLE001 - a source changed since labeling: the report shows the masks alone
        return {}
    return {}


def _video_frames(path: Path, frames: list[dict], orientation: str) -> dict[int, np.ndarray]:
    import av

    found = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for rec in sorted((r for r in frames if r.get("time") is not None), key=lambda r: r["time"]):
            t = float(rec["time"])
            container.seek(max(0, int(t / stream.time_base)), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time >= t - 1e-4:
                    raw = RawFrame(rec["index"], rec["name"], t, frame, orientation == "displayed")
                    found[rec["index"]] = raw.rgb()
                    break
    return found


def _folder_frames(folder: str, frames: list[dict], orientation: str) -> dict[int, np.ndarray]:
    sources = expand_inputs([folder])
    images = sources[0].images if sources else []
    names = frame_names(images)
    found = {}
    for rec in frames:
        i = rec["index"]
        if rec.get("file"):  # recorded: the frame's own file, wherever the folder's order moved it
            path = Path(rec["file"])
        elif i < len(images) and names[i] == rec["name"]:  # the folder still holds the frame it had
            path = images[i]
        else:
            continue
        try:
            found[i] = RawFrame(i, rec["name"], None, path, orientation == "displayed").rgb()
        except DecodeError:
            pass
    return found


def read_rgb(path: Path) -> np.ndarray | None:
    """An image as HxWx3 uint8 RGB, as training and labeling read it; None when it is gone or damaged."""
    from ssseg.data.base import read_image
    from ssseg.errors import DataError

    try:
        return read_image(path)
    except DataError:
        return None


def read_png(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except Exception:  # noqa: BLE001 - missing or damaged
        return None


def picture(labels: np.ndarray | None, confidence: np.ndarray | None, rgb: np.ndarray | None, palette: np.ndarray,
            num_classes: int, thumb_height: int, full_height: int, missing_mask: str = "") -> Picture:
    """Panels [frame | mask over the frame | confidence]; labels >= ``num_classes`` are not confident (255, or
    CamVid's void) and show the frame darkened. Without labels (a frame below --min-coverage is not written)
    the frame alone, ``missing_mask`` saying why."""
    notes = []
    if labels is None:
        panels, names = [rgb], ["frame"]
        notes.append(missing_mask or "no mask on disk")
    else:
        h, w = labels.shape[:2]
        if rgb is None or rgb.shape[:2] != (h, w):
            notes.append("frame not found (the source moved, or is a stream)")
            rgb = np.full((h, w, 3), 96, np.uint8)
        confident = labels < num_classes
        colours = palette[np.where(confident, labels, 0)]
        overlay = np.where(confident[..., None], (0.45 * rgb + 0.55 * colours), 0.35 * rgb).astype(np.uint8)
        panels, names = [rgb, overlay], ["frame", "gated mask"]
        if confidence is not None and confidence.shape[:2] == (h, w):
            panels.append(_lut()[confidence])
            names.append("confidence")
        else:
            notes.append("no confidence map (label with --confidence)")
    strip = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
    strip = strip[:, :-4]
    return Picture(_jpeg(strip, thumb_height), _jpeg(strip, full_height), names, "; ".join(notes) or None)


def _jpeg(image: np.ndarray, height: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(image)
    if im.height > height:
        im = im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@functools.cache
def _lut() -> np.ndarray:
    """Viridis as a 256x3 uint8 table: confidence 0..255 -> colour."""
    from matplotlib import colormaps

    return (colormaps["viridis"](np.arange(256) / 255.0)[:, :3] * 255).astype(np.uint8)
