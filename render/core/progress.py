"""The progress interface the stages report to. The CLI implements it with rich; the library default is silent."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None:
        """A stage starts with `total` items."""

    def item(self, status: str, label: str) -> None:
        """An item ended: status is "done", "cached", "skipped" (already there) or "failed"."""

    def steps(self, total: int, label: str) -> None:
        """A per-item step bar starts (denoising steps, decode chunks)."""

    def step(self, n: int = 1) -> None:
        """`n` steps of the current bar are done."""

    def warn(self, message: str) -> None:
        """A one-line warning for the user."""


class NullProgress:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def stage(self, name: str, total: int) -> None:
        pass

    def item(self, status: str, label: str) -> None:
        pass

    def steps(self, total: int, label: str) -> None:
        pass

    def step(self, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)
