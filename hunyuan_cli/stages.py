"""`hyv encode`, `hyv render`, `hyv decode`, `hyv run`: parse, call render.*, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hunyuan_cli.common import DEFAULT_WORKDIR, JsonOpt, WorkdirOpt, emit_json, reported_errors
from hunyuan_cli.console import RichProgress, err_console
from hunyuan_cli.options import (
    DEFAULT_DEVICE,
    DEFAULT_DTYPE,
    AspectOpt,
    CfgOpt,
    D,
    DeviceOpt,
    DtypeOpt,
    E,
    FormatOpt,
    FpsOpt,
    FramesOpt,
    GuidanceOpt,
    HeightOpt,
    ModelOpt,
    NegOpt,
    NoCacheOpt,
    NumVideosOpt,
    PromptsFileOpt,
    R,
    ResumeOpt,
    SaveEveryOpt,
    SeedOpt,
    ShiftOpt,
    SizeOpt,
    StepsOpt,
    StopAtOpt,
    TextLenOpt,
    TilingOpt,
    WidthOpt,
    resolve_size,
)

PromptArgs = Annotated[list[str] | None, typer.Argument(help="Prompts (quote each one).", show_default=False)]


def _quiet_libraries() -> None:
    """Library progress bars and info logs would mix with ours."""
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


def _gather_items(prompts: list[str] | None, prompts_file: Path | None) -> tuple[list[Any], list[Any]]:
    """(items, line errors) from arguments and/or a prompt file."""
    from render.batch import items_from_args, read_prompt_file
    from render.errors import UsageError

    items, errors = items_from_args(prompts or [])
    if prompts_file is not None:
        pf = read_prompt_file(prompts_file)
        items += pf.items
        errors += pf.errors
    if not items and not errors:
        raise UsageError("no prompt given: pass PROMPT arguments or --prompts FILE")
    if not items and len(errors) == 1:
        raise UsageError(f"{errors[0].source}: {errors[0].message}")
    return items, errors


def _report_line_errors(errors: list[Any]) -> None:
    for e in errors:
        err_console.print(
            f"[red]skipped[/] {escape(e.source)}: {escape(e.message)}", markup=True, highlight=False
        )


def _finish(n_items: int, failures: list[tuple[str, str]], line_errors: list[Any]) -> None:
    """Exit code: 0 all done; 1 the only item failed; 3 a batch with failed items or lines."""
    from render.errors import BatchFailure, RuntimeFailure

    if n_items == 1 and len(failures) == 1 and not line_errors:
        raise RuntimeFailure(failures[0][1])
    for src, msg in failures:
        err_console.print(f"[red]failed[/] {escape(src)}: {escape(msg)}", markup=True, highlight=False)
    total = len(failures) + len(line_errors)
    if total:
        raise BatchFailure(f"{total} item(s) failed; the others are done; re-run the same command to retry")


def _pick(ref: Any, name: str, value: Any, fallback: Any) -> Any:
    """An option's value: the flag when given, else the model's own default (hyv.json), else hyv's default."""
    if value is not None:
        return value
    return ref.defaults().get(name, fallback)


def _placement(device: str, dtype: str) -> Any:
    from render.settings import Placement

    return Placement(device=device, dtype=dtype)


def _announce_model(model: Any, json_out: bool, prompts: list[str] | None = None) -> None:
    """Say once that the bundled demo model is in use; warn about prompts it cannot draw (outside its world)."""
    if not model.bundled:
        return
    err_console.print(
        "[dim]using the bundled demo model (simple shapes only); point hyv at HunyuanVideo weights with "
        "--model DIR or HYV_MODEL[/]",
        markup=True,
    )
    from render.demo.world import parse_caption

    foreign = [p for p in prompts or [] if parse_caption(p) is None]
    if foreign:
        err_console.print(
            f"[yellow]warning:[/] the demo model only draws captions like \"a red circle moves to the right on a "
            f"black background\" (colours red, green, blue, yellow, white, black; circle, square, triangle; moves "
            f"left/right/up/down or stays still); {len(foreign)} prompt(s) are not, e.g. {foreign[0]!r}",
            markup=True,
        )


