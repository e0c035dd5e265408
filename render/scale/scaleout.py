"""A batch over many devices: `Engine.run(..., gpus=N)` (local worker processes, render.scale.workers) or
`Engine.run(..., ray=ADDRESS)` (a Ray cluster, render.scale.raycluster). Each device renders whole videos of its own:
no communication but the shared work directory and embedding cache (docs/scaling.md compares this with context
parallel, which splits one video)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from render.core.errors import UsageError
from render.core.items import Item, Outcome, Report
from render.core.settings import Placement, Settings
from render.run.local import LocalEngine
from render.run.spec import RunRequest


def run_scaled(engine: LocalEngine, req: RunRequest, *, gpus: int | None, ray: str | None) -> Report:
    if engine.parallel is not None:
        raise UsageError(
            "--parallel splits one video over torchrun's ranks; --gpus and --ray give each device videos of its "
            "own: use one or the other"
        )
    if gpus is not None and ray is not None:
        raise UsageError("--gpus runs local worker processes, --ray a Ray cluster: use one or the other")
    if ray is not None:
        from render.scale.raycluster import run_on_ray

        return run_on_ray(engine, req, ray)
    assert gpus is not None
    if gpus < 1:
        raise UsageError(f"--gpus must be at least 1, got {gpus}")
    from render.scale.workers import run_workers

    return run_workers(engine, req, gpus)


def on_device(settings: Settings, device: str) -> Settings:
    """The settings with every stage placed on `device` (the dtypes kept)."""

    def put(p: Placement) -> Placement:
        return replace(p, device=device)

    return replace(
        settings,
        encode=replace(settings.encode, placement=put(settings.encode.placement)),
        render=replace(settings.render, placement=put(settings.render.placement)),
        decode=replace(settings.decode, placement=put(settings.decode.placement)),
    )


@dataclass
class Merged:
    """Outcomes gathered from workers, put back in the batch's item order (and seed order within an item)."""

    items: list[Item]
    report: Report = field(default_factory=Report)
    _keyed: list[tuple[int, int, Outcome]] = field(default_factory=list)

    def add(self, index: int, outcomes: list[Outcome]) -> None:
        """Outcomes of items[index] (made elsewhere: their `item` is replaced by the batch's own)."""
        for n, out in enumerate(outcomes):
            out.item = self.items[index]
            self._keyed.append((index, n, out))

    def fail(self, index: int, message: str) -> None:
        out = Outcome(self.items[index], prompt=self.items[index].prompt)
        out.fail(message)
        self.add(index, [out])

    def outcomes(self) -> list[Outcome]:
        """Every outcome so far, in the order added."""
        return [out for _, _, out in self._keyed]

    def done(self) -> Report:
        self.report.outcomes = [out for _, _, out in sorted(self._keyed, key=lambda k: k[:2])]
        return self.report
