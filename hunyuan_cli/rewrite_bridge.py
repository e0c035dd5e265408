"""`hyv run --rewrite MODE`: rewrite the batch's prompts before encoding, through the one composition of the rewrite
library and render's items (serve.rewriting, which `hyv serve` uses too); this module only says what it does and
turns failed rewrites into failed lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hunyuan_cli.console import err_console
from hunyuan_cli.options import Rewrite


def rewrite_items(
    items: list[Any], request: Rewrite, workdir: Path, quiet: bool
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(items with rewritten prompts, line errors for failed rewrites, a summary for the JSON output)."""
    from render.files.batch import LineError
    from serve.rewriting import rewrite_items as rewrite

    if not quiet:
        err_console.print(f"[dim]rewriting {len(items)} prompt(s) in {request.mode} mode…[/]", markup=True)
    asked = {"mode": request.mode, "endpoint": request.endpoint, "api_model": request.api_model}
    kept, failed, summary = rewrite(items, {**asked, "model_dir": request.model_dir}, workdir)
    return kept, [LineError(it.source, message) for it, message in failed], summary
