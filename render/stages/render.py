"""Stage 2: embeddings -> latents, one artifact per (prompt, seed), with resumable checkpoints and item locks.

The compute is `render.sampling.sample.denoise` (a pure loop) on the inputs the model's family builds from the
embeddings (`Family.step_inputs`); this module does the bookkeeping around it: the render key (a content hash of
everything that changes the latents), skipping what is done, item locks, checkpoints every --save-every steps, a
preview at --stop-at, and per-item failures. Paths come from `render.files.workdir`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import (
    ArtifactError,
    HyvError,
    IncompatibleError,
    NonFiniteError,
    UsageError,
    out_of_memory,
)
from render.core.fsutil import remove_leftovers
from render.core.hashing import file_sha256, key_of
from render.core.items import Outcome
from render.core.naming import artifact_stem
from render.core.placement import dtype_name, release_memory
from render.core.progress import Progress
from render.core.settings import Placement, RenderSettings, latent_shape
from render.files.artifacts import is_valid, read_artifact, read_header, read_manifest, write_artifact
from render.files.manifest import StageMeter, versions
from render.files.workdir import Workdir
from render.model.family import Family
from render.model.loading import Loaded

KEY_VERSION = "lat1"


@dataclass
class RenderJob:
    embeddings: Path
    settings: RenderSettings  # of one video: its seed is this video's
    label: str  # file-name label (the prompt or the item's name)
    out: Outcome  # receives latents, step, checkpoint, preview, status, error
    neg_embeddings: Path | None = None  # required when settings.cfg_scale > 1
    image: Path | None = None  # image-to-video: the first frame's artifact (render.stages.images)


@dataclass(frozen=True)
class DiTInfo:
    """What the render stage knows of the model before loading any weight: configs and identities."""

    source: str
    config: dict[str, Any]  # transformer/config.json
    identity: str  # weights identity of transformer + scheduler
    channels: int  # the VAE's latent channels: those of the noise and the latents artifact
    t_ratio: int  # VAE temporal compression
    s_ratio: int  # VAE spatial compression

    def latent_shape(self, s: RenderSettings) -> tuple[int, int, int, int, int]:
        """[B=1, C, T_lat, H / s, W / s] of one video of `s`."""
        return latent_shape(s.frames, s.height, s.width, (self.channels, self.t_ratio, self.s_ratio))


@dataclass
class RenderContext:
    """What the render stage needs of the engine: the model's facts, its family, and loaders that load on first
    use (a batch whose latents all exist loads nothing)."""

    info: DiTInfo
    family: Family
    dit: Callable[[Placement], Loaded]  # the DiT, loaded for this placement
    scheduler: Callable[[float], Any]  # a fresh scheduler with this shift
    prepare: Callable[[Loaded, RenderSettings], None]  # the render's speed settings applied to the DiT
    extras: dict[str, Any]  # what the engine adds to every render key and manifest (step cache, weights)
    tick: Callable[[int, Any], None] | None = None  # told each step's timestep (hooks that follow it read it)
    attention_kwargs: dict[str, Any] | None = None
    preload: Callable[[], None] = lambda: None

    def check_embeddings(self, path: Path, manifest: dict[str, Any], frames: int) -> None:
        _, tensors = read_header(path)
        lacking = [t for t in self.family.embedding_tensors if t not in tensors]
        if lacking:
            raise IncompatibleError(
                f"{path} holds no {', '.join(lacking)}: not embeddings of a {self.family.name} model; re-encode "
                f"with the same --model"
            )
        problem = self.family.check_embeddings(self.info.config, self.info.source, manifest, frames)
        if problem is not None:
            raise IncompatibleError(f"{path} {problem}")


@dataclass
class _Planned:
    job: RenderJob
    key: str
    manifest: dict[str, Any]  # of the embeddings
    inputs: list[dict[str, Any]]  # provenance: the input artifacts and their hashes


def render_jobs(
    ctx: RenderContext, jobs: list[RenderJob], workdir: Workdir, *, resume: bool, progress: Progress
) -> None:
    """Render every job not already rendered (a valid final artifact is checked, not assumed); results go into
    each job's outcome. Items another process holds are done last, after waiting for its lock."""
    if not jobs:
        return
    progress.stage("render", len(jobs))
    ctx.preload()
    meter = StageMeter.start()
    planned: list[_Planned] = []
    for job in jobs:
        try:
            planned.append(_plan(ctx, job, workdir))
        except UsageError:
            raise
        except HyvError as exc:
            _fail(job, str(exc), progress)
    deferred: list[_Planned] = []
    for wait, todo in ((False, planned), (True, deferred)):
        for p in todo:
            out = p.job.out
            assert out.latents is not None
            if _skip_if_done(p.job, progress):
                continue
            with workdir.item_lock(out.latents.name, wait=wait) as held:
                if not held:
                    deferred.append(p)
                    continue
                if _skip_if_done(p.job, progress):  # finished by the other process meanwhile
                    continue
                try:
                    _render_one(ctx, p, resume, meter, progress)
                    progress.item(out.status, p.job.label)
                except (UsageError, KeyboardInterrupt):
                    raise
                except HyvError as exc:
                    _fail(p.job, str(exc), progress)
                except Exception as exc:
                    oom = out_of_memory(exc)
                    if oom is None:
                        raise
                    release_memory()
                    _fail(p.job, str(oom), progress)


