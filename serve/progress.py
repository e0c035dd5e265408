"""Per-job, per-step progress from the engine's `render.core.progress.Progress` events.

One engine call runs the videos of several jobs stage-major; its events name items by label (the encode stage
by prompt, the render stage by the item's label, the decode stage by the video's file name, which starts with
the label's slug and the seed). Each event is matched to the first unfinished video of the batch it fits, in
batch order, which is the order the engine works in. The live display is all that depends on this matching:
a job's results come from the engine's report (`Outcome.item`), never from these events.

Every event is also where a running batch stops: when one of its jobs is cancelled or the server stops, the next
event raises `Interrupted` out of the engine call (finished artifacts are kept; the rest runs again later).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from render.core.naming import slug

if TYPE_CHECKING:
    from serve.store import Job, JobStore

# Share of a job's bar given to each stage (the DiT is where the time goes).
WEIGHTS = {"rewrite": 0.0, "encode": 0.05, "render": 0.9, "decode": 0.05}


class Interrupted(Exception):
    """A running batch is stopped: a job of it was cancelled, or the server is stopping."""


@dataclass
class Unit:
    """One video of a job in a batch."""

    job: Job
    prompt: str
    label: str
    seed: int
    encoded: bool = False
    render: str = "pending"  # pending | active | a final status
    step: int = 0
    steps: int = 0
    decoded: bool = False

    @property
    def video_prefix(self) -> str:
        return f"{slug(self.label)}-seed{self.seed}-"


class JobProgress:
    """`render.core.progress.Progress` for the job store."""

    def __init__(self, store: JobStore, units: list[Unit], should_stop: Callable[[], bool]) -> None:
        self.store = store
        self.units = units
        self.should_stop = should_stop
        self.stage_name = "queued"
        self.active: Unit | None = None
        self.jobs = list({id(u.job): u.job for u in units}.values())

    def _check(self) -> None:
        if self.should_stop():
            raise Interrupted

    def stage(self, name: str, total: int) -> None:
        self._check()
        self.stage_name, self.active = name, None
        self._publish(self.jobs)

    def item(self, status: str, label: str) -> None:
        unit: Unit | None = None
        if self.stage_name == "encode":
            for u in self.units:
                if u.prompt == label and not u.encoded:
                    u.encoded = True
                    unit = unit or u
        elif self.stage_name == "render":
            unit = self.active if self.active and self.active.label == label else self._first_to_render(label)
            if unit is not None:
                unit.render, unit.step = status, unit.steps if status != "failed" else unit.step
            self.active = None
        elif self.stage_name == "decode":
            unit = next((u for u in self.units if not u.decoded and label.startswith(u.video_prefix)), None)
            if unit is not None:
                unit.decoded = True
        self._publish([unit.job] if unit else [])
        self._check()

    def steps(self, total: int, label: str) -> None:
        self._check()
        if self.stage_name == "render":
            self.active = self._first_to_render(label)
            if self.active is not None:
                self.active.render, self.active.step, self.active.steps = "active", 0, total
                self._publish([self.active.job])

    def step(self, n: int = 1) -> None:
        if self.active is not None:
            self.active.step += n
            self._publish([self.active.job])
        self._check()

    def warn(self, message: str) -> None:
        named = [j for j in self.jobs if any(u.job is j and u.label[:50] in message for u in self.units)]
        for job in named or self.jobs:
            self.store.update(job, warnings=[*job.warnings, message])

    def _first_to_render(self, label: str) -> Unit | None:
        return next((u for u in self.units if u.render == "pending" and u.label == label), None)

    def _publish(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.store.update(job, persist=False, progress=self.of(job))

    def of(self, job: Job) -> dict[str, object]:
        """A job's progress: the stage, its videos rendered, the current video's step, and a fraction."""
        mine = [u for u in self.units if u.job is job]
        n = max(1, len(mine))
        rendered = sum(1 for u in mine if u.render not in ("pending", "active"))
        active = next((u for u in mine if u.render == "active"), None)
        partial = active.step / active.steps if active is not None and active.steps else 0.0
        fraction = (
            WEIGHTS["encode"] * sum(u.encoded for u in mine) / n
            + WEIGHTS["render"] * (rendered + partial) / n
            + WEIGHTS["decode"] * sum(u.decoded for u in mine) / n
        )
        return {
            "stage": self.stage_name,
            "videos": len(mine),
            "rendered": rendered,
            "decoded": sum(u.decoded for u in mine),
            "step": active.step if active else None,
            "steps": active.steps if active else None,
            "fraction": round(min(1.0, fraction), 4),
        }