def encode(
    prompts: PromptArgs = None,
    prompts_file: PromptsFileOpt = None,
    model: ModelOpt = None,
    frames: FramesOpt = None,
    text_len: TextLenOpt = None,
    no_cache: NoCacheOpt = False,
    device: DeviceOpt = DEFAULT_DEVICE,
    dtype: DtypeOpt = DEFAULT_DTYPE,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    json_out: JsonOpt = False,
) -> None:
    """Prompts -> text embeddings (one artifact per prompt), cached by content and re-used."""
    with reported_errors():
        from render.encode import EncodeJob, encode_jobs
        from render.loading import resolve_model
        from render.settings import EncodeSettings, RenderSettings

        items, line_errors = _gather_items(prompts, prompts_file)
        ref = resolve_model(model)
        frames = _pick(ref, "frames", frames, R.frames)
        RenderSettings(frames=frames, height=16, width=16, steps=1).check()  # frames must be 4k+1
        settings = EncodeSettings(
            text_len=_pick(ref, "text_len", text_len, E.text_len), placement=_placement(device, dtype)
        )
        settings.check()
        _quiet_libraries()
        _announce_model(ref, json_out, [it.prompt for it in items])
        _report_line_errors(line_errors)
        jobs = [
            EncodeJob(
                it.prompt,
                int(it.overrides.get("frames", frames)),
                it.source,
                it.overrides.get("name"),
                it.original_prompt,
            )
            for it in items
        ]
        with RichProgress(not json_out) as progress:
            results = encode_jobs(jobs, ref, settings, workdir, use_cache=not no_cache, progress=progress)
        rows = [
            {
                "prompt": r.job.prompt,
                "source": r.job.source,
                "path": str(r.path) if r.path else None,
                "key": r.key,
                "cached": r.cached,
                "error": r.error,
            }
            for r in results
        ]
        hits = sum(1 for r in results if r.cached)
        failures = [(r.job.source, r.error) for r in results if r.error]
        if json_out:
            emit_json(
                {
                    "command": "encode",
                    "embeddings": rows,
                    "encoded": len(results) - hits - len(failures),
                    "cache_hits": hits,
                    "failed": len(failures) + len(line_errors),
                }
            )
        else:
            for r in results:
                if r.path:
                    typer.echo(f"{'cached ' if r.cached else 'encoded'}  {r.path}")
            typer.echo(
                f"{len(results) - hits - len(failures)} encoded, {hits} cache hits, {len(failures)} failed"
            )
        _finish(len(items), [(s, m or "") for s, m in failures], line_errors)


def _render_settings(
    ref: Any,
    frames: int | None,
    height: int | None,
    width: int | None,
    size: str | None,
    aspect: str | None,
    steps: int | None,
    seed: int,
    num_videos: int,
    guidance: float | None,
    shift: float | None,
    cfg_scale: float,
    neg_prompt: str | None,
    save_every: int,
    stop_at: int | None,
    device: str,
    dtype: str,
) -> Any:
    from render.settings import RenderSettings

    if size is not None or aspect is not None:
        h, w = resolve_size(size, aspect, height, width)
    else:
        h, w = _pick(ref, "height", height, R.height), _pick(ref, "width", width, R.width)
    s = RenderSettings(
        frames=_pick(ref, "frames", frames, R.frames),
        height=h,
        width=w,
        steps=_pick(ref, "steps", steps, R.steps),
        seed=seed,
        num_videos=num_videos,
        guidance=_pick(ref, "guidance", guidance, R.guidance),
        shift=_pick(ref, "shift", shift, R.shift),
        cfg_scale=cfg_scale,
        neg_prompt=neg_prompt,
        save_every=save_every,
        stop_at=stop_at,
        placement=_placement(device, dtype),
    )
    s.check()
    return s


