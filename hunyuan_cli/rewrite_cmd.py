"""`hyv rewrite`: rewrite prompts the way HunyuanVideo's training captions were written.

Parses options, calls rewrite.api.rewrite_batch, writes the JSONL, prints. Nothing heavy at import time.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hunyuan_cli.common import DEFAULT_WORKDIR, JsonOpt, WorkdirOpt, emit_json, reported_errors
from hunyuan_cli.options import bundle, optional
from rewrite.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MODE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    RewriteSettings,
    SamplingSettings,
)

if TYPE_CHECKING:
    from rewrite.api import RewriteReport
    from rewrite.settings import Backend

_S = SamplingSettings()  # the defaults, defined there once


def register(app: typer.Typer) -> None:
    app.command("rewrite", rich_help_panel="Stages")(rewrite)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _backend(**values: Any) -> dict[str, Any]:
    """The backend options given; the old spelling `--model` (the rewrite LLM, while `--model` is the video model in
    every other command) still works, with a deprecation line."""
    old = values.pop("old_model_dir", None)
    if old is not None:
        typer.echo("hyv: warning: `hyv rewrite --model` is deprecated; use --rewrite-model (as `hyv run`)", err=True)
        values["model_dir"] = values.get("model_dir") or old
    return _given(**values)


# Passed as one dict each (only what the user gave), so that the library's defaults apply to the rest.
SAMPLING_OPTIONS = {
    "temperature": optional(
        float, "--temperature", help=f"Sampling temperature [default: {_S.temperature}]."
    ),
    "top_p": optional(float, "--top-p", help=f"Nucleus sampling mass [default: {_S.top_p}]."),
    "top_k": optional(int, "--top-k", help=f"Top-k sampling, -1: off [default: {_S.top_k}]."),
    "repetition_penalty": optional(
        float, "--repetition-penalty", help=f"Repetition penalty [default: {_S.repetition_penalty}]."
    ),
    "seed": optional(int, "--seed", help="Sampling seed [default: the backend's]."),
    "max_tokens": optional(
        int, "--max-tokens", help=f"Longest rewrite, in tokens [default: {_S.max_tokens}]."
    ),
}
BACKEND_OPTIONS = {
    "endpoint": optional(
        str,
        "--endpoint",
        envvar="HYV_REWRITE_ENDPOINT",
        help="OpenAI-compatible server base URL, e.g. http://127.0.0.1:8000/v1. Key: $HYV_API_KEY.",
    ),
    "api_model": optional(str, "--api-model", help="Model name the server serves."),
    "model_dir": optional(
        Path,
        "--rewrite-model",
        file_okay=False,
        help="The rewrite LLM's directory: vLLM in-process (pip install '.[rewrite]'); as `hyv run --rewrite-model`.",
    ),
    "old_model_dir": optional(Path, "--model", file_okay=False, hidden=True, help="Deprecated: --rewrite-model."),
    "concurrency": optional(
        int, "--concurrency", help=f"Requests in flight [default: {DEFAULT_CONCURRENCY}]."
    ),
    "timeout": optional(float, "--timeout", help=f"Seconds per request [default: {DEFAULT_TIMEOUT}]."),
    "retries": optional(int, "--retries", help=f"Retries on 429/5xx/errors [default: {DEFAULT_RETRIES}]."),
}


@bundle("backend", BACKEND_OPTIONS, _backend)
@bundle("sampling", SAMPLING_OPTIONS, _given)
def rewrite(
    prompts: Annotated[
        list[str] | None, typer.Argument(help="Prompts to rewrite.", show_default=False, metavar="PROMPT")
    ] = None,
    prompts_file: Annotated[
        Path | None, typer.Option("--prompts", help="A .txt, .jsonl or .csv file of prompts.", dir_okay=False)
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="normal (keep the intent), director (composition, light, camera); master = director."
        ),
    ] = DEFAULT_MODE,
    instruction_file: Annotated[
        Path | None,
        typer.Option(help="Instruction text with one {input}; replaces the mode's.", dir_okay=False),
    ] = None,
    chat: Annotated[
        bool, typer.Option("--chat/--no-chat", help="A user chat message, or a raw completion.")
    ] = True,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSONL to write. Default: WORKDIR/rewrites/MODE-HASH.jsonl."),
    ] = None,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    json_out: JsonOpt = False,
    enforce_eager: Annotated[
        bool,
        typer.Option("--enforce-eager", help="--rewrite-model: skip torch.compile (faster start, slower steps)."),
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ask the model even for cached prompts.")
    ] = False,
    *,
    backend: dict[str, Any],
    sampling: dict[str, Any],
) -> None:
    """Rewrite prompts with HunyuanVideo's rewrite instruction through vLLM (a server or in-process)."""
    with reported_errors():
        from rewrite.api import default_output_path, write_jsonl
        from rewrite.errors import BatchFailure, RewriteUsageError
        from rewrite.settings import InProcessBackend, make_backend

        inputs, input_errors = _read_inputs(prompts or [], prompts_file)
        if not inputs and not input_errors:
            raise RewriteUsageError("no prompts: give them as arguments or with --prompts FILE")
        settings = RewriteSettings(
            mode=mode, chat=chat, instruction_file=instruction_file, use_cache=not no_cache,
            sampling=SamplingSettings(**sampling),
        )  # fmt: skip
        if backend.get("model_dir") and backend.get("endpoint") == os.environ.get("HYV_REWRITE_ENDPOINT"):
            backend.pop("endpoint", None)  # an explicit --rewrite-model wins over the endpoint from the environment
        chosen = make_backend(**{"endpoint": None, "api_model": None, "model_dir": None, **backend})
        if enforce_eager and isinstance(chosen, InProcessBackend):
            chosen = replace(chosen, enforce_eager=True)
        report = _run_with_progress(inputs, settings, chosen, quiet=json_out)
        out = write_jsonl(report, output if output is not None else default_output_path(workdir, report))

        failures = [(e[0], e[1]) for e in input_errors] + [(r.source, r.error or "") for r in report.failed]
        if json_out:
            emit_json(_json_summary(report, out, input_errors))
        else:
            if prompts_file is None:
                for r in report.items:
                    if r.ok:
                        typer.echo(r.prompt)
            n_ok, n_all = len(report.items) - len(report.failed), len(report.items) + len(input_errors)
            typer.echo(
                f"rewrote {n_ok} of {n_all} prompts ({report.n_cached} from cache) "
                f"in {report.seconds:.1f} s -> {out}",
                err=True,
            )
        for source, message in failures:
            typer.echo(f"hyv: {source}: {message}", err=True)
        if failures:  # bad input lines are to fix (a re-run would not help); failed requests are to retry
            parts = []
            if input_errors:
                parts.append(f"{len(input_errors)} input line(s) cannot run as written (listed above): fix them")
            if report.failed:
                parts.append(f"{len(report.failed)} prompt(s) failed (listed above): re-run the same command to "
                             "retry them, the rewrites done so far are cached")  # fmt: skip
            else:
                parts[0] += " and run the command again"
            raise BatchFailure("; ".join(parts))


