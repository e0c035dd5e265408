"""`hyv encode`, `hyv render`, `hyv decode`, `hyv run`: parse, call the engine (render.engine), print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hunyuan_cli.common import quiet_follower, reported_errors
from hunyuan_cli.console import announce_model, err_console, remember_notice
from hunyuan_cli.options import PromptArgs, PromptsFileOpt, StageOptions, stage_options
from hunyuan_cli.output import finish, print_report
from hunyuan_cli.progress import make_progress
from render.sampling.parallel import follower_rank

if TYPE_CHECKING:
    from render.core.items import Item
    from render.files.batch import LineError


@dataclass
class _Inputs:
    items: list[Item]
    line_errors: list[LineError] = field(default_factory=list)
    extra: dict[str, Any] | None = None  # more for the JSON output


def _execute(command: str, opts: StageOptions, inputs: Callable[[], _Inputs], **call: Any) -> None:
    """Resolve the settings (bad ones are reported before anything heavy), gather the inputs, call the engine's
    `command` with a progress display, print what it made and exit with the batch's code. The ranks > 0 of a
    --parallel job print nothing: rank 0 reports for the job."""
    with quiet_follower(opts.parallel), reported_errors():
        from render.core.errors import UsageError
        from render.engine import Engine

        if opts.dry_run:  # the plan `hyv plan` gives for the same options
            from hunyuan_cli.plan_cmd import show_plan

            show_plan(opts)
            return
        engine = Engine(opts.model, variant=opts.variant(), parallel=opts.parallel, sr_model=opts.sr_model)
        settings = engine.settings(opts.flags)
        if isinstance(opts.flags.seed, str) and opts.flags.seed.strip().lower() == "random":
            err_console.print(f"seed: {settings.render.seed} (drawn at random; recorded in every manifest)")
        got = inputs()
        if opts.image is not None:  # the first frame of every item that has none of its own
            got.items = [it if it.image is not None else replace(it, image=opts.image) for it in got.items]
        if opts.output is not None:
            if len(got.items) != 1:
                raise UsageError(f"-o names one video, but {len(got.items)} items were given; use --workdir")
            got.items = [replace(got.items[0], output=opts.output)]
        quiet = opts.json_out or opts.quiet
        prompts = [it.prompt for it in got.items if it.prompt is not None]
        said = announce_model(engine.model, prompts, workdir=opts.workdir, quiet=quiet)
        try:
            with make_progress(quiet=quiet) as progress:
                run = getattr(engine, command)
                report = run(got.items, settings, workdir=opts.workdir, progress=progress, **call)
        finally:
            if said:
                remember_notice(opts.workdir)
        print_report(command, report, got.line_errors, opts, extra=got.extra)
        finish(report, got.line_errors)  # the lines skipped and the items failed, in one place


def _prompts(prompts: list[str] | None, prompts_file: Path | None) -> Callable[[], _Inputs]:
    def gather() -> _Inputs:
        from render.files.batch import gather_items

        return _Inputs(*gather_items(prompts or [], prompts_file))

    return gather


@stage_options("encode")
def encode(prompts: PromptArgs = None, prompts_file: PromptsFileOpt = None, *, opts: StageOptions) -> None:
    """Prompts -> text embeddings (one artifact per prompt), cached by content and re-used."""
    gather = _prompts(prompts, prompts_file)
    _execute("encode", opts, gather, use_cache=opts.use_cache)


EmbeddingsArgs = Annotated[
    list[Path] | None,
    typer.Argument(help="Embeddings artifacts from `hyv encode`.", show_default=False, metavar="EMBEDDINGS"),
]


@stage_options("render")
def render(
    embeddings: EmbeddingsArgs = None, prompts_file: PromptsFileOpt = None, *, opts: StageOptions
) -> None:
    """Embeddings -> latents, one artifact per (prompt, seed). Resumable with --save-every/--stop-at/--resume.

    With --prompts, each item's embeddings are found by content in the workdir or the cache (from `hyv encode`)."""

    def gather() -> _Inputs:
        from render.core.errors import UsageError
        from render.core.items import Item
        from render.files.batch import read_prompt_file

        got = _Inputs([Item(embeddings=p, source=str(p)) for p in embeddings or []])
        if prompts_file is not None:
            pf = read_prompt_file(prompts_file)
            got.items, got.line_errors = got.items + pf.items, pf.errors
        if not got.items and not got.line_errors:
            raise UsageError("no embeddings given: pass artifacts from `hyv encode`, or --prompts FILE")
        return got

    _execute("render", opts, gather, resume=opts.resume, use_cache=opts.use_cache)


LatentsArgs = Annotated[
    list[Path],
    typer.Argument(help="Latents artifacts from `hyv render`.", show_default=False, metavar="LATENTS"),
]


@stage_options("upscale")
def upscale(latents: LatentsArgs, *, opts: StageOptions) -> None:
    """Latents -> upscaled latents (super-resolution): --to 720p takes 480p latents, --to 1080p 720p ones; the text
    conditions are those of the embeddings the latents were rendered from. Then `hyv decode`."""

    def gather() -> _Inputs:
        from render.core.items import Item

        return _Inputs([Item(latents=p, source=str(p)) for p in latents])

    _execute("upscale", opts, gather)


@stage_options("decode")
def decode(latents: LatentsArgs, *, opts: StageOptions) -> None:
    """Latents -> an mp4 per artifact (or --format png: a folder of frames), with a manifest beside it."""

    def gather() -> _Inputs:
        from render.core.items import Item

        return _Inputs([Item(latents=p, source=str(p)) for p in latents])

    _execute("decode", opts, gather)


@stage_options("run")
def run(prompts: PromptArgs = None, prompts_file: PromptsFileOpt = None, *, opts: StageOptions) -> None:
    """All stages: (rewrite ->) encode -> render (-> upscale with --sr) -> decode, stage-major (one model in memory
    at a time)."""

    def gather() -> _Inputs:
        got = _prompts(prompts, prompts_file)()
        if opts.rewrite is not None and not follower_rank(opts.parallel):  # rank 0 rewrites; the others mirror
            from hunyuan_cli.rewrite_bridge import rewrite_items

            got.items, more_errors, info = rewrite_items(got.items, opts.rewrite, opts.workdir, opts.json_out)
            got.line_errors, got.extra = got.line_errors + more_errors, {"rewrite": info}
        return got

    scale = {"gpus": opts.gpus, "ray": opts.ray} if opts.gpus is not None or opts.ray is not None else {}
    _execute("run", opts, gather, resume=opts.resume, use_cache=opts.use_cache, **scale)
