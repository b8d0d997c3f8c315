"""Frames out of sources: PyAV for videos and streams (every frame decoded in order, so frame numbers are
exact; timestamps drive --fps sampling, so variable frame rates are handled), Pillow for image folders.

Frames come out as a viewer shows them (``orientation="displayed"``): a video's display matrix and an image's
EXIF orientation are applied, so masks line up with what players and photo viewers show; "stored" gives the
pixels as stored. FFmpeg's own log lines never reach the terminal: damage is read from them per source, and the
rest go to the job's log (``log_ffmpeg_to``)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from ssseg.errors import LabelError
from ssseg.label.inputs import Source
from ssseg.label.rules import GAP_WINDOW, GRID_TOLERANCE, MIN_REGULAR

DEFAULT_IMAGE_RATE = Fraction(10)
# FFmpeg warnings that mean frames are missing or damaged (errors always do).
DAMAGE = re.compile(r"(?i)prematurely|corrupt|truncat|damaged|invalid|missing")


class DecodeError(Exception):
    """A source stopped decoding part-way; the frames before it are labeled, the message is recorded."""


EXIF_ORIENTATION = 0x0112  # the EXIF tag Pillow's exif_transpose applies


@dataclass
class RawFrame:
    index: int  # frame number in the source, from 0
    name: str  # output stem
    time: float | None  # seconds from the start (videos)
    payload: Any  # av.VideoFrame or an image path: converted to RGB only when the frame is needed
    displayed: bool = True  # apply the display matrix / EXIF orientation
    turned: str | None = None  # what rgb() applied ("rotate 90", "exif 6"), None for nothing

    def rgb(self) -> np.ndarray:
        if isinstance(self.payload, np.ndarray):
            return self.payload
        if hasattr(self.payload, "to_ndarray"):
            rgb = self.payload.to_ndarray(format="rgb24")
            turn = (self.payload.rotation or 0) if self.displayed else 0
            if turn % 360:  # counterclockwise, as the display matrix says and np.rot90 turns
                self.turned = f"rotate {turn % 360}"
                rgb = np.ascontiguousarray(np.rot90(rgb, k=(turn % 360) // 90))
            return rgb
        from PIL import Image, ImageOps

        from ssseg.data.base import to_rgb8

        try:
            with Image.open(self.payload) as im:
                tag = im.getexif().get(EXIF_ORIENTATION, 1) if self.displayed else 1
                if tag not in (None, 1):
                    self.turned = f"exif {tag}"
                    return to_rgb8(ImageOps.exif_transpose(im))
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


FFMPEG_LOG = logging.getLogger("libav")  # where PyAV sends what no capture takes (other threads, teardown)
FFMPEG_LOG.propagate = False  # never Python's last-resort handler, which prints to the terminal
FFMPEG_LOG.addHandler(logging.NullHandler())


def log_ffmpeg_to(path) -> logging.Handler:
    """Append FFmpeg's uncaptured log lines to ``path`` (the label job's ffmpeg.log); returns the handler,
    for ``FFMPEG_LOG.removeHandler`` when the job ends."""
    handler = logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    FFMPEG_LOG.addHandler(handler)
    return handler


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


def video_frames(container, orientation: str = "displayed") -> Iterator[RawFrame | Damage]:
    """Decoded frames in presentation order, packet by packet, so a damaged stretch costs only its own
    frames: a packet that fails to decode is skipped, and the next frames' timestamps say which frame numbers
    it took (so later frames keep their numbers). The damage is reported when GAP_WINDOW frames have passed
    without another gap: a frame the decoder hands out late (reordered after the damage) still gets its own
    number, and one that repeats a number already given is dropped. A frame FFmpeg rebuilt from damaged data
    (it conceals and logs) is labeled, and reported like the lost ones as a ``Damage`` before it. Raises
    DecodeError when the file cannot be read on (after the frames it gave), or ends short of what its
    container declares (frame count or duration: a file cut short)."""
    import av.logging

    if not container.streams.video:
        raise DecodeError("no video stream in the file")
    stream = container.streams.video[0]
    # One FFmpeg thread per source, so its messages reach this thread's log capture; sources decode in parallel.
    stream.codec_context.thread_count = 1
    declared = stream.frames
    rate = frame_rate(container)  # timestamps for streams that carry none (raw .h264)
    displayed = orientation == "displayed"
    # the first frame's position; whether every timestamp so far sat on the frame grid; frames that came one
    # period after the one before (a time-lapse in a 30 fps container never does)
    origin, grid, regular = None, True, 0
    index, damage, since, window = 0, None, 0, 0  # damage: its reason, the frame number it came before
    missing: list[int] = []  # numbers the open damage took, reported when its window closes
    end_time = None  # the latest frame's time
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
                    number, pos = index, _frame_position(frame, rate)
                    if origin is None and pos is not None:
                        origin = pos  # frame 0: numbers count from the first frame decoded
                    at = None if pos is None else round(pos - origin)
                    # constant-rate timestamps so far: a jump in them is frames gone, said FFmpeg so or not
                    grid = grid and at is not None and abs(pos - origin - at) < GRID_TOLERANCE
                    if grid and damage is None and (at < index or (at > index and regular < MIN_REGULAR)):
                        grid = False  # going back, or jumping before the rate was seen kept: count frames
                    if grid and damage is None and at > index:
                        damage, since = f"frames missing from the stream (timestamps jump to frame {at})", index
                        window = GAP_WINDOW
                    regular = regular + 1 if grid and at == index else regular
                    if damage is not None:
                        window -= 1
                        if at is not None and at < index:
                            if at not in missing:
                                continue  # a number already given: a repeat the damage produced
                            missing.remove(at)  # thought lost, handed out late
                            number = at
                        elif at is not None and at > index:  # the frames the damage took (unless they come late)
                            missing += range(index, at)
                            number = index = at
                        if window <= 0:
                            yield from _closed(damage, since, missing)
                            damage, missing = None, []
                    t = frame.time if frame.time is not None else (float(number / rate) if rate else None)
                    if t is not None:
                        end_time = t if end_time is None else max(end_time, t)
                    yield RawFrame(number, f"{number:06d}", t, frame, displayed)
                    index = max(index, number + 1)
        except Exception as e:  # noqa: BLE001 - the container cannot be read on (EOFError, OSError, ...)
            raise DecodeError(f"decoding stopped after {index} frames ({_short(e)})") from None
    if index == 0:
        raise DecodeError("no frame could be decoded" + (f" ({damage})" if damage else ""))
    if damage is not None and window == GAP_WINDOW:  # no frame after it: the file ends in damage (cut short?)
        raise DecodeError(f"damaged or truncated data at the end, {index} frames decoded ({damage})")
    if damage is not None:
        yield from _closed(damage, since, missing)
    if declared and index < declared:
        raise DecodeError(f"decoded frames up to {index - 1} of the {declared} frames the file declares (truncated?)")
    shortfall = _shortfall(container, stream, end_time, rate)
    if shortfall:
        raise DecodeError(shortfall)


def _closed(reason: str, since: int, missing: list[int]) -> Iterator[Damage]:
    """The ranges of frame numbers a damage took, or (none lost) the one frame FFmpeg concealed."""
    if not missing:
        yield Damage(since, since, reason, skipped=False)
        return
    first = prev = missing[0]
    for n in [*missing[1:], None]:
        if n != prev + 1:
            yield Damage(first, prev, reason, skipped=True)
            first = n
        prev = n


def _shortfall(container, stream, end_time: float | None, rate: Fraction | None) -> str | None:
    """Why the decoded frames end short of the duration the file declares (a file cut short whose container
    does not count its frames, as Matroska's), or None. Two frame periods of slack, plus half a second when
    other streams (sound) may run past the last picture."""
    if end_time is None or not rate:
        return None
    if stream.duration and stream.time_base:
        declared = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
    elif container.duration:
        declared = container.duration / 1e6 + (container.start_time or 0) / 1e6
    else:
        return None
    period = 1.0 / float(rate)
    slack = 2 * period + (0.5 if len(container.streams) > 1 else 0.0)
    if end_time + period < declared - slack:
        return (f"decoded {end_time + period:.2f} s of the {declared:.2f} s the file declares "
                f"(cut short? last frame at {end_time:.2f} s)")
    return None


def _frame_position(frame, rate: Fraction | None) -> float | None:
    """A frame's timestamp in frame periods (constant-rate video), as ssseg-cpp computes it from OpenCV's."""
    if frame.pts is None or frame.time_base is None or not rate:
        return None
    return float(frame.pts * frame.time_base * rate)


def image_frames(source: Source, names: list[str], orientation: str = "displayed") -> Iterator[RawFrame]:
    for index, (path, name) in enumerate(zip(source.images, names)):
        yield RawFrame(index, name, None, path, orientation == "displayed")


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]
