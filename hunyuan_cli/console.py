"""The rich progress display (stderr): one line for the batch (stage, items done / cached / failed) and a bar
for the steps of the current item. Quiet with --json or when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["Console", "RichProgress", "announce_model", "err_console"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class RichProgress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []
        self._p: Any = None
        self._batch: Any = None
        self._steps: Any = None
        self._stage = ""

    def __enter__(self) -> RichProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            )
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def _describe(self) -> str:
        c = self.counts
        return (
            f"[bold]{self._stage}[/] done {c['done']} · cached {c['cached']} · "
            f"skipped {c['skipped']} · failed {c['failed']}"
        )

    def stage(self, name: str, total: int) -> None:
        self._stage = name
        self.counts = Counter()
        if self._p is None:
            return
        if self._batch is not None:
            self._p.remove_task(self._batch)
        self._batch = self._p.add_task(self._describe(), total=total)

    def item(self, status: str, label: str) -> None:
        self.counts[status] += 1
        if self._p is not None and self._batch is not None:
            self._p.update(self._batch, advance=1, description=self._describe())
            if self._steps is not None:
                self._p.remove_task(self._steps)
                self._steps = None

    def steps(self, total: int, label: str) -> None:
        if self._p is None:
            return
        if self._steps is not None:
            self._p.remove_task(self._steps)
        short = escape(label if len(label) <= 40 else label[:39] + "…")
        self._steps = self._p.add_task(f"  {short}", total=total)

    def step(self, n: int = 1) -> None:
        if self._p is not None and self._steps is not None:
            self._p.advance(self._steps, n)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def announce_model(model: Any, prompts: list[str] | None = None) -> None:
    """Say once that the bundled demo model is in use; warn about prompts it cannot draw (outside its world)."""
    if not model.bundled:
        return
    err_console.print(
        "[dim]using the bundled demo model (simple shapes only); point hyv at HunyuanVideo weights with "
        "--model DIR or HYV_MODEL[/]",
        markup=True,
    )
    from render.demo.world import parse_caption

    foreign = [p for p in prompts or [] if parse_caption(p) is None]
    if foreign:
        err_console.print(
            f'[yellow]warning:[/] the demo model only draws captions like "a red circle moves to the right on a '
            f'black background" (colours red, green, blue, yellow, white, black; circle, square, triangle; moves '
            f"left/right/up/down or stays still); {len(foreign)} prompt(s) are not, e.g. {escape(repr(foreign[0]))}",
            markup=True,
        )
