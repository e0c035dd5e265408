"""Super-resolution in `run` and `upscale` (render.run.pipeline): the checks made before any work, and the stage with
its model's lifetime (freed after it under the default policy, as every stage's)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from render.core.errors import SettingsError, UsageError
from render.core.items import Outcome, Report
from render.core.progress import Progress
from render.core.settings import Settings
from render.files.workdir import Workdir
from render.run.session import Session
from render.run.spec import RunRequest, begin
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
    jobs = first_frames(engine, jobs, target, settings, wd, progress)
    try:
        upscale_jobs(engine.upscale_context(target), jobs, s, wd, progress=progress)
    finally:
        engine.stage_done("upscale")


def upscale(engine: Session, req: RunRequest) -> Report:
    """Latents -> upscaled latents (super-resolution to `settings.upscale.sr`), one outcome per item."""
    items, settings, progress = req.items, req.settings, req.progress
    target = settings.upscale.sr
    if target is None:
        raise UsageError("no super-resolution target: give --to 720p or --to 1080p")
    check_upscale(engine, [], settings)  # the SR model there and whole
    wd, _ = begin(replace(req, use_cache=False))
    report = Report()
    jobs: list[UpscaleJob] = []
    for item in items:
        out = Outcome(item)
        report.outcomes.append(out)
        if item.latents is None:
            out.fail("nothing to upscale: the item has no latents", bad_input=True)
            continue
        jobs.append(UpscaleJob(item.latents, out, label=item.name, embeddings=item.embeddings))
    upscale_stage(engine, jobs, settings, wd, progress)
    for out in report.outcomes:
        out.path = out.latents if out.status in ("done", "skipped") else None
    return report


def first_frames(
    engine: Session, jobs: list[UpscaleJob], target: str, settings: Settings, wd: Workdir, progress: Progress
) -> list[UpscaleJob]:
    """Image-to-video videos upscale with their first frame framed for the upscaled size: each one's image artifact
    at that size, made (the image encoders load, then are freed) before the SR model loads. A video whose image is
    gone or changed fails alone; the jobs that can run are returned."""
    from render.core.errors import ArtifactError
    from render.files.artifacts import read_manifest
    from render.files.images import check_image
    from render.stages.images import ImageJob, image_jobs, plan_image
    from render.stages.upscale import first_frame_of

    if engine.family.image_encoding(engine.model) is None:
        return jobs
    todo: list[tuple[UpscaleJob, ImageJob]] = []
    kept: list[UpscaleJob] = []
    _, _, r = engine.family.vae_factors(engine.model)
    for job in jobs:
        try:
            _, manifest = read_manifest(job.latents, "latents")
            base = first_frame_of(manifest)
            if base is None:
                kept.append(job)
                continue
            _, m = read_manifest(base, "image")
            path, sha = Path(str(m["image"]["path"])), m["image"]["sha256"]
            info = check_image(path)
            if info.sha256 != sha:
                raise UsageError(f"the first frame {path} changed since {job.latents.name} was rendered")
            _, _, _, h, w = manifest["latent_shape"]
            height, width = engine.upscaled_size(target, h * r, w * r)
        except (ArtifactError, UsageError, KeyError, TypeError) as exc:
            job.out.fail(f"cannot upscale from its first frame: {exc}")
            job.out.latents = None
            continue
        image = ImageJob(info, height, width, job.label or path.stem)
        plan_image(engine.image_stage(), image, wd, settings.encode.placement)
        todo.append((job, image))
    image_jobs(engine.image_stage(), [i for _, i in todo], wd, settings.encode.placement, use_cache=True,
               progress=progress)  # fmt: skip
    for job, image in todo:
        if image.status == "failed":
            job.out.fail(f"encoding the first frame failed: {image.error}")
            job.out.latents = None
        else:
            job.image = image.path
            kept.append(job)
    return kept
