"""`hyv models`, `hyv cache`, `hyv inspect`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from hunyuan_cli.common import (
    DEFAULT_WORKDIR,
    JsonOpt,
    WorkdirOpt,
    emit_json,
    quiet_libraries,
    reported_errors,
)

models_app = typer.Typer(help="Create and check models.", no_args_is_help=True)
cache_app = typer.Typer(help="The content-addressed embedding cache ($HYV_CACHE_DIR).", no_args_is_help=True)


@models_app.command("init-tiny")
def init_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the model (diffusers layout).")],
    preset: Annotated[
        str, typer.Option("--preset", help="tiny (tests), small, or medium (benchmarks).")
    ] = "tiny",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty directory.")] = False,
    family: Annotated[str, typer.Option("--family", help="The model family: HunyuanVideo.")] = "HunyuanVideo",
    json_out: JsonOpt = False,
) -> None:
    """Write a randomly initialised model built from configs (no download)."""
    with reported_errors():
        from render.families import init_tiny as build

        quiet_libraries()
        path = build(directory, family, preset=preset, seed=seed, force=force)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if json_out:
            emit_json(
                {
                    "command": "models init-tiny",
                    "path": str(path),
                    "family": family,
                    "preset": preset,
                    "seed": seed,
                    "bytes": size,
                }
            )
        else:
            typer.echo(f"wrote a random {preset} model ({size / 1e6:.1f} MB) to {path}")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@cache_app.command("ls")
def cache_ls(json_out: JsonOpt = False) -> None:
    """List cached embeddings (most recently used last)."""
    with reported_errors():
        from render.files import cache

        entries = sorted(cache.entries(), key=lambda e: e.mtime)
        rows: list[dict[str, Any]] = [
            {
                "key": e.key,
                "prompt": e.manifest.get("prompt"),
                "bytes": e.size,
                "used": datetime.fromtimestamp(e.mtime).isoformat(timespec="seconds"),
                "path": str(e.path),
            }
            for e in entries
        ]
        if json_out:
            emit_json(
                {
                    "command": "cache ls",
                    "root": str(cache.cache_root()),
                    "entries": rows,
                    "bytes": sum(e.size for e in entries),
                }
            )
            return
        from rich.table import Table

        from hunyuan_cli.console import Console

        t = Table("key", "prompt", "size", "last used", title=f"{cache.embeddings_dir()}")
        for r in rows:
            prompt = str(r["prompt"] or "?")
            t.add_row(
                r["key"][:17], prompt[:60] + ("…" if len(prompt) > 60 else ""), _human(r["bytes"]), r["used"]
            )
        Console().print(t)
        typer.echo(f"{len(rows)} entries, {_human(sum(e.size for e in entries))} (KB, MB, GB: powers of 1000)")


@cache_app.command("info")
def cache_info(
    key_or_prompt: Annotated[str, typer.Argument(help="A key (or its start) or the exact prompt.")],
    json_out: JsonOpt = False,
) -> None:
    """Show the manifest of cached embeddings."""
    with reported_errors():
        from render.core.errors import UsageError
        from render.files import cache

        found = cache.find(key_or_prompt)
        if not found:
            raise UsageError(f"no cache entry matches {key_or_prompt!r}; `hyv cache ls` lists them")
        rows: list[dict[str, Any]] = [
            {"key": e.key, "path": str(e.path), "bytes": e.size, "manifest": e.manifest} for e in found
        ]
        if json_out:
            emit_json({"command": "cache info", "entries": rows})
        else:
            for r in rows:
                _print_manifest(r["manifest"], f"{r['key']} ({_human(r['bytes'])})")


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Remove entries unused for this long (e.g. 30d, 12h).", show_default=False
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            help="Then remove the least recently used until the cache fits (e.g. 10GB).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove old entries, or the least recently used ones past a size."""
    with reported_errors():
        from render.core.errors import UsageError
        from render.files import cache

        if older_than is None and max_size is None:
            raise UsageError("say what to prune: --older-than AGE and/or --max-size SIZE")
        age = cache.parse_age(older_than) if older_than else None
        size = cache.parse_size(max_size) if max_size else None
        removed = cache.prune(age, size, dry_run=dry_run)
        freed = sum(e.size for e in removed)
        if json_out:
            emit_json(
                {
                    "command": "cache prune",
                    "removed": [e.key for e in removed],
                    "bytes": freed,
                    "dry_run": dry_run,
                }
            )
        else:
            verb = "would remove" if dry_run else "removed"
            typer.echo(f"{verb} {len(removed)} entries ({_human(freed)})")


def clean(
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove what killed runs left in a work directory: temporary files and lock files nobody holds."""
    with reported_errors():
        from render.core.errors import UsageError
        from render.files.workdir import leftovers, remove

        if not workdir.is_dir():
            raise UsageError(f"--workdir {workdir} is not a directory")
        found = leftovers(workdir)
        if not dry_run:
            remove(found)
        if json_out:
            emit_json({"command": "clean", "removed": [str(p) for p in found], "dry_run": dry_run})
        else:
            for p in found:
                typer.echo(f"{'would remove' if dry_run else 'removed'} {p}")
            typer.echo(f"{len(found)} leftover(s) {'found' if dry_run else 'removed'} in {workdir}")


def inspect(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            help="Embeddings, latents or checkpoint artifacts, or videos (their manifests beside them).",
            metavar="FILE",
            show_default=False,
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Print the provenance manifest of each artifact."""
    with reported_errors():
        from render.files.artifacts import read_any_manifest

        found = [(p, *read_any_manifest(p)) for p in artifacts]
        if json_out:
            rows = [{"path": str(p), "kind": kind, "manifest": m} for p, kind, m in found]
            emit_json({"command": "inspect", "artifacts": rows})
        else:
            for p, kind, m in found:
                _print_manifest(m, f"{p} ({kind})")


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and k != "render":
            rows += _flatten(v, name + ".")
        elif k == "render" and isinstance(v, dict):
            rows.append((name, f"(the render manifest: seed {v.get('seed')}, {len(v)} fields)"))
        elif isinstance(v, list):
            rows.append((name, json.dumps(v, ensure_ascii=False)))
        else:
            rows.append((name, str(v)))
    return rows


def _print_manifest(manifest: dict[str, Any], title: str) -> None:
    from rich.table import Table

    from hunyuan_cli.console import Console

    t = Table("field", "value", title=title, show_lines=False)
    for k, v in _flatten(manifest):
        t.add_row(k, v if len(v) < 400 else v[:400] + "…")
    Console().print(t)