def render(
    embeddings: Annotated[
        list[Path] | None, typer.Argument(help="Embeddings artifacts from `hyv encode`.", show_default=False)
    ] = None,
    prompts_file: PromptsFileOpt = None,
    model: ModelOpt = None,
    frames: FramesOpt = None,
    height: HeightOpt = None,
    width: WidthOpt = None,
    size: SizeOpt = None,
    aspect: AspectOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = R.seed,
    num_videos: NumVideosOpt = R.num_videos,
    guidance: GuidanceOpt = None,
    shift: ShiftOpt = None,
    cfg_scale: CfgOpt = R.cfg_scale,
    neg_prompt: NegOpt = None,
    save_every: SaveEveryOpt = R.save_every,
    stop_at: StopAtOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = DEFAULT_DEVICE,
    dtype: DtypeOpt = DEFAULT_DTYPE,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    json_out: JsonOpt = False,
) -> None:
    """Embeddings -> latents, one artifact per (prompt, seed). Resumable with --save-every/--stop-at/--resume."""
    with reported_errors():
        from render.artifacts import read_manifest
        from render.denoise import RenderJob, render_jobs
        from render.errors import UsageError
        from render.loading import resolve_model

        ref = resolve_model(model)
        s = _render_settings(
            ref,
            frames,
            height,
            width,
            size,
            aspect,
            steps,
            seed,
            num_videos,
            guidance,
            shift,
            cfg_scale,
            neg_prompt,
            save_every,
            stop_at,
            device,
            dtype,
        )
        inputs: list[tuple[Path, Any]] = [(p, s) for p in embeddings or []]
        line_errors: list[Any] = []
        _quiet_libraries()
        if prompts_file is not None:
            found, line_errors = _embeddings_for_prompt_file(prompts_file, ref, s, workdir)
            inputs += found
        if not inputs and not line_errors:
            raise UsageError("no embeddings given: pass artifacts from `hyv encode`, or --prompts FILE")
        labels = {}
        for p, _ in inputs:  # every input checked before any model loads
            _, m = read_manifest(p, "embeddings")
            labels[p] = m.get("prompt") or p.stem
        negs: dict[tuple[str, bool], Path] = {}
        for _, si in inputs:
            if si.negative_prompt is not None and (si.negative_prompt, si.frames > 1) not in negs:
                negs[(si.negative_prompt, si.frames > 1)] = _negative_embeddings(si, ref, workdir, si.frames)
        jobs = [
            RenderJob(
                p,
                si.seed + i,
                _one(si, si.seed + i),
                labels[p],
                negs.get((si.negative_prompt, si.frames > 1)),
            )
            for p, si in inputs
            for i in range(si.num_videos)
        ]
        _announce_model(ref, json_out)
        _report_line_errors(line_errors)
        with RichProgress(not json_out) as progress:
            results = render_jobs(jobs, ref, workdir, resume=resume, progress=progress)
        rows = [
            {
                "embeddings": str(r.job.embeddings),
                "seed": r.job.seed,
                "status": r.status,
                "step": r.step,
                "path": str(r.path) if r.path and r.status in ("done", "skipped") else None,
                "checkpoint": str(r.checkpoint) if r.checkpoint else None,
                "preview": str(r.preview) if r.preview else None,
                "error": r.error,
            }
            for r in results
        ]
        failures = [(str(r.job.embeddings), r.error or "") for r in results if r.status == "failed"]
        if json_out:
            emit_json({"command": "render", "latents": rows})
        else:
            for row in rows:
                if row["status"] in ("done", "skipped"):
                    typer.echo(f"{row['status']:8} {row['path']}")
                elif row["status"] == "stopped":
                    typer.echo(
                        f"stopped at step {row['step']}: {row['checkpoint']} (preview: {row['preview']}); "
                        "continue with the same command and --resume"
                    )
        _finish(len(jobs), failures, line_errors)


def _one(s: Any, seed: int) -> Any:
    from dataclasses import replace

    return replace(s, seed=seed, num_videos=1)


