"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes. Every figure is sized by what it
shows, never by the job's length: the data arrive already binned."""

from __future__ import annotations

import io

import numpy as np

DPI = 96
DAMAGE_COLOUR = "#d62728"
PICK_COLOUR = "#ff7f0e"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})  # 3x faster, a bit larger
    plt.close(fig)
    return buf.getvalue()


def rgb(colour) -> tuple[float, float, float]:
    return tuple(c / 255 for c in colour)


def class_colours(names: list[str]) -> list[list[int]]:
    """The colours of a known class set with these names (CamVid, Cityscapes, synthetic), else tab20's."""
    from ssseg.classes import PRESETS

    for preset in PRESETS.values():
        if tuple(preset.names) == tuple(names):
            return [list(c) for c in preset.colors]
    table = _plt().get_cmap("tab20")(np.arange(len(names)) % 20)[:, :3]
    return [[int(255 * v) for v in c] for c in table]


def coverage_overview(rows: list[dict], unit: str, columns: int = 480) -> bytes:
    """One row per source: mean confident coverage along the source (colour), damaged stretches in red.
    ``rows``: {name, series (t0, t1, mean), damage [(t0, t1)], length}; ``unit`` names the x axis."""
    plt = _plt()
    span = max((r["length"] for r in rows), default=1.0) or 1.0
    grid = np.full((len(rows), columns), np.nan)
    for y, r in enumerate(rows):
        series = r["series"]
        for b, after in zip(series, series[1:] + [None]):  # a bin reaches to the next one: no gaps between bins
            a = int(b["t0"] / span * (columns - 1))
            z = max(a, int(after["t0"] / span * (columns - 1)) - 1 if after else int(b["t1"] / span * (columns - 1)))
            grid[y, a:z + 1] = 100 * b["mean"]
    height = min(1.6 + 0.22 * len(rows), 14.0)
    fig, ax = plt.subplots(figsize=(10, height), dpi=DPI)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#f0f0f0")
    im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=100, interpolation="nearest",
                   extent=(0, span, len(rows) - 0.5, -0.5))
    for y, r in enumerate(rows):
        for t0, t1 in r["damage"]:
            ax.plot([t0, max(t1, t0 + span / columns)], [y, y], color=DAMAGE_COLOUR, lw=3, solid_capstyle="butt")
    if len(rows) <= 40:
        ax.set_yticks(range(len(rows)), [r["name"] for r in rows], fontsize=7)
    else:
        ax.set_ylabel(f"{len(rows)} sources")
        ax.set_yticks([])
    ax.set_xlabel(unit)
    fig.colorbar(im, ax=ax, label="confident pixels (%)", fraction=0.03, pad=0.01)
    ax.set_title("confident coverage along each source (red: damaged or skipped)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def source_timeline(series: list[dict], damage: list[dict], picks: list[dict], threshold_note: str) -> bytes:
    """Coverage along one source by frame number: mean per bin, its minimum shaded, damage in red, the frames
    picked to label next marked (the page explains the marks once; a legend and tight_layout per figure would
    double a large job's report time)."""
    plt = _plt()
    fig = plt.figure(figsize=(10, 1.8), dpi=DPI)
    ax = fig.add_axes((0.07, 0.26, 0.91, 0.62))
    x = [b["index"] for b in series]
    ax.fill_between(x, [100 * b["min"] for b in series], [100 * b["mean"] for b in series], step="post",
                    color="#1f77b4", alpha=0.25, lw=0)
    ax.step(x, [100 * b["mean"] for b in series], where="post", color="#1f77b4", lw=1.2)
    for d in damage:
        ax.axvspan(d["first"] - 0.5, d["last"] + 0.5, color=DAMAGE_COLOUR, alpha=0.35, lw=0)
    if picks:
        ax.plot([p["index"] for p in picks], [100 * p["coverage"] for p in picks], "v", color=PICK_COLOUR, ms=7)
    ax.set_ylim(0, 100)
    ax.set_xlim(min(x, default=0), max(series[-1]["index"] + series[-1]["frames"] if series else 1, 1))
    ax.set_xlabel("frame number", fontsize=8, labelpad=1)
    ax.set_ylabel("confident %", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(threshold_note, fontsize=8, loc="left")
    return _png(fig)


def class_shares(names: list[str], counts: list[float], colours: list, title: str, xlabel: str,
                 fractions: bool = False) -> bytes:
    """Horizontal bars in the class colours: each class's share of ``counts``, or with ``fractions`` the values
    themselves (0..1 each, e.g. the share of each class's pixels a gate passes)."""
    plt = _plt()
    total = 1.0 if fractions else float(sum(counts)) or 1.0
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.28 * len(names)), dpi=DPI)
    y = np.arange(len(names))
    shares = [100 * c / total for c in counts]
    ax.barh(y, shares, color=[rgb(c) for c in colours], edgecolor="#333", lw=0.4)
    for yi, s in zip(y, shares):
        ax.text(s, yi, f" {s:.1f}", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max(shares + [1]) * 1.15)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def training_curves(stages: list[dict]) -> bytes:
    """Per stage: training loss by epoch (left axis) and the validation score (right axis)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), dpi=DPI, squeeze=False)
    for ax, s in zip(axes[0], stages):
        ax.plot(s["epochs"], s["loss"], color="#1f77b4", lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss", color="#1f77b4")
        ax.grid(alpha=0.3)
        ax.set_title(s["title"], fontsize=9)
        points = [(e, v) for e, v in zip(s["epochs"], s["score"]) if v is not None]
        if points:
            tw = ax.twinx()
            tw.plot(*zip(*[(e, 100 * v) for e, v in points]), "o-", color="#2ca02c", ms=3, lw=1)
            tw.set_ylabel(f"val {s['score_name']} (%)", color="#2ca02c")
    fig.tight_layout()
    return _png(fig)


def grouped_bars(names: list[str], groups: dict[str, list[float | None]], ylabel: str, title: str) -> bytes:
    """One bar per class and group (e.g. per-class IoU of stage 1 and the final segmenter)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) * max(1, len(groups))), 3.4), dpi=DPI)
    x = np.arange(len(names))
    width = 0.8 / max(1, len(groups))
    for k, (label, values) in enumerate(groups.items()):
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, [100 * (v or 0) for v in values], width, label=label)
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)
