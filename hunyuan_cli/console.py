"""The console hyv writes messages to (stderr), and its announcements."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["Console", "announce_model", "err_console"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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