def _embeddings_for_prompt_file(
    path: Path, ref: Any, s: Any, workdir: Path
) -> tuple[list[tuple[Path, Any]], list[Any]]:
    """(embeddings, per-item render settings) of a prompt file's items, found by content key in the workdir or the
    cache (no text encoder is loaded); items not encoded yet, or with impossible settings, are line errors."""
    from render import cache
    from render.artifacts import is_valid
    from render.batch import LineError, read_prompt_file
    from render.denoise import with_overrides
    from render.encode import EncodeJob, TextEncoderStage, materialize
    from render.errors import SettingsError
    from render.naming import artifact_stem
    from render.settings import EncodeSettings

    pf = read_prompt_file(path)
    st = TextEncoderStage(
        ref, EncodeSettings(text_len=ref.defaults().get("text_len", E.text_len), placement=s.placement)
    )
    found: list[tuple[Path, Any]] = []
    errors = list(pf.errors)
    for it in pf.items:
        si = with_overrides(s, it.overrides)
        try:
            si.check()
        except SettingsError as exc:
            errors.append(LineError(it.source, str(exc)))
            continue
        key = st.key(it.prompt, st.template(si.frames))
        dst = (
            workdir
            / "embeddings"
            / f"{artifact_stem(it.overrides.get('name') or it.prompt, key)}.safetensors"
        )
        if not is_valid(dst, "embeddings") and is_valid(cache.entry_path(key), "embeddings"):
            materialize(
                cache.entry_path(key),
                dst,
                EncodeJob(it.prompt, si.frames, it.source, original_prompt=it.original_prompt),
            )
        if is_valid(dst, "embeddings"):
            found.append((dst, si))
        else:
            errors.append(LineError(it.source, f"not encoded yet; run `hyv encode --prompts {path}` first"))
    return found, errors


def _negative_embeddings(s: Any, ref: Any, workdir: Path, frames: int) -> Path:
    """Encode (or find in the cache) the negative prompt for true CFG; the text encoders are freed before the DiT."""
    from render.encode import EncodeJob, encode_jobs
    from render.errors import RuntimeFailure
    from render.settings import EncodeSettings

    res = encode_jobs(
        [EncodeJob(s.negative_prompt, frames, "negative prompt", "negative", folder="negative-embeddings")],
        ref,
        EncodeSettings(placement=s.placement),
        workdir,
    )[0]
    if res.path is None:
        raise RuntimeFailure(f"encoding the negative prompt failed: {res.error}")
    return res.path


def decode(
    latents: Annotated[
        list[Path], typer.Argument(help="Latents artifacts from `hyv render`.", show_default=False)
    ],
    model: ModelOpt = None,
    fps: FpsOpt = None,
    fmt: FormatOpt = D.format,
    tiling: TilingOpt = D.tiling,
    device: DeviceOpt = DEFAULT_DEVICE,
    dtype: DtypeOpt = DEFAULT_DTYPE,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    json_out: JsonOpt = False,
) -> None:
    """Latents -> an mp4 per artifact (or --format png: a folder of frames), with a manifest beside it."""
    with reported_errors():
        from render.decode import DecodeJob, check_latents_file, decode_jobs
        from render.loading import resolve_model
        from render.settings import DecodeSettings

        for p in latents:
            check_latents_file(p)
        ref = resolve_model(model)
        settings = DecodeSettings(
            fps=_pick(ref, "fps", fps, D.fps), format=fmt, tiling=tiling, placement=_placement(device, dtype)
        )
        settings.check()
        _quiet_libraries()
        _announce_model(ref, json_out)
        with RichProgress(not json_out) as progress:
            results = decode_jobs([DecodeJob(p) for p in latents], ref, settings, workdir, progress=progress)
        rows = [
            {
                "latents": str(r.job.latents),
                "status": r.status,
                "path": str(r.path) if r.path else None,
                "manifest": str(r.manifest_path) if r.manifest_path and r.path else None,
                "error": r.error,
            }
            for r in results
        ]
        if json_out:
            emit_json({"command": "decode", "videos": rows})
        else:
            for row in rows:
                if row["path"]:
                    typer.echo(f"{row['status']:8} {row['path']}")
        _finish(
            len(results), [(r.job.latents.name, r.error or "") for r in results if r.status == "failed"], []
        )


