"""What the stage commands print: a line per artifact (or one JSON object with --json), a summary, failures on
stderr, and the exit code (0 all done, 1 the only item failed, 3 some items of a batch failed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from hunyuan_cli.common import emit_json
from hunyuan_cli.console import err_console

if TYPE_CHECKING:
    from hunyuan_cli.options import StageOptions
    from render.core.items import Report
    from render.files.batch import LineError

# What each command makes: the key of its rows in the JSON object, and the noun of its messages.
MAKES = {"encode": "embeddings", "render": "latents", "upscale": "latents", "decode": "videos", "run": "videos"}


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
    if opts.quiet:  # the paths made, one a line, for `X=$(hyv ... -q)`
        for o in report.outcomes:
            if o.status in ("done", "cached", "skipped") and o.path is not None:
                typer.echo(str(o.path))
            elif o.status == "stopped" and (o.video or o.preview) is not None:
                typer.echo(str(o.video or o.preview))
        return
    for o in report.outcomes:
        if o.status == "stopped":
            typer.echo(
                f"stopped at step {o.step}: preview {o.video or o.preview} (checkpoint {o.checkpoint}); "
                "continue with the same command and --resume"
            )
        elif o.path is not None and o.status != "failed":
            typer.echo(f"{o.status:8} {o.path}")
    typer.echo(_summary_line(command, report, counts, opts))


def _summary_line(command: str, report: Report, counts: dict[str, int], opts: StageOptions) -> str:
    """What was made, in words: "2 made, 1 already done", "1 stopped at step 5 (a preview)"."""
    n = len(report.outcomes)
    if n and counts["already_done"] + counts["cached"] == n and not counts["failed"]:
        return f"nothing to do: all {n} {MAKES[command]} already exist in {opts.workdir}"
    made = counts["made"]
    parts = (
        [f"{made} {'encoded' if command == 'encode' else 'made'}"] if made or not counts["stopped"] else []
    )
    if counts["cached"]:
        parts.append(f"{counts['cached']} from the cache")
    if counts["already_done"]:
        parts.append(f"{counts['already_done']} already done")
    if counts["stopped"]:
        steps = sorted({o.step for o in report.outcomes if o.status == "stopped" and o.step is not None})
        at = ", ".join(map(str, steps))
        parts.append(f"{counts['stopped']} stopped at step {at} (a preview each; --resume continues)")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if command in ("render", "run") and (report.encodes or report.cache_hits):
        parts.append(f"encodes: {report.encodes}, cache hits: {report.cache_hits}")
    return "; ".join(parts)


def finish(report: Report, line_errors: list[LineError]) -> None:
    """Exit code: 0 all done; 1 the only item failed; 3 a batch with failed items or lines. What did not run is
    listed in one place, at the end: input lines that cannot run as written (their file and line: fix them), then
    items whose computation failed (re-running the same command retries them)."""
    from render.core.errors import BatchFailure, RuntimeFailure, UsageError

    failed = report.failed
    if len(report.outcomes) == 1 and len(failed) == 1 and not line_errors:
        error = f"{failed[0].item.source}: {failed[0].error}" if failed[0].item.source else failed[0].error
        raise (UsageError if failed[0].bad_input else RuntimeFailure)(error or "failed")
    bad = [(e.source, e.message) for e in line_errors]
    bad += [(o.item.source or o.item.label, o.error or "") for o in failed if o.bad_input]
    broken = [(o.item.source or o.item.label, o.error or "") for o in failed if not o.bad_input]
    for tag, rows in (("not run", bad), ("failed", broken)):
        for source, message in dict.fromkeys(rows):  # an item's videos fail alike: one line
            err_console.print(f"[red]{tag}[/] {escape(source)}: {escape(message)}", markup=True)
    if not bad and not broken:
        return
    parts = []
    if bad:
        n = len(dict.fromkeys(s for s, _ in bad))
        again = "fix them" if broken else "fix them and run the command again"
        parts.append(f"{n} input line(s) cannot run as written ({_where(s for s, _ in bad)}): {again}")
    if broken:
        parts.append(f"{len(broken)} item(s) failed (listed above): {'then ' if bad else ''}re-run the same command "
                     "to retry them")  # fmt: skip
    done = sum(1 for o in report.outcomes if o.status != "failed")
    raise BatchFailure("; ".join(parts) + f" ({done} done, kept)")


def _where(sources: Iterable[str]) -> str:
    """"prompts.jsonl lines 2, 5; argument 1": file:line sources grouped by file, in order, each once."""
    by_file: dict[str, list[str]] = {}
    for src in dict.fromkeys(sources):
        path, _, line = src.rpartition(":")
        if path and line.isdigit():
            by_file.setdefault(path, []).append(line)
        else:
            by_file.setdefault(src, [])
    return "; ".join(
        f"{f} line{'s' if len(lines) > 1 else ''} {', '.join(lines)}" if lines else f for f, lines in by_file.items()
    )
