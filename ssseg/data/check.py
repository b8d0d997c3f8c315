"""``ssseg data check``: decode every image and label of each split, report counts and class histograms."""

from __future__ import annotations

import numpy as np

from ssseg.data import open_dataset
from ssseg.data.base import class_histogram
from ssseg.errors import DataError


def check_dataset(spec: str, splits: list[str], skip_bad: bool = False) -> dict:
    report: dict = {"spec": spec, "splits": {}}
    for split in splits:
        try:
            ds = open_dataset(spec, split)
        except DataError as e:
            if split != "train" and ("not found" in str(e) or f"no {split} split" in str(e)):
                report["splits"][split] = {"missing": str(e)}
                continue
            raise
        report["classes"] = list(ds.classes.names)
        hist = np.zeros(ds.classes.num_classes, np.int64)
        bad, sizes, ignored = [], {}, 0
        for i in range(len(ds)):
            try:
                image, label = ds.load(i)
            except DataError as e:
                if not skip_bad:
                    raise
                bad.append(str(e))
                continue
            hw = f"{image.shape[0]}x{image.shape[1]}"
            sizes[hw] = sizes.get(hw, 0) + 1
            hist += class_histogram([label], ds.classes.num_classes)
            ignored += int((label == 255).sum())
        report["splits"][split] = {"images": len(ds) - len(bad), "bad": bad, "sizes": sizes,
                                   "pixels": dict(zip(ds.classes.names, hist.tolist())), "ignored_pixels": ignored}
    return report


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    missing = {k: v for k, v in report["splits"].items() if "missing" in v}
    for split, info in missing.items():
        console.print(f"{split}: not present ({info['missing']})")
    splits = [k for k, v in report["splits"].items() if "missing" not in v]
    table = Table(title=f"{report['spec']}: share of labeled pixels per class")
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    for name in report.get("classes", []):
        row = []
        for s in splits:
            total = sum(report["splits"][s]["pixels"].values()) or 1
            row.append(f"{100 * report['splits'][s]['pixels'][name] / total:.2f}%")
        table.add_row(name, *row)
    table.add_section()
    table.add_row("images", *[str(report["splits"][s]["images"]) for s in splits])
    table.add_row("sizes (HxW)",
                  *[", ".join(f"{k} ({v})" for k, v in report["splits"][s]["sizes"].items()) for s in splits])
    table.add_row("bad files", *[str(len(report["splits"][s]["bad"])) for s in splits])
    console.print(table)
    for s in splits:
        for line in report["splits"][s]["bad"][:20]:
            console.print(f"[red]bad[/red] {line}", markup=True, highlight=False)
