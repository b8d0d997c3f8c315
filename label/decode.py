"""Frames out of sources: PyAV for videos and streams (every frame decoded in order, so frame numbers are
exact; timestamps drive --fps sampling, so variable frame rates are handled), Pillow for image folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from ssseg.errors import LabelError
from ssseg.label.inputs import Source

DEFAULT_IMAGE_RATE = Fraction(10)
# Frames after damaged data within which a gap in the timestamps counts as frames it took: the decoder
# hands frames out with a delay (reordering), so the gap shows a few frames late. Same in ssseg-cpp.
GAP_WINDOW = 32  # overlay frame rate of image sequences, which have no timestamps
# FFmpeg warnings that mean frames are missing or damaged (errors always do).
DAMAGE = re.compile(r"(?i)prematurely|corrupt|truncat|damaged|invalid|missing")


class DecodeError(Exception):
    """A source stopped decoding part-way; the frames before it are labeled, the message is recorded."""


@dataclass
class RawFrame:
    index: int  # frame number in the source, from 0
    name: str  # output stem
    time: float | None  # seconds from the start (videos)
    payload: Any  # av.VideoFrame or an image path: converted to RGB only when the frame is needed

    def rgb(self) -> np.ndarray:
        if isinstance(self.payload, np.ndarray):
            return self.payload
        if hasattr(self.payload, "to_ndarray"):
            return self.payload.to_ndarray(format="rgb24")
        from PIL import Image

        from ssseg.data.base import to_rgb8

        try:
            with Image.open(self.payload) as im:
                return to_rgb8(im)
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
            raise DecodeError(f"cannot decode image ({type(e).__name__}: {str(e)[:80]})") from None


class Sampler:
    """--every K (frame numbers 0, K, 2K, ...) or --fps F (the first frame at or after each 1/F step of
    the timestamps; a long gap yields one frame, not a burst)."""

    def __init__(self, every: int | None, fps: float | None):
        self.every, self.fps = every or 1, fps
        self.next_time: float | None = None

    def take(self, index: int, time: float | None) -> bool:
        if self.fps is None or time is None:
            return index % self.every == 0
        if self.next_time is None or time >= self.next_time - 1e-6:
            base = time if self.next_time is None else self.next_time
            step = 1.0 / self.fps
            self.next_time = base + step * (int((time - base) / step + 1e-6) + 1)
            return True
        return False


def import_av():
    try:
        import av
        import av.logging
    except ImportError:
        raise LabelError("decoding video needs PyAV, which is not installed",
                         fix="pip install 'ssseg[label]' (av)") from None
    av.logging.set_level(av.logging.WARNING)  # PyAV silences FFmpeg by default; its warnings reveal damage
    return av


def open_container(source: Source):
    av = import_av()
    options = {"format": "v4l2"} if source.input.startswith("/dev/video") else {}
    with av.logging.Capture(local=True):  # its reasons are in the exception; keep them off the terminal
        try:
            return av.open(source.input, **options, timeout=30.0 if source.kind == "stream" else None)
        except Exception as e:  # noqa: BLE001 - FFmpeg errors, OSError, permissions
            raise DecodeError(f"cannot open ({_short(e)})") from None


def frame_rate(container) -> Fraction | None:
    """The video stream's frame rate, or None (also for a file with no video stream, which random bytes can
    look like to FFmpeg: video_frames then says so)."""
    if not container.streams.video:
        return None
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else None


@dataclass
class Damage:
    """Damaged data before frame numbers first..last: lost (``skipped``; decoding went on after them), or
    rebuilt by FFmpeg's error concealment and labeled (the masks may show the damage)."""

    first: int
    last: int
    reason: str
    skipped: bool


def video_frames(container) -> Iterator[RawFrame | Damage]:
    """Decoded frames in presentation order, packet by packet, so a damaged stretch costs only its own
    frames: a packet that fails to decode is skipped, and the next frame's timestamp says how many frame
    numbers it took (so later frames keep their numbers). A frame FFmpeg rebuilt from damaged data (it
    conceals and logs) is labeled, and reported like the lost ones as a ``Damage`` before it. Raises
    DecodeError when the file cannot be read on (after the frames it gave), or is shorter than it declares."""
    import av.logging

    if not container.streams.video:
        raise DecodeError("no video stream in the file")
    stream = container.streams.video[0]
    # One FFmpeg thread per source, so its messages reach this thread's log capture; sources decode in parallel.
    stream.codec_context.thread_count = 1
    declared = stream.frames
    rate = frame_rate(container)  # timestamps for streams that carry none (raw .h264)
    start = stream.start_time or 0
    index, damage, since, window = 0, None, 0, 0  # damage: its reason, the frame number it came before
    with av.logging.Capture(local=True) as logs:
        seen = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.PatchWelcomeError) as e:  # this packet only
                    if damage is None:
                        damage, since = _short(e), index
                    window, frames = GAP_WINDOW, []
                messages = [m.strip() for lvl, _, m in logs[seen:] if lvl <= av.logging.ERROR or DAMAGE.search(m)]
                seen = len(logs)
                if messages:
                    if damage is None:
                        damage, since = messages[0], index
                    window = GAP_WINDOW
                for frame in frames:
                    if damage is not None:
                        at = _frame_number(frame, start, rate)
                        window -= 1
                        if at is not None and at > index:  # the frames the damage took
                            yield Damage(index, at - 1, damage, skipped=True)
                            index, damage = at, None
                        elif window <= 0:  # none lost: FFmpeg concealed it
                            yield Damage(since, since, damage, skipped=False)
                            damage = None
                    t = frame.time if frame.time is not None else (float(index / rate) if rate else None)
                    yield RawFrame(index, f"{index:06d}", t, frame)
                    index += 1
        except Exception as e:  # noqa: BLE001 - the container cannot be read on (EOFError, OSError, ...)
            raise DecodeError(f"decoding stopped after {index} frames ({_short(e)})") from None
    if index == 0:
        raise DecodeError("no frame could be decoded" + (f" ({damage})" if damage else ""))
    if damage is not None and window == GAP_WINDOW:  # no frame after it: the file ends in damage (cut short?)
        raise DecodeError(f"damaged or truncated data at the end, {index} frames decoded ({damage})")
    if damage is not None:
        yield Damage(since, since, damage, skipped=False)
    if declared and index < declared:
        raise DecodeError(f"decoded frames up to {index - 1} of the {declared} frames the file declares (truncated?)")


def _frame_number(frame, start: int, rate: Fraction | None) -> int | None:
    """A frame's number from its timestamp (constant-rate video), as ssseg-cpp computes it from OpenCV's."""
    if frame.pts is None or frame.time_base is None or not rate:
        return None
    return round(float((frame.pts - start) * frame.time_base * rate))


def image_frames(source: Source, names: list[str]) -> Iterator[RawFrame]:
    for index, (path, name) in enumerate(zip(source.images, names)):
        yield RawFrame(index, name, None, path)


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]
