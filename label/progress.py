"""The label job's console: a rich progress bar per source and overall on a terminal, else a line per source."""

from __future__ import annotations

from typing import Callable

from ssseg.label.records import SourceState


class Progress:
    """A rich progress bar per source and overall (frames/s, ETA) on a terminal; elsewhere one line per
    finished source."""

    def __init__(self, say: Callable[[str], None], live: bool):
        self.say = say
        self.bar = None
        self.tasks: dict[str, int] = {}
        if live:
            from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class Speed(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:.1f} frames/s" if task.speed else "")

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Speed(),
                                    TimeRemainingColumn(), transient=False)
            self.overall = self.bar.add_task("all", total=None)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def start(self, state: SourceState, total: int | None) -> None:
        if self.bar is not None:
            self.tasks[state.source.key] = self.bar.add_task(state.source.key, total=total)

    def advance(self, state: SourceState) -> None:
        if self.bar is None:
            return
        for task in (self.tasks.get(state.source.key), self.overall):
            if task is not None:
                self.bar.advance(task)

    def end(self, state: SourceState, result: dict) -> None:
        task = self.tasks.pop(state.source.key, None)
        if task is not None:
            self.bar.remove_task(task)
        cov = result["totals"]["coverage"]
        skipped = f", {result['frames_skipped']} damaged frame(s) skipped" if result.get("frames_skipped") else ""
        status = f"done{skipped}" if result["complete"] else ("FAILED: " + "; ".join(
            str(e.get("source") or f"frame {e['name']}: {e['error']}") for e in result["errors"][:3])
            if result["errors"] else "stopped")
        self.say(f"{state.source.key}: {result['frames_written']}/{result['frames_sampled']} frames written, "
                 f"coverage {'-' if cov is None else f'{100 * cov:.1f}%'}, {status}")