def run(
    prompts: PromptArgs = None,
    prompts_file: PromptsFileOpt = None,
    model: ModelOpt = None,
    frames: FramesOpt = None,
    height: HeightOpt = None,
    width: WidthOpt = None,
    size: SizeOpt = None,
    aspect: AspectOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = R.seed,
    num_videos: NumVideosOpt = R.num_videos,
    guidance: GuidanceOpt = None,
    shift: ShiftOpt = None,
    cfg_scale: CfgOpt = R.cfg_scale,
    neg_prompt: NegOpt = None,
    save_every: SaveEveryOpt = R.save_every,
    stop_at: StopAtOpt = None,
    resume: ResumeOpt = False,
    fps: FpsOpt = None,
    fmt: FormatOpt = D.format,
    tiling: TilingOpt = D.tiling,
    text_len: TextLenOpt = None,
    no_cache: NoCacheOpt = False,
    rewrite: Annotated[
        str | None,
        typer.Option(
            "--rewrite",
            help="Rewrite prompts first: normal or director (needs --rewrite-endpoint or --rewrite-model).",
            show_default=False,
        ),
    ] = None,
    rewrite_endpoint: Annotated[
        str | None,
        typer.Option(
            "--rewrite-endpoint",
            envvar="HYV_REWRITE_ENDPOINT",
            help="OpenAI-compatible server for --rewrite.",
            show_default=False,
        ),
    ] = None,
    rewrite_api_model: Annotated[
        str | None,
        typer.Option("--rewrite-api-model", help="Served model name for --rewrite.", show_default=False),
    ] = None,
    rewrite_model: Annotated[
        str | None,
        typer.Option(
            "--rewrite-model", help="Local model directory for in-process vLLM rewriting.", show_default=False
        ),
    ] = None,
    device: DeviceOpt = DEFAULT_DEVICE,
    dtype: DtypeOpt = DEFAULT_DTYPE,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    json_out: JsonOpt = False,
) -> None:
    """All stages: (rewrite ->) encode -> render -> decode, stage-major (one model in memory at a time)."""
    with reported_errors():
        from render.loading import resolve_model
        from render.pipeline import RunItem, run_batch
        from render.settings import DecodeSettings, EncodeSettings

        ref = resolve_model(model)
        s = _render_settings(
            ref,
            frames,
            height,
            width,
            size,
            aspect,
            steps,
            seed,
            num_videos,
            guidance,
            shift,
            cfg_scale,
            neg_prompt,
            save_every,
            stop_at,
            device,
            dtype,
        )
        dec = DecodeSettings(
            fps=_pick(ref, "fps", fps, D.fps), format=fmt, tiling=tiling, placement=s.placement
        )
        dec.check()
        enc = EncodeSettings(text_len=_pick(ref, "text_len", text_len, E.text_len), placement=s.placement)
        enc.check()
        items, line_errors = _gather_items(prompts, prompts_file)
        rewrite_info: dict[str, Any] | None = None
        if rewrite is not None:
            from hunyuan_cli.rewrite_bridge import rewrite_items

            items, more_errors, rewrite_info = rewrite_items(
                items, rewrite, rewrite_endpoint, rewrite_api_model, rewrite_model, workdir, json_out
            )
            line_errors += more_errors
        _quiet_libraries()
        _announce_model(ref, json_out, [it.prompt for it in items])
        _report_line_errors(line_errors)
        run_items = [RunItem(it.prompt, it.source, dict(it.overrides), it.original_prompt) for it in items]
        with RichProgress(not json_out) as progress:
            report = run_batch(
                run_items, ref, enc, s, dec, workdir, resume=resume, use_cache=not no_cache, progress=progress
            )
        rendered = sum(1 for v in report.videos if v.status in ("done", "stopped"))
        summary = {
            "encodes": report.encodes,
            "cache_hits": report.cache_hits,
            "total": len(report.videos),
            "made": sum(1 for v in report.videos if v.status == "done"),
            "already_done": sum(1 for v in report.videos if v.status == "skipped"),
            "failed": len(report.failed) + len(line_errors),
        }
        if json_out:
            out = {"command": "run", "videos": [v.as_json() for v in report.videos], **summary}
            if rewrite_info is not None:
                out["rewrite"] = rewrite_info
            emit_json(out)
        else:
            for v in report.videos:
                if v.video is not None and v.status != "failed":
                    typer.echo(f"{'preview ' if v.preview else ''}{v.video}")
            if rendered == 0 and summary["already_done"] == len(report.videos) and report.videos:
                typer.echo(f"nothing to do: all {len(report.videos)} videos already exist in {workdir}")
            typer.echo(
                f"{summary['made']} made, {summary['already_done']} already done, {summary['failed']} failed; "
                f"encodes: {report.encodes}, cache hits: {report.cache_hits}"
            )
        _finish(len(report.videos), report.failed, line_errors)
