"""Prompt rewriting before a run, composing the rewrite library with render's items: the one composition that
`hyv run --rewrite` (hunyuan_cli.rewrite_bridge) and `hyv serve`'s rewrite jobs (serve.worker) both use.

The rewrites go to the JSONL artifact `hyv rewrite` writes (and its cache, so a job run again after a crash gets
the same prompts and so finds its renders); each item runs with the rewritten prompt and its manifests keep both
texts. An item whose rewrite failed fails, never silently running with the user's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from render.core.items import Item


def rewrite_items(
    items: list[Item], request: Mapping[str, str | None], workdir: Path
) -> tuple[list[Item], list[tuple[Item, str]], dict[str, Any]]:
    """(items with rewritten prompts, (item, error) for failed rewrites, a summary). `request`: mode, and endpoint
    + api_model or model_dir. Raises the rewrite library's errors when the whole batch fails (server unreachable,
    model not served)."""
    from rewrite.api import default_output_path, rewrite_batch, write_jsonl
    from rewrite.settings import DEFAULT_MODE, RewriteSettings, make_backend

    model_dir = request.get("model_dir")
    backend = make_backend(
        endpoint=request.get("endpoint"),
        api_model=request.get("api_model"),
        model_dir=Path(model_dir) if model_dir else None,
    )
    mode = request.get("mode") or DEFAULT_MODE
    report = rewrite_batch([(it.source, it.prompt or "") for it in items], RewriteSettings(mode=mode), backend)
    path = write_jsonl(report, default_output_path(workdir, report))
    kept: list[Item] = []
    failed: list[tuple[Item, str]] = []
    for it, r in zip(items, report.items, strict=True):
        if r.prompt is None:
            failed.append((it, f"rewrite failed: {r.error}"))
        else:
            kept.append(replace(it, prompt=r.prompt, original_prompt=it.prompt))
    summary = {
        "jsonl": str(path),
        "mode": report.mode,
        "model": report.model,
        "instruction_version": report.instruction_version,
        "rewritten": len(kept),
        "cached": report.n_cached,
        "failed": len(failed),
    }
    return kept, failed, summary
