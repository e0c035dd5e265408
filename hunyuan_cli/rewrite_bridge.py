"""`hyv run --rewrite MODE`: rewrite the batch's prompts before encoding (composes the rewrite library).

The rewrites go to the same JSONL artifact `hyv rewrite` writes (and its cache), each item then runs with the
rewritten prompt, and its manifests record both texts. An item whose rewrite failed is a failed line, never
silently run with the user's text.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hunyuan_cli.console import err_console
from hunyuan_cli.options import Rewrite


def rewrite_items(
    items: list[Any], request: Rewrite, workdir: Path, quiet: bool
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(items with rewritten prompts, line errors for failed rewrites, a summary for the JSON output)."""
    from render.files.batch import LineError
    from rewrite.api import default_output_path, rewrite_batch, write_jsonl
    from rewrite.settings import RewriteSettings, make_backend

    model_dir = Path(request.model_dir) if request.model_dir else None
    backend = make_backend(endpoint=request.endpoint, api_model=request.api_model, model_dir=model_dir)
    settings = RewriteSettings(mode=request.mode)
    if not quiet:
        err_console.print(f"[dim]rewriting {len(items)} prompt(s) in {settings.mode} mode…[/]", markup=True)
    report = rewrite_batch([(it.source, it.prompt) for it in items], settings, backend)
    path = write_jsonl(report, default_output_path(workdir, report))
    kept: list[Any] = []
    errors: list[Any] = []
    for it, r in zip(items, report.items, strict=True):
        if r.prompt is None:
            errors.append(LineError(it.source, f"rewrite failed: {r.error}"))
        else:
            kept.append(replace(it, prompt=r.prompt, original_prompt=it.prompt))
    summary = {
        "jsonl": str(path),
        "mode": report.mode,
        "model": report.model,
        "instruction_version": report.instruction_version,
        "rewritten": len(kept),
        "cached": report.n_cached,
        "failed": len(errors),
    }
    return kept, errors, summary
