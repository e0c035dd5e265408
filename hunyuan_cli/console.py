"""The console hyv writes messages to (stderr), and its announcements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["Console", "announce_model", "err_console", "remember_notice"]

DEMO_NOTICE = "demo-model"

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def announce_model(model: Any, prompts: list[str] | None = None, *, workdir: Path | None = None,
                   quiet: bool = False) -> bool:
    """Say that the bundled demo model is in use, once per work directory (`workdir`; None: every time) and never
    when `quiet` (-q, --json); warn about prompts it cannot draw (outside its world). Returns whether it said so:
    the caller marks the work directory (`remember_notice`) once the command is done."""
    if not model.bundled:
        return False
    from render.files.workdir import Workdir

    said = not quiet and (workdir is None or not Workdir(workdir).noticed(DEMO_NOTICE))
    if said:
        err_console.print(
            "[dim]using the bundled demo model (simple shapes only); point hyv at HunyuanVideo weights with "
            "--model DIR or HYV_MODEL (said once per work directory)[/]",
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
    return said


def remember_notice(workdir: Path) -> None:
    """The demo model's notice was given for this work directory (if the command made it)."""
    from render.files.workdir import Workdir

    Workdir(workdir).mark_noticed(DEMO_NOTICE)
