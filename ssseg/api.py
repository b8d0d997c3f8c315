"""The Python API the CLI stands on: each command's work on a config object, as the CLI builds it from its
options (ssseg.config, ssseg.train.config). A command that writes a report writes it here, after the job,
so the jobs (ssseg.label, ssseg.train) never call up into ssseg.report."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ssseg.config import LabelConfig

Say = Callable[[str], None]


def label(cfg: LabelConfig, say: Say = print) -> int:
    """``ssseg label``: returns its exit status (0, or 3 with damaged stretches skipped); raises SsegError for a
    failed source or a bad input, Interrupted after Ctrl-C. With ``cfg.report`` the job's report.html is written
    whatever the ending, from what is on disk."""
    from ssseg.label import run_label

    try:
        return run_label(cfg, say)
    finally:
        if cfg.report:
            label_report(Path(cfg.out), say)


def label_report(out: Path, say: Say = print) -> None:
    """OUT/report.html of a label job that got as far as a summary; a report that fails is said, not raised:
    the labels are complete either way."""
    from ssseg.errors import SsegError
    from ssseg.report.write import write_report

    if not any(out.glob("summary*.json")):  # the job never started: nothing to report
        return
    try:
        write_report(out, say=say)
    except SsegError as e:
        say(f"report not written: {e}")
