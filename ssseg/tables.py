"""The tables ``ssseg eval`` and ``ssseg demo`` print."""

from __future__ import annotations


def print_gate(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    auroc = "-" if result["auroc"] is None else f"{result['auroc']:.3f}"
    ece = "-" if result["ece"] is None else f"{100 * result['ece']:.1f}%"
    console.print(f"{result['data']} / {result['split']} ({result['images']} images): segmenter mIoU "
                  f"{100 * result['segmenter_miou']:.1f}; confidence vs correctness AUROC {auroc}, ECE {ece}",
                  highlight=False)
    table = Table(title=f"{result.get('primary', 'confidence')} gate (the paper's Table 3)")
    for col in ("T", "kept-pixel mIoU %", "class semi ratio %", "selected pixels %"):
        table.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for g in result["gates"]:
        table.add_row(f"{g['threshold']:g}", fmt(g["kept_miou"]), fmt(g["class_semi_ratio"]), fmt(g["selected_share"]))
    console.print(table)
    per_class = Table(title="per class: IoU % / semi ratio % (the paper's Table 4)")
    per_class.add_column("class")
    for g in result["gates"]:
        per_class.add_column(f"T={g['threshold']:g}", justify="right")
    for name in result["gates"][0]["per_class"]:
        per_class.add_row(name, *(f"{fmt(g['per_class'][name]['iou'])} / {fmt(g['per_class'][name]['semi_ratio'])}"
                                  for g in result["gates"]))
    console.print(per_class)
    rel = Table(title="reliability (10 bins)")
    for col in ("confidence", "pixels %", "mean confidence", "accuracy"):
        rel.add_column(col, justify="right")
    total = max(sum(r["pixels"] for r in result["reliability"]), 1)
    for r in result["reliability"]:
        rel.add_row(f"{r['bin'][0]:.1f}-{r['bin'][1]:.1f}", f"{100 * r['pixels'] / total:.1f}",
                    fmt(r["mean_confidence"]), fmt(r["accuracy"]))
    console.print(rel)
    print_sources(result, console)


def print_sources(result: dict, console) -> None:
    """Every confidence source on the same pixels, and per-class thresholds for a precision target."""
    from rich.table import Table

    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    sources = result.get("sources", {})
    if not sources:
        return
    table = Table(title="confidence sources on the same pixels: coverage % at a kept-pixel accuracy, and the class "
                        "kept least at 97 %")
    for col in ("source", "AUROC", "AURC %", "95 %", "97 %", "99 %", "lowest class at 97 %"):
        table.add_column(col, justify="right")
    for name, src in sources.items():
        at = {round(100 * a["accuracy"]): a for a in src["at_accuracy"]}
        low = at.get(97, {})
        table.add_row(name, "-" if src["auroc"] is None else f"{src['auroc']:.3f}", fmt(src["aurc"]),
                      *(fmt(at[k]["coverage"]) if k in at else "-" for k in (95, 97, 99)),
                      f"{low['lowest_class']} {fmt(low['lowest_share'])}" if low.get("lowest_class") else "-")
    console.print(table)
    for name, t in result.get("target_precision", {}).items():
        lost = t["unreachable"] + t["unmeasured"]
        console.print(f"{name}: per-class thresholds for precision {t['precision']:g} keep "
                      f"{fmt(t['total_coverage'])} % of pixels ({fmt(t['kept_pixel_acc'])} % right)"
                      + (f"; never kept: {', '.join(lost)}" if lost else ""), highlight=False)


def print_scores(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=100)
    console.print(f"{result['data']} / {result['split']} ({result['images']} images)", highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name, iou in result["per_class_iou"].items():
        table.add_row(name, "-" if iou is None else f"{100 * iou:.1f}")
    table.add_section()
    table.add_row("mIoU", f"{100 * result['miou']:.1f}")
    table.add_row("pixel accuracy", f"{100 * result['pixel_acc']:.1f}")
    console.print(table)
