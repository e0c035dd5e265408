"""What the ways of scaling out share: a worker's settings placed on its device, and the outcomes gathered from
workers put back in the batch's order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from render.core.items import Item, Outcome, Report
from render.core.settings import Placement, Settings


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
