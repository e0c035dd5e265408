"""`hyv run --rewrite`: rewrite the batch's prompts before encoding (composes the rewrite library)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def rewrite_items(
    items: list[Any],
    mode: str,
    endpoint: str | None,
    api_model: str | None,
    model_dir: str | None,
    workdir: Path,
    quiet: bool,
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    from render.errors import UsageError

    raise UsageError("--rewrite is not wired yet")
