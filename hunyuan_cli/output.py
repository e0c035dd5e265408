"""What the stage commands print: a line per artifact (or one JSON object with --json), a summary, failures on
stderr, and the exit code (0 all done, 1 the only item failed, 3 some items of a batch failed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from hunyuan_cli.common import emit_json
from hunyuan_cli.console import err_console

if TYPE_CHECKING:
    from hunyuan_cli.options import StageOptions
    from render.batch import LineError
    from render.items import Report

# What each command makes: the key of its rows in the JSON object, and the noun of its messages.
MAKES = {"encode": "embeddings", "render": "latents", "decode": "videos", "run": "videos"}


def report_line_errors(errors: list[LineError]) -> None:
    for e in errors:
        err_console.print(f"[red]skipped[/] {escape(e.source)}: {escape(e.message)}", markup=True)


def summary(report: Report, line_errors: list[LineError]) -> dict[str, int]:
    return {
        "total": len(report.outcomes),
        "made": report.count("done"),
        "cached": report.count("cached"),
        "already_done": report.count("skipped"),
        "stopped": report.count("stopped"),
        "failed": report.count("failed") + len(line_errors),
        "encodes": report.encodes,
        "cache_hits": report.cache_hits,
    }


def print_report(
    command: str,
    report: Report,
    line_errors: list[LineError],
    opts: StageOptions,
    extra: dict[str, Any] | None,
) -> None:
    counts = summary(report, line_errors)
    if opts.json_out:
        rows = [o.as_json() for o in report.outcomes]
        emit_json({"command": command, MAKES[command]: rows, **counts, **(extra or {})})
        return
    for o in report.outcomes:
        if o.status == "stopped":
            typer.echo(
                f"stopped at step {o.step}: {o.checkpoint} (preview: {o.video or o.preview}); "
                "continue with the same command and --resume"
            )
        elif o.path is not None and o.status != "failed":
            typer.echo(f"{o.status:8} {o.path}")
    if command == "encode":
        typer.echo(f"{report.encodes} encoded, {report.cache_hits} cache hits, {counts['failed']} failed")
        return
    if report.outcomes and counts["already_done"] == len(report.outcomes):
        typer.echo(
            f"nothing to do: all {len(report.outcomes)} {MAKES[command]} already exist in {opts.workdir}"
        )
    typer.echo(
        f"{counts['made']} made, {counts['already_done']} already done, {counts['stopped']} stopped, "
        f"{counts['failed']} failed; encodes: {report.encodes}, cache hits: {report.cache_hits}"
    )


def finish(report: Report, line_errors: list[LineError]) -> None:
    """Exit code: 0 all done; 1 the only item failed; 3 a batch with failed items or lines."""
    from render.errors import BatchFailure, RuntimeFailure

    failed = report.failed
    if len(report.outcomes) == 1 and len(failed) == 1 and not line_errors:
        raise RuntimeFailure(failed[0].error or "failed")
    for o in failed:
        src = o.item.source or o.item.label
        err_console.print(f"[red]failed[/] {escape(src)}: {escape(o.error or '')}", markup=True)
    total = len(failed) + len(line_errors)
    if total:
        raise BatchFailure(f"{total} item(s) failed; the others are done; re-run the same command to retry")