def _skip_if_done(job: RenderJob, progress: Progress) -> bool:
    out = job.out
    assert out.latents is not None
    if not is_valid(out.latents, "latents"):
        return False
    out.status, out.step = "skipped", job.settings.steps
    progress.item("skipped", job.label)
    return True


def _fail(job: RenderJob, message: str, progress: Progress) -> None:
    job.out.fail(message)
    job.out.latents = None
    progress.item("failed", job.label)


def _plan(ctx: RenderContext, job: RenderJob, workdir: Workdir) -> _Planned:
    """Check the inputs and compute the render key from their headers; the tensors load later, one item at a time
    (a batch of hundreds does not hold every embedding in memory)."""
    s = job.settings
    _, emb_manifest = read_manifest(job.embeddings, "embeddings")
    ctx.check_embeddings(job.embeddings, emb_manifest, s.frames)
    inputs: list[dict[str, Any]] = [
        {
            "kind": "embeddings",
            "path": str(job.embeddings),
            "sha256": file_sha256(job.embeddings),
            "cache_key": emb_manifest.get("cache_key"),  # where `hyv upscale` finds it when the file is gone
        }
    ]
    neg_key = None
    if s.negative_prompt is not None:
        if job.neg_embeddings is None:
            raise UsageError("cfg-scale > 1 needs embeddings of the negative prompt")
        _, neg_manifest = read_manifest(job.neg_embeddings, "embeddings")
        ctx.check_embeddings(job.neg_embeddings, neg_manifest, s.frames)
        neg_key = neg_manifest.get("cache_key")
        inputs.append(
            {
                "kind": "neg_embeddings",
                "path": str(job.neg_embeddings),
                "sha256": file_sha256(job.neg_embeddings),
            }
        )
    image_key = None
    if job.image is not None:
        _, image_manifest = read_manifest(job.image, "image")
        if (image_manifest.get("height"), image_manifest.get("width")) != (s.height, s.width):
            raise IncompatibleError(
                f"{job.image} frames the image for {image_manifest.get('height')}x{image_manifest.get('width')}, "
                f"the render is {s.height}x{s.width}; re-encode with the same size"
            )
        image_key = image_manifest.get("cache_key")
        inputs.append({"kind": "image", "path": str(job.image), "sha256": file_sha256(job.image)})
    record = {
        "embeddings": emb_manifest.get("cache_key"),
        "neg": neg_key,
        "dit": ctx.info.identity,
        "sampling": s.sampling_record(),
        "seed": s.seed,
        "dtype": dtype_name(s.placement, "render"),
        **ctx.extras,
    }
    key = key_of(KEY_VERSION, {**record, "image": image_key} if image_key is not None else record)
    job.out.seed = s.seed
    job.out.prompt = emb_manifest.get("prompt")
    job.out.latents = workdir.latents(artifact_stem(job.label, key, f"seed{s.seed}"))
    return _Planned(job, key, emb_manifest, inputs)