def _read_inputs(args: list[str], path: Path | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(source, prompt) pairs and (source, error) pairs, from the arguments and the prompt file."""
    from render.files.batch import items_from_args, read_prompt_file

    items, errors = items_from_args(args)
    if path is not None:
        pf = read_prompt_file(path)
        items += pf.items
        errors += pf.errors
    return [(i.source, i.prompt or "") for i in items], [(e.source, e.message) for e in errors]


def _run_with_progress(
    inputs: list[tuple[str, str]], settings: RewriteSettings, backend: Backend, *, quiet: bool
) -> RewriteReport:
    from rewrite.api import rewrite_batch

    if quiet:
        return rewrite_batch(inputs, settings, backend)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("rewrite"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("rewrite", total=len(inputs))
        return rewrite_batch(inputs, settings, backend, on_progress=lambda _r: progress.advance(task))


def _json_summary(report: RewriteReport, out: Path, input_errors: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "command": "rewrite",
        "output": str(out),
        "mode": report.mode,
        "model": report.model,
        "instruction_version": report.instruction_version,
        "chat": report.chat,
        "sampling": report.sampling,
        "seconds": round(report.seconds, 3),
        "ok": len(report.items) - len(report.failed),
        "failed": len(report.failed) + len(input_errors),
        "cached": report.n_cached,
        "items": [
            {
                "source": r.source,
                "ok": r.ok,
                "original_prompt": r.original_prompt,
                "prompt": r.prompt,
                "error": r.error,
                "cached": r.cached,
                "seconds": round(r.seconds, 4),
            }
            for r in report.items
        ],
        "input_errors": [{"source": s, "error": m} for s, m in input_errors],
    }
