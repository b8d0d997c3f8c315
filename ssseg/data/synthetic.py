"""A procedural road-scene generator: the embedded default dataset of the demo and the tests.

Each image is a function of (seed, split, index) alone, so any sample can be regenerated in any
order, on any worker, at any size. Scenes have a perspective road with sidewalks, buildings with
windows, trees and grass, cars, and the thin and small classes (poles, signs, pedestrians) that
make confidence gating matter, under random lighting, texture and sensor noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ssseg.classes import SYNTHETIC
from ssseg.config import SynthConfig
from ssseg.data.base import SPLITS, Sample, SegDataset
from ssseg.errors import DataError

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, POLE, SIGN, PEDESTRIAN = range(9)
# the defaults of `ssseg data synth` (its options' fields), which the synthetic: dataset spec shares
DEFAULT_SIZE = SynthConfig.size
DEFAULT_COUNTS = {split: getattr(SynthConfig, split) for split in ("train", "val", "test")}


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid, bilinearly interpolated."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx).astype(np.float32)


class _Canvas:
    def __init__(self, h: int, w: int, rng: np.random.Generator):
        self.h, self.w, self.rng = h, w, rng
        self.img = np.zeros((h, w, 3), np.float32)
        self.lbl = np.full((h, w), SKY, np.uint8)

    def rect(self, y0: float, y1: float, x0: float, x1: float, color, label: int | None, texture: float = 8.0) -> None:
        ya, yb = max(0, int(round(y0))), min(self.h, int(round(y1)))
        xa, xb = max(0, int(round(x0))), min(self.w, int(round(x1)))
        if ya >= yb or xa >= xb:
            return
        tex = self.rng.normal(0, texture, (yb - ya, xb - xa, 1)).astype(np.float32)
        self.img[ya:yb, xa:xb] = np.asarray(color, np.float32) + tex
        if label is not None:
            self.lbl[ya:yb, xa:xb] = label

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, color, label: int, texture: float = 8.0) -> None:
        ya, yb = max(0, int(cy - ry)), min(self.h, int(np.ceil(cy + ry)) + 1)
        xa, xb = max(0, int(cx - rx)), min(self.w, int(np.ceil(cx + rx)) + 1)
        if ya >= yb or xa >= xb:
            return
        yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
        m = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0
        tex = self.rng.normal(0, texture, (yb - ya, xb - xa, 1)).astype(np.float32)
        region = self.img[ya:yb, xa:xb]
        region[m] = (np.asarray(color, np.float32) + tex)[m]
        self.lbl[ya:yb, xa:xb][m] = label


def render_scene(seed: int, split: str, index: int,
                 size: tuple[int, int] = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One (HxWx3 uint8 image, HxW uint8 label) pair, a pure function of its arguments."""
    h, w = size
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    c = _Canvas(h, w, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = h * rng.uniform(0.35, 0.5)
    vx = w * rng.uniform(0.35, 0.65)

    # Sky: vertical gradient with soft clouds.
    top, bottom = (np.array([rng.uniform(40, 90), rng.uniform(90, 140), rng.uniform(170, 230)]),
                   np.array([190.0, 205, 225]))
    t = np.clip(yy / max(horizon, 1), 0, 1)[..., None]
    c.img[:] = top * (1 - t) + bottom * t + 35 * np.clip(_smooth_noise(rng, h, w, max(8, w // 6)), 0, 1)[..., None]

    # Buildings along both sides, trees in some of the gaps.
    for side in (-1, 1):
        x = vx + side * w * rng.uniform(0.04, 0.1)
        while 0 <= x < w if side > 0 else x > 0:
            bw = w * rng.uniform(0.08, 0.25)
            x0, x1 = (x, x + bw) if side > 0 else (x - bw, x)
            if rng.random() < 0.25:
                trunk_x = (x0 + x1) / 2
                c.rect(horizon - h * 0.08, horizon + 2, trunk_x - 1, trunk_x + 1, (90, 60, 40), VEGETATION, 6)
                c.ellipse(horizon - h * rng.uniform(0.12, 0.22), trunk_x, h * rng.uniform(0.08, 0.14), bw * 0.6,
                          (rng.uniform(40, 80), rng.uniform(100, 150), rng.uniform(30, 60)), VEGETATION, 18)
            else:
                top_y = horizon - h * rng.uniform(0.12, 0.4) * (1 + 0.8 * abs(x - vx) / w)
                base = rng.uniform(80, 170)
                col = (base * rng.uniform(0.85, 1.15), base * rng.uniform(0.8, 1.0), base * rng.uniform(0.7, 1.0))
                c.rect(top_y, horizon + 2, x0, x1, col, BUILDING, 6)
                ya, yb, xa, xb = max(0, int(top_y)), int(horizon), max(0, int(x0)), min(w, int(x1))
                if yb > ya and xb > xa:
                    period = max(4, int(w * 0.03))
                    win = (((yy[ya:yb, xa:xb] - ya) % period < period * 0.5)
                           & ((xx[ya:yb, xa:xb] - xa) % period < period * 0.5))
                    c.img[ya:yb, xa:xb][win] *= rng.uniform(0.35, 0.6)
            x = x1 if side > 0 else x0

    # Ground: grass, then sidewalks and the road in perspective.
    ground = yy > horizon
    tg = np.clip((yy - horizon) / (h - horizon), 0, 1)
    road_half = w * rng.uniform(0.45, 0.8) * tg
    walk_half = road_half + w * rng.uniform(0.15, 0.35) * tg
    dist = np.abs(xx - vx)
    grass_col = np.array([rng.uniform(50, 90), rng.uniform(110, 150), rng.uniform(40, 70)], np.float32)
    c.img[ground] = grass_col + 20 * _smooth_noise(rng, h, w, 4)[ground][:, None]
    c.lbl[ground] = VEGETATION
    walk = ground & (dist < walk_half)
    c.img[walk] = (np.array([rng.uniform(150, 200)] * 3, np.float32) * [1.0, 0.95, 0.95]
                   + rng.normal(0, 6, (int(walk.sum()), 1)))
    c.lbl[walk] = SIDEWALK
    road = ground & (dist < road_half)
    road_grey = rng.uniform(60, 110)
    c.img[road] = (np.array([road_grey, road_grey * 0.95, road_grey * 1.02], np.float32)
                   + rng.normal(0, 5, (int(road.sum()), 1)))
    c.lbl[road] = ROAD
    marking = (road & (dist < np.maximum(0.6, w * 0.012 * tg))
               & ((np.maximum(yy - horizon, 0) ** 0.5 * 3).astype(int) % 2 == 0))
    c.img[marking] = (230, 230, 220)

    def depth_y() -> float:
        return horizon + (h - horizon) * rng.uniform(0.08, 1.0) ** 0.7

    # Poles with signs on the sidewalk edges.
    for _ in range(rng.integers(1, 5)):
        yb = depth_y()
        tb = (yb - horizon) / (h - horizon)
        side = rng.choice([-1, 1])
        px = vx + side * (w * 0.55 * tb + rng.uniform(0.1, 0.25) * w * tb)
        pw = max(1.0, w * 0.012 * tb)
        ph = h * 0.75 * tb + 4
        c.rect(yb - ph, yb, px - pw / 2, px + pw / 2, (rng.uniform(90, 140),) * 3, POLE, 4)
        if rng.random() < 0.7:
            s = max(2.0, w * 0.035 * tb)
            col = [(220, 200, 30), (200, 30, 30), (30, 60, 200)][rng.integers(3)]
            if rng.random() < 0.5:
                c.ellipse(yb - ph, px, s, s, col, SIGN, 10)
            else:
                c.rect(yb - ph - s, yb - ph + s, px - s, px + s, col, SIGN, 10)

    # Cars on the road and pedestrians on the sidewalks, far to near.
    objects = [("car", depth_y()) for _ in range(rng.integers(0, 5))]
    objects += [("ped", depth_y()) for _ in range(rng.integers(0, 4))]
    for kind, yb in sorted(objects, key=lambda o: o[1]):
        tb = (yb - horizon) / (h - horizon)
        if kind == "car":
            cw = w * 0.3 * tb + 3
            ch = cw * rng.uniform(0.45, 0.65)
            cx = vx + rng.uniform(-0.55, 0.55) * w * 0.6 * tb
            col = rng.uniform(20, 230, 3)
            c.rect(yb - ch, yb - ch * 0.15, cx - cw / 2, cx + cw / 2, col, CAR, 10)
            c.rect(yb - ch * 0.9, yb - ch * 0.55, cx - cw * 0.4, cx + cw * 0.4, col * 0.35 + 20, CAR, 5)
            for wx in (cx - cw * 0.3, cx + cw * 0.3):
                c.rect(yb - ch * 0.2, yb, wx - cw * 0.1, wx + cw * 0.1, (25, 25, 25), CAR, 3)
        else:
            ph = h * 0.4 * tb + 3
            side = rng.choice([-1, 1])
            cx = vx + side * (w * 0.55 * tb + rng.uniform(0.0, 0.2) * w * tb)
            col = rng.uniform(20, 230, 3)
            c.ellipse(yb - ph * 0.45, cx, ph * 0.38, ph * 0.14, col, PEDESTRIAN, 10)
            c.ellipse(yb - ph * 0.9, cx, ph * 0.1, ph * 0.08, (200, 160, 130), PEDESTRIAN, 6)

    # Lighting: global exposure, soft shadows, colour cast and sensor noise.
    light = rng.uniform(0.6, 1.25) * (1 + 0.25 * _smooth_noise(rng, h, w, max(8, w // 4)))[..., None]
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    img = c.img * light * cast + rng.normal(0, rng.uniform(2, 8), (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), c.lbl


def parse_synthetic_options(text: str) -> dict:
    """'size=96x128,train=64,val=16,test=16,seed=0' -> options dict."""
    from ssseg.config import parse_hw

    opts: dict = {"size": DEFAULT_SIZE, "seed": 0, **DEFAULT_COUNTS}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in opts:
            raise DataError(f"bad synthetic option {part!r}", fix="use synthetic:size=HxW,train=N,val=N,test=N,seed=S")
        try:
            opts[key] = parse_hw(value, "synthetic size") if key == "size" else int(value)
        except ValueError:
            raise DataError(f"synthetic option {key} needs an integer, got {value!r}") from None
    if min(opts["size"]) < 32:
        raise DataError(f"synthetic size {opts['size']} is too small", fix="use at least 32x32")
    return opts


class Synthetic(SegDataset):
    kind = "synthetic"

    def __init__(self, split: str, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, **counts: int):
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", fix=f"choose one of {', '.join(SPLITS)}")
        self.size, self.seed = tuple(size), seed
        n = counts.get(split, DEFAULT_COUNTS[split])
        super().__init__(None, split, SYNTHETIC, [Sample(f"{split}_{i:05d}") for i in range(n)], None)

    def _index(self, i: int) -> int:
        return int(self.samples[i].id.rsplit("_", 1)[1])

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return render_scene(self.seed, self.split, self._index(i), self.size)

    def load_image(self, i: int) -> np.ndarray:
        return self.load(i)[0]

    def load_label(self, i: int) -> np.ndarray:
        return self.load(i)[1]

    def check(self, i: int, decode_image: bool = True) -> np.ndarray:
        return self.load(i)[1]


def write_synthetic(out: Path, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                    counts: dict | None = None) -> dict[str, int]:
    """Write the generator's splits in the folder layout (out/{split}/images|labels + classes.json)."""
    from PIL import Image

    counts = {**DEFAULT_COUNTS, **(counts or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in counts.items():
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, lbl = render_scene(seed, split, i, size)
            stem = f"{split}_{i:05d}"
            Image.fromarray(img).save(out / split / "images" / f"{stem}.png")
            Image.fromarray(lbl).save(out / split / "labels" / f"{stem}.png")
    (out / "classes.json").write_text(json.dumps(SYNTHETIC.to_dict(), indent=2) + "\n")
    return counts


def write_synthetic_clip(path: Path, frames: int, size: tuple[int, int] = DEFAULT_SIZE, rate: int = 10, seed: int = 0,
                         split: str = "test", codec: str = "libx264", container: str | None = None) -> Path:
    """A video of synthetic scenes (one per frame, cycling through 16) for trying ``ssseg label``; needs PyAV."""
    import os

    import av

    path = Path(path)
    tmp = path.with_name(f".{os.getpid()}-{path.name}")  # keeps the extension, which picks the container
    with av.open(str(tmp), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render_scene(seed, split, i % 16, size)[0], format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return path