def _render_one(ctx: RenderContext, p: _Planned, resume: bool, meter: StageMeter, progress: Progress) -> None:
    import torch

    from render.sampling.sample import denoise, initial_noise, set_schedule

    info, job, out, s = ctx.info, p.job, p.job.out, p.job.settings
    assert out.latents is not None
    ckpt, preview = Workdir.checkpoint(out.latents), Workdir.preview(out.latents)
    for final in (out.latents, ckpt, preview):  # this item's lock is held: no other writer is at work
        remove_leftovers(final)
    dit = ctx.dit(s.placement)
    ctx.prepare(dit, s)
    scheduler = ctx.scheduler(s.shift)
    set_schedule(scheduler, s.steps, dit.device)
    # A checkpoint of this very render (same key) is always continued from: re-running an interrupted command
    # loses no step. --resume also carries a render stopped at --stop-at past its stop point.
    start, latents = _load_checkpoint(ckpt, p.key, dit.device) if ckpt.exists() else (0, None)
    end = s.steps if s.stop_at is None or (resume and start >= s.stop_at) else s.stop_at
    if latents is not None and start >= end:
        out.status, out.step, out.checkpoint = "stopped", start, ckpt
        out.preview = preview if preview.exists() else None
        return
    if latents is not None:
        progress.warn(f"{job.label[:50]!r} (seed {s.seed}): continuing from the checkpoint at step {start}")
    cond = read_artifact(job.embeddings, "embeddings").tensors
    uncond = None
    if job.neg_embeddings is not None and s.negative_prompt is not None:
        uncond = read_artifact(job.neg_embeddings, "embeddings").tensors
    image = read_artifact(job.image, "image").tensors if job.image is not None else None
    inputs = ctx.family.step_inputs(cond, uncond, s, s.attention != "masked", info.config, image)
    if latents is None:
        noise_dtype = dit.module.dtype if ctx.family.noise_in_dit_dtype else torch.float32
        latents = initial_noise(info.latent_shape(s), s.seed, dit.device, noise_dtype)  # [1, C, T, H, W]
        if inputs.start is not None:
            latents = inputs.start(latents)
    speed_record: dict[str, Any] = {"attention": s.attention, "cache": s.cache, "compile": s.compile}
    if start and s.cache != "none":  # a step cache's state is not kept in checkpoints
        speed_record["cache_state"] = f"rebuilt at step {start}: that step was computed in full"
    base = {
        "stage": "render",
        "prompt": p.manifest.get("prompt"),
        "original_prompt": p.manifest.get("original_prompt"),
        "seed": s.seed,
        "sampling": {**s.sampling_record(), **ctx.extras},
        "render_key": p.key,
        "inputs": p.inputs,
        "model": {
            "source": info.source,
            "identity": info.identity,
            "dtype": str(dit.dtype).removeprefix("torch."),
            "text_dim": info.config.get("text_embed_dim"),
        },
        "latent_shape": list(info.latent_shape(s)),
        **({"dropped_frames": drop} if (drop := ctx.family.dropped_frames(info.config)) else {}),
        "speed": speed_record,
        "device": str(dit.device),
        "versions": versions(),
    }
    progress.steps(end - start, job.label)
    last_x0: list[Any] = [None]

    def on_step(i: int, lat: Any, x0: Any) -> None:
        progress.step()
        last_x0[0] = x0
        done = i + 1
        if s.save_every and done % s.save_every == 0 and done < s.steps:
            if not bool(torch.isfinite(lat).all()):  # never keep a checkpoint a resume would carry on from
                raise NonFiniteError(f"NaN or Inf in the latents at step {done}; nothing was kept")
            _save_checkpoint(ckpt, lat, done, base, meter)

    latents = denoise(
        dit.module,
        scheduler,
        latents,
        inputs,
        cfg_scale=s.cfg_scale,
        start=start,
        end=end,
        attention_kwargs=ctx.attention_kwargs,
        on_step=on_step,
        before_step=ctx.tick,
    )
    out.rendered = True
    if not bool(torch.isfinite(latents).all()):
        raise NonFiniteError(
            f"NaN or Inf in the latents of {job.label[:60]!r} (seed {s.seed}); nothing was written. "
            "On a GPU try --dtype float32 or bfloat16"
        )
    if end < s.steps:  # a preview: keep the checkpoint and a decodable x0 prediction
        _save_checkpoint(ckpt, latents, end, base, meter)
        if last_x0[0] is not None:
            write_artifact(
                preview,
                "latents",
                {"latents": last_x0[0]},
                {**base, "preview": True, "step": end, **meter.record()},
            )
            out.preview = preview
        out.status, out.step, out.checkpoint = "stopped", end, ckpt
        return
    write_artifact(
        out.latents,
        "latents",
        {"latents": latents},
        {**base, "step": s.steps, "resumed_from": start, **meter.record()},
    )
    for leftover in (ckpt, preview):
        leftover.unlink(missing_ok=True)
    out.status, out.step = "done", s.steps


def _save_checkpoint(path: Path, latents: Any, step: int, base: dict[str, Any], meter: StageMeter) -> None:
    manifest = {
        **base,
        "stage": "render-checkpoint",
        "step": step,
        "rng": "none after the initial noise (Euler ODE)",
        **meter.record(),
    }
    write_artifact(path, "checkpoint", {"latents": latents}, manifest)


def _load_checkpoint(path: Path, key: str, device: Any) -> tuple[int, Any]:
    try:
        _, manifest = read_manifest(path, "checkpoint")
    except ArtifactError:
        return 0, None  # a corrupt checkpoint is ignored: start over
    if manifest.get("render_key") != key:
        return 0, None  # made with other settings
    ck = read_artifact(path, "checkpoint")
    return int(manifest["step"]), ck.tensors["latents"].to(device)
