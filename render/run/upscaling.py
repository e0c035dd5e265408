"""Super-resolution in `run` and `upscale` (render.run.pipeline): the checks made before any work, and the stage with
its model's lifetime (freed after it under the default policy, as every stage's)."""

from __future__ import annotations

from dataclasses import replace

from render.core.errors import SettingsError, UsageError
from render.core.progress import Progress
from render.core.settings import Settings
from render.files.workdir import Workdir
from render.run.session import Session
from render.stages.upscale import UpscaleJob, upscale_jobs


def refuse_parallel(engine: Session) -> None:
    if engine.parallel is not None:
        raise UsageError("super-resolution runs in one process: leave out --parallel (or upscale afterwards)")


def check_upscale(engine: Session, sizes: list[tuple[int, int]], settings: Settings) -> None:
    """With --sr: the SR model is there and every video's (height, width) has a bucket (else one line, before any
    work)."""
    target = settings.upscale.sr
    if target is None:
        return
    refuse_parallel(engine)
    engine.require_upscaler(target)
    if engine.upscaler_info(target).facts.get("decode_tiling") == "required" and not settings.decode.tiling:
        raise SettingsError(f"--sr {target} videos are decoded with VAE tiling (see `hyv plan`); leave out --no-tiling")
    for s in dict.fromkeys(sizes):
        engine.upscaled_size(target, *s)


def upscale_stage(engine: Session, jobs: list[UpscaleJob], settings: Settings, wd: Workdir, progress: Progress) -> None:
    """Every job's latents upscaled to settings.upscale.sr; the SR model is freed after the stage (the policy's)."""
    target = settings.upscale.sr
    if not jobs or target is None:
        return
    s = engine.concrete(replace(settings.render, cache="none", cache_quality=None))  # no step cache on 6-8 steps
    try:
        upscale_jobs(engine.upscale_context(target), jobs, s, wd, progress=progress)
    finally:
        engine.stage_done("upscale")
