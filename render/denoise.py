"""Stage 2: embeddings -> latents, one artifact per (prompt, seed), with resumable checkpoints and item locks.

Files in `workdir/latents/`:
  <stem>.safetensors          the final latents [1, C, T_lat, H/8, W/8] (not divided by the VAE scaling factor)
  .checkpoints/<stem>.safetensors  the last checkpoint (latents after step k); removed when the render completes
  <stem>.preview.safetensors  at --stop-at: the predicted clean latents x0 at that step, decodable as a preview
and `workdir/.locks/<stem>.safetensors.lock`, held while a process renders the item.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from render.artifacts import is_valid, read_artifact, read_manifest, write_artifact
from render.errors import ArtifactError, HyvError, IncompatibleError, NonFiniteError, UsageError
from render.fsutil import lock_path
from render.hashing import key_of, weights_identity
from render.loading import (
    ModelRef,
    check_components,
    load_scheduler,
    load_transformer,
    out_of_memory,
    release_memory,
    resolve_placement,
    vae_factors,
)
from render.manifest import StageMeter, versions
from render.naming import artifact_stem
from render.progress import NullProgress, Progress
from render.settings import RenderSettings

KEY_VERSION = "lat1"


@dataclass(frozen=True)
class RenderJob:
    embeddings: Path
    seed: int
    settings: RenderSettings  # its `seed` and `num_videos` are ignored: one job is one video
    label: str  # file-name label (the prompt or the item's name)
    neg_embeddings: Path | None = None  # required when settings.cfg_scale > 1


@dataclass
class RenderResult:
    job: RenderJob
    path: Path | None = None
    status: str = "pending"  # done | skipped | stopped | failed
    error: str | None = None
    step: int = 0  # steps done (== steps when complete)
    preview: Path | None = None
    checkpoint: Path | None = None


@dataclass
class _Inputs:
    cond: Any
    uncond: Any
    manifest: dict[str, Any]
    inputs: list[dict[str, str]] = field(default_factory=list)


class DiTStage:
    """Loads the transformer on first use, so a batch whose latents all exist loads nothing."""

    def __init__(self, model: ModelRef, placement_settings: RenderSettings) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoTransformer3DModel  # noqa: F401
        from filelock import FileLock  # noqa: F401

        check_components(model, "render")
        self.model = model
        self.placement = placement_settings.placement
        self.config = model.config("transformer")
        self.identity = weights_identity(model.component("transformer"), model.component("scheduler"))
        self.channels, self.t_ratio, self.s_ratio = vae_factors(model)
        self._tr: Any = None
        self.device: Any = None
        _, dtype = resolve_placement(self.placement, "render")
        self.dtype_name = str(dtype).removeprefix("torch.")

    @property
    def transformer(self) -> Any:
        if self._tr is None:
            self._tr, self.device, _ = load_transformer(self.model, self.placement)
        return self._tr

    def close(self) -> None:
        self._tr = None
        release_memory()

    def latent_shape(self, s: RenderSettings) -> tuple[int, int, int, int, int]:
        return (
            1,
            self.config.get("in_channels", self.channels),
            (s.frames - 1) // self.t_ratio + 1,
            s.height // self.s_ratio,
            s.width // self.s_ratio,
        )

    def check_embeddings(self, path: Path, manifest: dict[str, Any], frames: int) -> None:
        enc = manifest.get("encoder", {})
        want_d, want_p = self.config.get("text_embed_dim"), self.config.get("pooled_projection_dim")
        if enc.get("text_dim") != want_d or enc.get("pooled_dim") != want_p:
            raise IncompatibleError(
                f"{path} was encoded with text dim {enc.get('text_dim')} / pooled {enc.get('pooled_dim')}, but the "
                f"DiT of {self.model.source} takes {want_d} / {want_p}; re-encode with the same --model"
            )
        tname = manifest.get("template", {}).get("name")
        want = "video" if frames > 1 else "image"
        if tname != want:
            raise IncompatibleError(
                f"{path} holds {tname}-template embeddings but {frames} frame(s) need the {want} template; "
                f"re-encode with --frames {frames}"
            )


def render_key(
    stage: DiTStage, emb_manifest: dict[str, Any], neg_manifest: dict[str, Any] | None, job: RenderJob
) -> str:
    return key_of(
        KEY_VERSION,
        {
            "embeddings": emb_manifest.get("cache_key"),
            "neg": (neg_manifest or {}).get("cache_key"),
            "dit": stage.identity,
            "sampling": job.settings.sampling_record(),
            "seed": job.seed,
            "dtype": stage.dtype_name,
        },
    )


def render_jobs(
    jobs: list[RenderJob],
    model: ModelRef,
    workdir: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    stage: DiTStage | None = None,
) -> list[RenderResult]:
    """Render every job not already rendered (a valid final artifact is checked, not assumed)."""
    from filelock import FileLock, Timeout

    progress = progress or NullProgress()
    if not jobs:
        return []
    for j in jobs:
        j.settings.check()
    own = stage is None
    st = stage or DiTStage(model, jobs[0].settings)
    out_dir = workdir / "latents"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [RenderResult(job=j) for j in jobs]
    progress.stage("render", len(jobs))
    meter = StageMeter.start()
    deferred: list[tuple[RenderResult, _Inputs, str]] = []
    try:
        planned: list[tuple[RenderResult, _Inputs, str]] = []
        for r in results:
            try:
                inp, key = _prepare(st, r)
            except UsageError:
                raise
            except HyvError as exc:
                _fail(r, exc, progress)
                continue
            r.path = out_dir / f"{artifact_stem(r.job.label, key, f'seed{r.job.seed}')}.safetensors"
            planned.append((r, inp, key))
        # First pass: items nobody else holds; second pass: wait for the ones another process was rendering.
        for blocking, items in ((False, planned), (True, deferred)):
            for r, inp, key in items:
                assert r.path is not None
                if is_valid(r.path, "latents"):
                    r.status, r.step = "skipped", r.job.settings.steps
                    progress.item("skipped", r.job.label)
                    continue
                lock = FileLock(str(lock_path(workdir, r.path.name)))
                try:
                    lock.acquire(timeout=-1 if blocking else 0)
                except Timeout:
                    deferred.append((r, inp, key))
                    continue
                try:
                    if is_valid(r.path, "latents"):  # finished by the other process meanwhile
                        r.status, r.step = "skipped", r.job.settings.steps
                        progress.item("skipped", r.job.label)
                        continue
                    _render_one(st, r, inp, key, resume, meter, progress)
                    progress.item("stopped" if r.status == "stopped" else "done", r.job.label)
                except (UsageError, KeyboardInterrupt):
                    raise
                except HyvError as exc:
                    _fail(r, exc, progress)
                except Exception as exc:
                    oom = out_of_memory(exc)
                    if oom is None:
                        raise
                    _fail(r, oom, progress)
                finally:
                    lock.release()
                    inp.cond = inp.uncond = None
    finally:
        if own:
            st.close()
    return results


def checkpoint_path(final: Path) -> Path:
    """Checkpoints live in `latents/.checkpoints/`, out of the way of `latents/*.safetensors` globs."""
    return final.parent / ".checkpoints" / final.name


def _fail(r: RenderResult, exc: Exception, progress: Progress) -> None:
    r.status, r.error, r.path = "failed", str(exc), None
    progress.item("failed", r.job.label)


def _prepare(st: DiTStage, r: RenderResult) -> tuple[_Inputs, str]:
    """Check the inputs and compute the render key from their headers; the tensors load later, one item at a time
    (a batch of hundreds does not hold every embedding in memory)."""
    from render.hashing import file_sha256

    s = r.job.settings
    _, emb_manifest = read_manifest(r.job.embeddings, "embeddings")
    st.check_embeddings(r.job.embeddings, emb_manifest, s.frames)
    inputs = [{"kind": "embeddings", "path": str(r.job.embeddings), "sha256": file_sha256(r.job.embeddings)}]
    neg_manifest = None
    if s.cfg_scale > 1.0:
        if r.job.neg_embeddings is None:
            raise UsageError("cfg-scale > 1 needs embeddings of the negative prompt")
        _, neg_manifest = read_manifest(r.job.neg_embeddings, "embeddings")
        st.check_embeddings(r.job.neg_embeddings, neg_manifest, s.frames)
        inputs.append(
            {
                "kind": "neg_embeddings",
                "path": str(r.job.neg_embeddings),
                "sha256": file_sha256(r.job.neg_embeddings),
            }
        )
    key = render_key(st, emb_manifest, neg_manifest, r.job)
    return _Inputs(None, None, emb_manifest, inputs), key


def _conditioning(path: Path) -> Any:
    from render.sample import Conditioning

    t = read_artifact(path, "embeddings").tensors
    # prompt_embeds [1, L, D], prompt_attention_mask [1, L], pooled_prompt_embeds [1, P]
    return Conditioning(t["prompt_embeds"], t["prompt_attention_mask"], t["pooled_prompt_embeds"])


def _render_one(
    st: DiTStage, r: RenderResult, inp: _Inputs, key: str, resume: bool, meter: StageMeter, progress: Progress
) -> None:
    import torch

    from render.sample import denoise, initial_noise, set_schedule

    assert r.path is not None
    s = r.job.settings
    ckpt = checkpoint_path(r.path)
    preview = r.path.with_name(r.path.name.replace(".safetensors", ".preview.safetensors"))
    tr = st.transformer
    device = st.device
    scheduler = load_scheduler(st.model, s.shift)
    set_schedule(scheduler, s.steps, device)
    # A checkpoint of this very render (same key) is always continued from: re-running an interrupted command
    # loses no step. --resume also carries a render stopped at --stop-at past its stop point.
    start, latents = _load_checkpoint(ckpt, key, device) if ckpt.exists() else (0, None)
    end = s.steps if s.stop_at is None or (resume and start >= s.stop_at) else s.stop_at
    if latents is not None and start >= end:
        r.status, r.step, r.checkpoint = "stopped", start, ckpt
        r.preview = preview if preview.exists() else None
        return
    if latents is not None:
        progress.warn(
            f"{r.job.label[:50]!r} (seed {r.job.seed}): continuing from the checkpoint at step {start}"
        )
    if inp.cond is None:
        inp.cond = _conditioning(r.job.embeddings)
        inp.uncond = (
            _conditioning(r.job.neg_embeddings) if r.job.neg_embeddings and s.cfg_scale > 1.0 else None
        )
    if latents is None:
        latents = initial_noise(st.latent_shape(s), r.job.seed, device)  # [1, C, T, H, W] float32
    base = {
        "stage": "render",
        "prompt": inp.manifest.get("prompt"),
        "original_prompt": inp.manifest.get("original_prompt"),
        "seed": r.job.seed,
        "sampling": s.sampling_record(),
        "render_key": key,
        "inputs": inp.inputs,
        "model": {
            "source": st.model.source,
            "identity": st.identity,
            "dtype": str(tr.dtype).removeprefix("torch."),
            "text_dim": st.config.get("text_embed_dim"),
        },
        "latent_shape": list(st.latent_shape(s)),
        "device": str(device),
        "versions": versions(),
    }
    progress.steps(end - start, r.job.label)
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
        tr,
        scheduler,
        latents,
        inp.cond,
        inp.uncond,
        guidance=s.guidance,
        cfg_scale=s.cfg_scale,
        start=start,
        end=end,
        on_step=on_step,
    )
    if not bool(torch.isfinite(latents).all()):
        raise NonFiniteError(
            f"NaN or Inf in the latents of {r.job.label[:60]!r} (seed {r.job.seed}); nothing was written. "
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
            r.preview = preview
        r.status, r.step, r.checkpoint = "stopped", end, ckpt
        return
    write_artifact(
        r.path,
        "latents",
        {"latents": latents},
        {**base, "step": s.steps, "resumed_from": start, **meter.record()},
    )
    for leftover in (ckpt, preview):
        leftover.unlink(missing_ok=True)
    r.status, r.step = "done", s.steps


def _save_checkpoint(path: Path, latents: Any, step: int, base: dict[str, Any], meter: StageMeter) -> None:
    write_artifact(
        path,
        "checkpoint",
        {"latents": latents},
        {
            **base,
            "stage": "render-checkpoint",
            "step": step,
            "rng": "none after the initial noise (Euler ODE)",
            **meter.record(),
        },
    )


def _load_checkpoint(path: Path, key: str, device: Any) -> tuple[int, Any]:
    try:
        _, manifest = read_manifest(path, "checkpoint")
    except ArtifactError:
        return 0, None  # a corrupt checkpoint is ignored: start over
    if manifest.get("render_key") != key:
        return 0, None  # made with other settings
    ck = read_artifact(path, "checkpoint")
    return int(manifest["step"]), ck.tensors["latents"].to(device)


def with_overrides(settings: RenderSettings, overrides: dict[str, Any]) -> RenderSettings:
    """Per-item settings from a .jsonl record (seed, num_videos, neg_prompt, frames, height, width, steps)."""
    keys = {"seed", "num_videos", "neg_prompt", "frames", "height", "width", "steps"}
    return replace(settings, **{k: v for k, v in overrides.items() if k in keys})
