"""Which report a folder gets, and where it is written."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ssseg.errors import ReportError

REPORT_NAME = "report.html"


def write_report(target: Path, out: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """Write the report of the label job or run in ``target`` to ``out`` (default TARGET/report.html, with
    report.json beside it); returns the HTML's path."""
    from ssseg.report import label_job, page, run

    target = Path(target)
    if not target.is_dir():
        raise ReportError("no such folder", path=target, fix="pass the --out folder of ssseg label or ssseg train")
    t0 = time.perf_counter()
    html_path = Path(out) if out else target / REPORT_NAME
    json_name = html_path.with_suffix(".json").name
    if label_job.is_label_job(target):
        html, data = label_job.build(target, json_name, say)
    elif run.is_run(target):
        html, data = run.build(target, json_name)
    else:
        raise ReportError("is neither a label job (no job.json) nor a training run (no config.json)", path=target,
                          fix="pass the --out folder of ssseg label or ssseg train")
    html_path, json_path = page.write(html_path, html, data)
    say(f"report: {html_path} and {json_path.name} ({time.perf_counter() - t0:.1f} s)")
    return html_path
