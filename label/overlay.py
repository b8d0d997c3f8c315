"""``--overlay``: an MP4 of the sampled frames with the gated mask blended in. Confident pixels are tinted
with their class colour; not-confident pixels are dimmed to grey under thin white diagonal lines, a pattern
no class tint can produce."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.io import temporary_name

HATCH = np.array([255, 255, 255], np.uint8)
HATCH_PERIOD, HATCH_WIDTH = 6, 1


def blend(rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxWx3 frame and HxW gated labels (same size) -> the overlay frame."""
    tinted = (rgb.astype(np.uint16) + palette[labels]) // 2
    uncertain = labels == IGNORE_INDEX
    if uncertain.any():
        grey = (rgb.astype(np.uint16).sum(axis=2) // 6).astype(np.uint8)  # mean / 2
        tinted[uncertain] = grey[uncertain][:, None]
        h, w = labels.shape
        diag = (np.arange(h)[:, None] + np.arange(w)[None, :]) % HATCH_PERIOD < HATCH_WIDTH
        tinted[uncertain & diag] = HATCH
    return tinted.astype(np.uint8)


class OverlayWriter:
    """Frames in order -> ``path`` (H.264 when FFmpeg has libx264, else MPEG-4 Part 2), written to a
    temporary name and renamed by ``close``; ``abort`` removes it."""

    def __init__(self, path: Path, rate: Fraction, classes: ClassSet):
        self.path = Path(path)
        self.tmp = temporary_name(self.path)
        self.rate = Fraction(rate).limit_denominator(100000)
        self.palette = classes.palette()
        self.container = self.stream = None
        self.frames = 0

    def _open(self, h: int, w: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), "w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=self.rate)
        self.stream.width, self.stream.height = w + w % 2, h + h % 2  # 4:2:0 needs even sizes
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "23", "preset": "veryfast"}

    def add(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        import av

        if self.container is None:
            self._open(*labels.shape)
        frame = blend(rgb, labels, self.palette)
        h, w = frame.shape[:2]
        if (h % 2, w % 2) != (0, 0):
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        video = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video.pts = self.frames
        self.frames += 1
        self.container.mux(self.stream.encode(video))

    def close(self) -> Path | None:
        if self.container is None:
            return None
        self.container.mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self.tmp.unlink(missing_ok=True)
