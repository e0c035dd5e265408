"""Progress on stderr, for people and for logs.

- On a terminal: rich bars (the batch: stage, items done / cached / skipped / failed; the steps of the item).
- Elsewhere (nohup, Slurm, CI, `2> log`): plain lines, flushed as they happen: one when a stage starts, one per
  item done, and a step line every ~10% of a long render with the time left for the batch (not the item).
- Both say how long a long stage will take once its first step is timed, for the batch (never "0:00" while
  steps are left: "under a second"). With --json or --quiet, only warnings.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from rich.markup import escape

from hunyuan_cli.common import quiet_libraries
from hunyuan_cli.console import err_console

LONG = 60.0  # seconds: a stage expected to take longer than this says so


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _left(seconds: float) -> str:
    """Time still to go: "0:42", or "under a second" (never "0:00" while something is left)."""
    return "under a second" if 0 < seconds < 0.5 else _clock(seconds)


class _Base:
    """Counting and the estimate shared by both displays. Time is measured over the steps of the stage (not the
    loading before them), and what is left is the batch's: this item's remaining steps and the items after it."""

    long = LONG  # a stage whose estimate exceeds this many seconds says so

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.stage_name = ""
        self.total = 0
        self.step_total = 0
        self.step_done = 0
        self.estimated = False
        self.stepped = 0.0  # seconds spent in the stage's steps so far
        self.stepped_n = 0  # steps done in the stage so far
        self.tick = 0.0  # when the last step (or this item's steps) began
        self.started: float | None = None  # when the stage's first steps began

    def stage(self, name: str, total: int) -> None:
        if not self.stage_name:  # real work starts: the libraries are about to load, and to talk
            quiet_libraries()
        self.stage_name, self.total, self.counts, self.estimated = name, total, Counter(), False
        self.stepped, self.stepped_n, self.started = 0.0, 0, None
        self.on_stage()

    def item(self, status: str, label: str) -> None:
        self.counts[status] += 1
        self.on_item(status, label)

    def steps(self, total: int, label: str) -> None:
        self.step_total, self.step_done, self.tick = total, 0, time.perf_counter()
        self.started = self.started if self.started is not None else self.tick
        self.on_steps(label)

    def step(self, n: int = 1) -> None:
        now = time.perf_counter()
        self.step_done += n
        self.stepped += now - self.tick
        self.stepped_n += n
        self.tick = now
        eta = self.left()
        if not self.estimated and self.step_total > 1 and eta > self.long:
            self.estimated = True
            self.say(
                f"{self.stage_name}: {self.total} item(s) x {self.step_total} steps at "
                f"{self.stepped / self.stepped_n:.2g} s a step: about {_left(eta)} to go"
            )
        self.on_step()

    def item_number(self) -> int:
        """The number of the item whose steps run now (1-based)."""
        return min(self.total, sum(self.counts.values()) + 1)

    def steps_left(self) -> int:
        """The batch's steps still to run in this stage: this item's, and those of the items after it."""
        return (self.step_total - self.step_done) + max(0, self.total - self.item_number()) * self.step_total

    def left(self) -> float:
        """Seconds the stage's remaining steps take at the measured pace (0 before the first step is timed)."""
        return self.stepped / self.stepped_n * self.steps_left() if self.stepped_n else 0.0

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True)

    def say(self, line: str) -> None:
        err_console.print(escape(line), markup=True)

    def on_stage(self) -> None: ...
    def on_item(self, status: str, label: str) -> None: ...
    def on_steps(self, label: str) -> None: ...
    def on_step(self) -> None: ...

    def __enter__(self) -> _Base:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class QuietProgress(_Base):
    """--json or --quiet: warnings only."""

    def say(self, line: str) -> None:
        pass


class LogProgress(_Base):
    """Plain lines for a log file, each flushed as it happens; every stage of steps gets its estimate."""

    long = 0.0

    def say(self, line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    def on_stage(self) -> None:
        self.say(f"{self.stage_name}: {self.total} item(s)")

    def on_item(self, status: str, label: str) -> None:
        n = sum(self.counts.values())
        short = label if len(label) <= 70 else label[:69] + "…"
        self.say(f"{self.stage_name} {n}/{self.total} {status}: {short}")

    def on_step(self) -> None:
        every = max(1, self.step_total // 10)
        if self.step_total >= 10 and (self.step_done % every == 0 or self.step_done == self.step_total):
            took = time.perf_counter() - (self.started or self.tick)
            share = 100 * self.stepped_n // max(1, self.stepped_n + self.steps_left())
            self.say(
                f"  step {self.step_done}/{self.step_total} of item {self.item_number()}/{self.total} "
                f"({share}% of the batch), {_clock(took)} elapsed, ~{_left(self.left())} left for the batch"
            )


class RichProgress(_Base):
    """Bars on a terminal: the batch and the steps of the current item."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._batch: Any = None
        self._steps: Any = None

    def __enter__(self) -> RichProgress:
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def _describe(self) -> str:
        c = self.counts
        return (
            f"[bold]{escape(self.stage_name)}[/] done {c['done']} · cached {c['cached']} · "
            f"skipped {c['skipped']} · failed {c['failed']}"
        )

    def on_stage(self) -> None:
        if self._batch is not None:
            self._p.remove_task(self._batch)
        self._batch = self._p.add_task(self._describe(), total=self.total)

    def on_item(self, status: str, label: str) -> None:
        self._p.update(self._batch, advance=1, description=self._describe())
        if self._steps is not None:
            self._p.remove_task(self._steps)
            self._steps = None

    def on_steps(self, label: str) -> None:
        if self._steps is not None:
            self._p.remove_task(self._steps)
        short = escape(label if len(label) <= 40 else label[:39] + "…")
        self._steps = self._p.add_task(f"  {short}", total=self.step_total)

    def on_step(self) -> None:
        if self._steps is not None:
            self._p.advance(self._steps, 1)


def make_progress(*, quiet: bool) -> _Base:
    """Bars on a terminal, plain lines elsewhere, warnings only when `quiet` (--json, --quiet)."""
    if quiet:
        return QuietProgress()
    return RichProgress() if sys.stderr.isatty() else LogProgress()
