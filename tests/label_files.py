"""Comparing the output folders of two label jobs (shared by tests/test_label.py and cpp/tests/parity.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def job_files(root: Path, skip: tuple[str, ...] = ("summary.json",)) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), manifests without their per-run records and the job
    file without its creation time: what two runs that labeled the same frames must agree on."""
    files = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and p.name not in skip:
            data = p.read_bytes()
            if p.name in ("manifest.json", "job.json"):
                m = json.loads(data)
                m.pop("runs" if p.name == "manifest.json" else "created")
                data = json.dumps(m, sort_keys=True).encode()
            files[p.relative_to(root).as_posix()] = data
    return files


def finished_files(folder: Path) -> int:
    """Files in ``folder`` that are in place (hidden temporaries excluded); 0 before it exists."""
    return len([n for n in os.listdir(folder) if not n.startswith(".")]) if folder.is_dir() else 0


def kill_after_files(cmd: list[str], folder: Path, count: int, timeout: float) -> int:
    """Start ``cmd``, SIGKILL it once ``folder`` holds ``count`` finished files; returns the finished files
    then (at least ``count`` unless the command ended or the timeout passed first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and finished_files(folder) < count:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return finished_files(folder)


def damaged_clip(path: Path, frames: int = 40, zero_bytes: int = 3000) -> Path:
    """An H.264 mp4 (index at the start) with ``zero_bytes`` zeroed at half its size: a damaged spot mid-file,
    as real cameras leave them. At 48x80 and 40 frames it costs frames 21-23 (both decoders agree)."""
    from ssseg.data.synthetic import write_synthetic_clip

    write_synthetic_clip(path, frames, (48, 80))
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + zero_bytes] = bytes(zero_bytes)
    path.write_bytes(bytes(data))
    return path


def mode_images(folder: Path, hw: tuple[int, int] = (48, 80)) -> dict:
    """One frame in each pixel format Pillow opens (16-bit grey and RGB, palette with and without
    transparency, CMYK JPEG, grey+alpha, RGBA, bilevel, 8-bit grey) written to ``folder``; returns name -> the
    RGB each must read as, computed here from the stored values (16-bit: the high byte; CMYK: within 1 of
    (255 - C)(255 - K)/255, checked by the caller)."""
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    from ssseg.data.synthetic import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    rgb = render_scene(5, "val", 0, hw)[0]
    rng = np.random.default_rng(0)
    expected = {}
    grey16 = (rgb[..., 1].astype(np.uint16) << 8) | rng.integers(0, 256, hw, dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    expected["grey16.png"] = np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    rgb16 = (rgb.astype(np.uint16) << 8) | rng.integers(0, 256, rgb.shape, dtype=np.uint16)
    rows = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(hw[0]))  # Pillow cannot write it

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", hw[1], hw[0], 16, 2, 0, 0, 0)  # 16-bit RGB
    (folder / "rgb16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    expected["rgb16.png"] = rgb
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE)
    pal.save(folder / "palette.png")
    pal.save(folder / "palette_transparent.png", transparency=0)
    expected["palette.png"] = expected["palette_transparent.png"] = np.asarray(pal.convert("RGB"))
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(folder / "cmyk.jpg", quality=95)
    with Image.open(folder / "cmyk.jpg") as im:
        c = np.asarray(im).astype(float)
    expected["cmyk.jpg"] = (255 - c[..., :3]) * (255 - c[..., 3:]) / 255  # float: compared within 1
    grey = rgb[..., 0]
    Image.fromarray(np.dstack([grey, rgb[..., 2]])).save(folder / "grey_alpha.png")
    Image.fromarray(grey).save(folder / "grey.png")
    expected["grey_alpha.png"] = expected["grey.png"] = np.repeat(grey[..., None], 3, axis=2)
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(folder / "rgba.png")
    expected["rgba.png"] = rgb
    Image.fromarray(grey > 100).save(folder / "bilevel.png")
    expected["bilevel.png"] = np.repeat(np.where(grey > 100, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    return expected


def rotated_clip(path: Path, frames: int = 6, hw: tuple[int, int] = (48, 80)) -> Path:
    """An H.264 mp4 whose track header carries the display matrix a phone held upright writes (shown turned
    90 degrees clockwise; PyAV reads rotation -90): the stored frames are ``hw``, the shown ones hw reversed."""
    import struct

    from ssseg.data.synthetic import write_synthetic_clip

    write_synthetic_clip(path, frames, hw)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    # version 0: version/flags, created, modified, track id, reserved, duration, reserved[2], layer, group,
    # volume, reserved, then the 3x3 matrix (16.16 fixed point, the last column 2.30)
    matrix = at + 4 + 4 + 5 * 4 + 8 + 4 * 2
    assert data[at + 4] == 0 and struct.unpack(">i", data[matrix:matrix + 4])[0] == 1 << 16
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    return path


def exif_jpeg(path: Path, orientation: int = 6, hw: tuple[int, int] = (48, 80)) -> Path:
    """A JPEG stored ``hw`` with EXIF orientation ``orientation`` (6: shown turned 90 degrees clockwise)."""
    from PIL import Image

    from ssseg.data.synthetic import render_scene

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(render_scene(3, "val", 0, hw)[0]).save(path, quality=95, exif=exif)
    return path


def cut_short_mkv(path: Path, frames: int = 40) -> Path:
    """A Matroska file cut at half its size, as a copy that stopped early leaves it: the container still
    declares the full duration (4.0 s at 10 fps), the last frame that decodes is near 2.0 s."""
    from ssseg.data.synthetic import write_synthetic_clip

    write_synthetic_clip(path, frames, (48, 80))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def gop_damaged_clip(path: Path, frames: int = 60, gop: int = 5, zero_bytes: int = 1500,
                     hw: tuple[int, int] = (48, 80)) -> Path:
    """An H.264 MPEG-TS clip with a key frame every ``gop`` frames and ``zero_bytes`` zeroed mid-file: the
    demuxer drops the damaged packets and the decoder hands one of them out late."""
    import av

    from ssseg.data.synthetic import render_scene

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "threads": "1"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render_scene(0, "test", i % 16, hw)[0], format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    clean = path.read_bytes()
    data = bytearray(clean)
    data[len(data) // 2: len(data) // 2 + zero_bytes] = bytes(zero_bytes)
    path.write_bytes(bytes(data))
    return path


def timelapse_clip(path: Path, frames: int = 30, hw: tuple[int, int] = (48, 80)) -> Path:
    """A dash cam's time-lapse: a container declaring 30 fps whose frames come 100, 200 or 300 ms apart, on
    the 30 fps grid but never one period apart; nothing is missing from it."""
    from fractions import Fraction

    import av

    from ssseg.data.synthetic import render_scene

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render_scene(0, "test", i % 16, hw)[0], format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += (100, 100, 200, 100, 300)[i % 5]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
