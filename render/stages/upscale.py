"""Stage between render and decode: a video's latents -> the latents of the same video at a higher resolution
(super-resolution), one artifact per input, resumable, locked and keyed like renders.

The compute is the model family's (`Family.upscale_inputs`: its upsampler, the condition channels, its schedule)
run through the same sampling loop as renders (`render.sampling.sample.denoise`); this module does the bookkeeping:
- the text conditions: those of the embeddings artifact the latents were rendered from, found through the latents'
  manifest (its `inputs`: the recorded path while its hash matches, a copy of the same name in this work
  directory or beside the latents, the embedding cache by the embeddings' content key);
- the checks, before anything loads or is written: latents of another model family, a size the upscaler takes no
  bucket of, embeddings that do not fit the SR model: one-line errors;
- the upscale key (a content hash of the input latents, the embeddings' key, the SR weights, its target, steps and
  shift, the seed, the dtype), skipping what is done, item locks, checkpoints every --save-every steps (an
  interrupted upscale continues from its checkpoint), the manifest (the base render's manifest inside it).
The seed is the base video's (its manifest's): every random draw of the pass comes from it (the family says how).
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
from render.core.settings import EXACT_ATTENTION, Placement, RenderSettings
from render.files.artifacts import is_valid, read_artifact, read_header, read_manifest, write_artifact
from render.files.manifest import StageMeter, versions
from render.files.workdir import Workdir
from render.model.family import Family, Upscaler
from render.model.loading import Loaded

KEY_VERSION = "sr1"


@dataclass
class UpscaleJob:
    latents: Path  # the base video's latents
    out: Outcome  # receives latents (the upscaled ones), base_latents, status, error
    label: str | None = None  # file-name label (default: the item's name, else the latents' prompt)
    embeddings: Path | None = None  # the text conditions, when the caller knows them (else found, see above)
    image: Path | None = None  # image-to-video: the first frame's artifact framed for the upscaled size


@dataclass
class UpscaleContext:
    """What the upscale stage needs of the engine: the SR model's facts (found, not loaded), the size it makes, and
    a loader (the SR DiT, its upsampler in `parts["upsampler"]`), loaded on first use."""

    family: Family
    up: Upscaler
    source: str  # the base model, as the user named it
    identity: str  # weights identity of the SR model
    channels: int  # the VAE's latent channels
    s_ratio: int  # the VAE's spatial compression
    size: Callable[[int, int], tuple[int, int]]  # (H, W) in pixels of an upscaled base of height x width
    dit: Callable[[Placement], Loaded]
    prepare: Callable[[Loaded, RenderSettings], None]  # the attention kernel applied to the SR DiT
    tick: Callable[[int, Any], None] | None = None
    attention_kwargs: dict[str, Any] | None = None
    preload: Callable[[], None] = lambda: None


@dataclass
class _Planned:
    job: UpscaleJob
    key: str
    manifest: dict[str, Any]  # the base latents'
    embeddings: Path
    latent: tuple[int, int]  # (H, W) of the upscaled latents
    inputs: list[dict[str, Any]]
    seed: int


def upscale_jobs(
    ctx: UpscaleContext,
    jobs: list[UpscaleJob],
    s: RenderSettings,
    workdir: Workdir,
    *,
    progress: Progress,
) -> None:
    """Upscale every job not already upscaled (results in each job's outcome). `s`: the placement, attention kernel
    and --save-every (of the render settings). Every job is checked before the first one runs: a bad input is a
    UsageError and nothing is written."""
    if not jobs:
        return
    planned = [plan(ctx, job, s, workdir) for job in jobs]
    progress.stage("upscale", len(jobs))
    ctx.preload()
    meter = StageMeter.start()
    deferred: list[_Planned] = []
    for wait, todo in ((False, planned), (True, deferred)):
        for p in todo:
            out = p.job.out
            assert out.latents is not None
            if _skip_if_done(p, progress):
                continue
            with workdir.item_lock(out.latents.name, wait=wait) as held:
                if not held:
                    deferred.append(p)
                    continue
                if _skip_if_done(p, progress):
                    continue
                try:
                    _upscale_one(ctx, p, s, meter, progress)
                    progress.item(out.status, _label(p))
                except (UsageError, KeyboardInterrupt):
                    raise
                except HyvError as exc:
                    _fail(p, str(exc), progress)
                except Exception as exc:
                    oom = out_of_memory(exc)
                    if oom is None:
                        raise
                    release_memory()
                    _fail(p, str(oom), progress)


def _label(p: _Planned) -> str:
    return p.job.label or p.manifest.get("prompt") or p.job.latents.stem


def _skip_if_done(p: _Planned, progress: Progress) -> bool:
    out = p.job.out
    assert out.latents is not None
    if not is_valid(out.latents, "latents"):
        return False
    out.status = "skipped"
    progress.item("skipped", _label(p))
    return True


def _fail(p: _Planned, message: str, progress: Progress) -> None:
    p.job.out.fail(message)
    p.job.out.latents = None
    progress.item("failed", _label(p))


# ---------------------------------------------------------------------------------------------- checks and keys


def plan(ctx: UpscaleContext, job: UpscaleJob, s: RenderSettings, workdir: Workdir) -> _Planned:
    """Check one job's inputs (headers only: nothing loads) and name its output by its key."""
    kind, manifest = read_manifest(job.latents)
    if kind != "latents":
        raise ArtifactError(f"{job.latents} holds {kind}, not latents; `hyv upscale` takes latents from `hyv render`")
    if manifest.get("preview"):
        raise UsageError(f"{job.latents} is a preview (a render stopped at --stop-at); finish it with --resume first")
    emb = job.embeddings or find_embeddings(job.latents, manifest, workdir)
    _, tensors = read_header(emb)
    lacking = [t for t in ctx.family.embedding_tensors if t not in tensors]
    if lacking:
        raise IncompatibleError(
            f"{job.latents} was rendered from embeddings of another model family (they hold no "
            f"{', '.join(lacking)}): super-resolution here takes {ctx.family.name} latents"
        )
    _, emb_manifest = read_manifest(emb, "embeddings")
    shape = _latents_shape(job.latents)
    if len(shape) != 5 or shape[0] != 1 or shape[1] != ctx.channels:
        raise IncompatibleError(
            f"{job.latents} holds latents of shape {list(shape)}, but {ctx.source} makes [1, {ctx.channels}, T, h, w]: "
            f"latents of another model; upscale with the model that rendered them"
        )
    if job.image is None and first_frame_of(manifest) is not None:
        raise IncompatibleError(f"{job.latents} was rendered from a first frame, which the upscale needs too")
    problem = ctx.family.check_embeddings(ctx.up.config, ctx.up.source, emb_manifest, 1)
    if problem is not None:
        raise IncompatibleError(f"{emb} {problem}")
    _, _, _, h, w = shape
    r = ctx.s_ratio
    height, width = ctx.size(h * r, w * r)  # a SettingsError when there is no bucket
    seed = manifest.get("seed")
    if not isinstance(seed, int):
        raise ArtifactError(f"{job.latents} records no seed: not latents of `hyv render`")
    latents_sha, emb_sha = file_sha256(job.latents), file_sha256(emb)
    up = ctx.up
    record: dict[str, Any] = {"target": up.target, "steps": up.steps, "shift": up.shift, **up.facts}
    if s.attention not in EXACT_ATTENTION:
        record["attention"] = s.attention
    # the base latents by their own content key (a render's or an upscale's: the same wherever the file lies)
    content = manifest.get("render_key") or manifest.get("upscale_key") or latents_sha
    key = key_of(
        KEY_VERSION,
        {
            "latents": content,
            "embeddings": emb_manifest.get("cache_key") or emb_sha,
            "sr": ctx.identity,
            "upscale": record,
            "seed": seed,
            "dtype": dtype_name(s.placement, "render"),
            **({"image": read_manifest(job.image, "image")[1].get("cache_key")} if job.image is not None else {}),
        },
    )
    label = job.label or manifest.get("prompt") or job.latents.stem
    job.out.seed = seed
    job.out.prompt = job.out.prompt or manifest.get("prompt")
    job.out.base_latents = job.latents
    job.out.latents = workdir.latents(artifact_stem(label, key, f"seed{seed}-{up.target}"))
    job.out.step = up.steps
    inputs: list[dict[str, Any]] = [
        {"kind": "latents", "path": str(job.latents), "sha256": latents_sha},
        {"kind": "embeddings", "path": str(emb), "sha256": emb_sha, "cache_key": emb_manifest.get("cache_key")},
    ]
    if job.image is not None:
        inputs.append({"kind": "image", "path": str(job.image), "sha256": file_sha256(job.image)})
    return _Planned(job, key, manifest, emb, (height // r, width // r), inputs, seed)


def first_frame_of(manifest: dict[str, Any]) -> Path | None:
    """The image artifact a render's latents were made from (image-to-video), or None."""
    for i in manifest.get("inputs") or []:
        if isinstance(i, dict) and i.get("kind") == "image" and isinstance(i.get("path"), str):
            return Path(i["path"])
    return None


def _latents_shape(path: Path) -> tuple[int, ...]:
    _, tensors = read_header(path)
    entry = tensors.get("latents")
    if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
        raise ArtifactError(f"{path} holds no latents tensor")
    return tuple(int(x) for x in entry["shape"])


def find_embeddings(latents: Path, manifest: dict[str, Any], workdir: Workdir) -> Path:
    """The embeddings artifact the latents' manifest names as its input: the recorded file while its hash matches;
    else a file of the same name (embeddings are named by content) in this work directory or the one beside the
    latents, holding the same hash or the same content key; else the embedding cache's entry of that key."""
    from render.files import cache

    entries = [i for i in manifest.get("inputs") or [] if isinstance(i, dict) and i.get("kind") == "embeddings"]
    if not entries or not isinstance(entries[0].get("path"), str):
        raise ArtifactError(f"{latents} names no embeddings among its inputs: not latents of `hyv render`")
    recorded = Path(entries[0]["path"])
    sha, key = entries[0].get("sha256"), entries[0].get("cache_key")
    candidates = [recorded, workdir.root / "embeddings" / recorded.name,
                  latents.parent.parent / "embeddings" / recorded.name]  # fmt: skip
    for c in dict.fromkeys(candidates):
        if not c.is_file():
            continue
        if file_sha256(c) == sha:
            return c
        if key is not None and _key_of(c) == key:
            return c
    if key is not None and (entry := cache.entry_path(key)).is_file() and _key_of(entry) == key:
        return entry
    raise ArtifactError(
        f"the embeddings {recorded} that {latents.name} was rendered from are gone or changed; encode its prompt "
        "again (`hyv encode`, same --model and --frames) into this work directory"
    )


def _key_of(path: Path) -> str | None:
    try:
        _, m = read_manifest(path, "embeddings")
    except ArtifactError:
        return None
    key = m.get("cache_key")
    return key if isinstance(key, str) else None


# ---------------------------------------------------------------------------------------------- one upscale


def _upscale_one(ctx: UpscaleContext, p: _Planned, s: RenderSettings, meter: StageMeter, progress: Progress) -> None:
    import torch

    from render.sampling.sample import denoise

    job, out, up = p.job, p.job.out, ctx.up
    assert out.latents is not None
    ckpt = Workdir.checkpoint(out.latents)
    for final in (out.latents, ckpt):  # this item's lock is held: no other writer is at work
        remove_leftovers(final)
    dit = ctx.dit(s.placement)
    ctx.prepare(dit, s)
    lr = read_artifact(job.latents, "latents").tensors["latents"]  # [1, C, T, h, w]
    cond = read_artifact(p.embeddings, "embeddings").tensors
    image = read_artifact(job.image, "image").tensors if job.image is not None else None
    made = ctx.family.upscale_inputs(
        up, cond, lr, dit.parts["upsampler"], p.latent, p.seed, s.attention != "masked", dit.device, dit.module.dtype,
        image,
    )
    start, latents = _load_checkpoint(ckpt, p.key, dit.device) if ckpt.exists() else (0, None)
    if latents is not None:
        progress.warn(f"{_label(p)[:50]!r} (seed {p.seed}): continuing the upscale from its checkpoint at step {start}")
    else:
        latents = made.latents
    shape = [int(x) for x in made.latents.shape]
    base = {
        "stage": "upscale",
        "prompt": p.manifest.get("prompt"),
        "original_prompt": p.manifest.get("original_prompt"),
        "seed": p.seed,
        # the base video's settings (what makes it again, with --sr), then what the upscale did
        "sampling": {**(p.manifest.get("sampling") or {}), "sr": up.target},
        "upscale": {"target": up.target, "steps": up.steps, "shift": up.shift, **up.facts, **made.record},
        "upscale_key": p.key,
        "inputs": p.inputs,
        "model": {
            "source": ctx.source,
            "family": ctx.family.name,
            "sr_source": up.source,
            "sr_layout": up.layout,
            "identity": ctx.identity,
            "dtype": str(dit.dtype).removeprefix("torch."),
        },
        "latent_shape": shape,
        "height": p.latent[0] * ctx.s_ratio,
        "width": p.latent[1] * ctx.s_ratio,
        "speed": {"attention": s.attention},
        # what `hyv decode` must do with these latents (1080p: tile, else the VAE needs hundreds of GB)
        **({"decode_tiling": "required"} if up.facts.get("decode_tiling") == "required" else {}),
        "device": str(dit.device),
        "versions": versions(),
        "base": p.manifest,
    }
    progress.steps(up.steps - start, _label(p))

    def on_step(i: int, lat: Any, x0: Any) -> None:
        progress.step()
        done = i + 1
        if s.save_every and done % s.save_every == 0 and done < up.steps:
            if not bool(torch.isfinite(lat).all()):
                raise NonFiniteError(f"NaN or Inf in the upscaled latents at step {done}; nothing was kept")
            manifest = {**base, "stage": "upscale-checkpoint", "step": done, **meter.record()}
            write_artifact(ckpt, "checkpoint", {"latents": lat}, manifest)

    latents = denoise(
        dit.module,
        made.scheduler,
        latents,
        made.inputs,
        cfg_scale=1.0,
        start=start,
        end=up.steps,
        attention_kwargs=ctx.attention_kwargs,
        on_step=on_step,
        before_step=ctx.tick,
    )
    out.rendered = True
    if not bool(torch.isfinite(latents).all()):
        raise NonFiniteError(f"NaN or Inf in the upscaled latents of {_label(p)[:60]!r}; nothing was written")
    write_artifact(
        out.latents,
        "latents",
        {"latents": latents},
        {**base, "step": up.steps, "resumed_from": start, **meter.record()},
    )
    ckpt.unlink(missing_ok=True)
    out.status, out.step = "done", up.steps


def _load_checkpoint(path: Path, key: str, device: Any) -> tuple[int, Any]:
    try:
        _, manifest = read_manifest(path, "checkpoint")
    except ArtifactError:
        return 0, None  # a corrupt checkpoint is ignored: start over
    if manifest.get("upscale_key") != key:
        return 0, None
    ck = read_artifact(path, "checkpoint")
    return int(manifest["step"]), ck.tensors["latents"].to(device)
