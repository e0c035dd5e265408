"""Progress across processes: workers turn their progress calls into events, the parent replays them.

Used by the local worker processes (`render.scale.workers`) and the Ray actors (`render.scale.raycluster`). The parent's
display shows one stage at a time (a stage's total grows as more workers report it) and every item as it ends;
per-step bars stay in the workers (several items are in flight at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from render.core.progress import Progress

Event = tuple[Any, ...]


class EventProgress:
    """A Progress that passes every call on as an event: ("stage", name, total), ("item", status, label),
    ("warn", message). Step bars are dropped."""

    def __init__(self, send: Callable[[Event], None]) -> None:
        self.send = send
        self.warnings: list[str] = []

    def stage(self, name: str, total: int) -> None:
        self.send(("stage", name, total))

    def item(self, status: str, label: str) -> None:
        self.send(("item", status, label))

    def steps(self, total: int, label: str) -> None:
        pass

    def step(self, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.send(("warn", message))


class Collector:
    """Events kept in a list, for a worker that returns them with its result (a Ray actor call)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.progress = EventProgress(self.events.append)


class Replay:
    """Replays workers' events on the parent's Progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stage = ""
        self.totals: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        kind, *rest = event
        if kind == "stage":
            name, total = rest
            self.totals[name] = self.totals.get(name, 0) + int(total)
            if name != self.stage:  # the first worker to reach a stage opens it; later ones add to its total
                self.stage = name
                self.progress.stage(name, self.totals[name])
        elif kind == "item":
            self.progress.item(*rest)
        elif kind == "warn":
            self.progress.warn(rest[0])
