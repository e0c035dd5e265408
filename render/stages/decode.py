"""Stage 3: latents -> video (mp4 or a folder of PNG frames), with its manifest beside it (`<video>.json`).

decode = vae.decode(latents / scaling_factor), then (x / 2 + 0.5).clamp(0, 1), as diffusers' pipeline does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ArtifactError, HyvError, IncompatibleError, NonFiniteError, UsageError
from render.core.fsutil import atomic_target, dumps, remove_leftovers, write_text_atomic
from render.core.hashing import tree_sha256
from render.core.items import Outcome
from render.core.placement import release_memory
from render.core.progress import Progress
from render.core.settings import DecodeSettings, Placement
from render.files.artifacts import Artifact, read_artifact, read_manifest
from render.files.manifest import StageMeter, versions
from render.files.workdir import Workdir
from render.model.family import Family
from render.model.loading import Loaded


@dataclass
class DecodeJob:
    latents: Path
    out: Outcome  # receives video, manifest, status, error


@dataclass
class DecodeContext:
    """What the decode stage needs of the engine: the VAE (loaded on first use) and facts about the model."""

    family: Family
    source: str  # the model, as the user named it
    channels: int  # the VAE's latent channels
    vae: Callable[[Placement, bool], Loaded]  # the VAE for this placement, tiling on or off
    identity: Callable[[], str]  # the VAE's weights identity
    preload: Callable[[], None] = lambda: None


def decode_frames(
    vae: Any, device: Any, latents: Any, tiling: bool, family: Family, tiles: dict[str, Any] | None = None
) -> Any:
    """latents [1, C, T, h, w] -> uint8 frames [F, H, W, 3], backing off to smaller tiles (the family's knobs:
    spatial, then temporal) on out-of-memory down to a floor; the tile sizes used go into `tiles`."""
    import torch

    from render.core.errors import RuntimeFailure, out_of_memory

    z = latents.to(device=device, dtype=vae.dtype) / vae.config.scaling_factor
    backoffs = 0
    while True:
        try:
            with torch.inference_mode():
                x = vae.decode(z, return_dict=False)[0].cpu()  # [1, 3, F, H, W] in [-1, 1]
            break
        except (torch.OutOfMemoryError, RuntimeError, MemoryError) as exc:
            if out_of_memory(exc) is None:
                raise
            release_memory()
            if not family.smaller_tiles(vae, tiling):
                floor = family.tile_record(vae, tiling)
                raise RuntimeFailure(
                    f"out of memory decoding even with tiles of {floor.get('spatial') or 'full-frame'} px x "
                    f"{floor.get('frames', 'all')} frames; the latents are kept: decode them with `hyv decode` on "
                    "another device (--vae-device cpu)"
                ) from None
            backoffs += 1
    if tiles is not None:
        tiles.update(family.tile_record(vae, tiling, backoffs))
    return frames_from_decoded(x).numpy()


def frames_from_decoded(x: Any) -> Any:
    """VAE output [1, 3, F, H, W] in [-1, 1] -> uint8 frames [F, H, W, 3], as diffusers' pipeline scales them."""
    import torch

    x = (x.float() / 2 + 0.5).clamp(0, 1)
    return (x[0].permute(1, 2, 3, 0) * 255).round().to(torch.uint8)  # [F, H, W, 3]


def is_decoded(path: Path, latents_sha: str, settings: DecodeSettings) -> bool:
    """A finished video: its manifest names these latents and settings, and the video's bytes are the ones the
    manifest recorded (a truncated or altered video is not done)."""
    m = read_video_manifest(path)
    if m is None or not path.exists():
        return False
    inputs = m.get("inputs")
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    if first.get("sha256") != latents_sha:
        return False
    if any(m.get(k) != v for k, v in _decode_record(settings).items()):
        return False
    video = m.get("video")
    return isinstance(video, dict) and video.get("sha256") == tree_sha256(path)


def read_video_manifest(video: Path) -> dict[str, Any] | None:
    """The manifest beside a video, or None when it is missing or not a JSON object."""
    try:
        m = json.loads(Workdir.sidecar(video).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) else None


def _decode_record(settings: DecodeSettings) -> dict[str, Any]:
    """The settings that change a video's bytes, as its manifest records them."""
    mp4 = settings.format == "mp4"
    return {"format": settings.format, "fps": settings.fps, "crf": settings.crf if mp4 else None,
            "tiling": settings.tiling}  # fmt: skip


def decode_jobs(
    ctx: DecodeContext, jobs: list[DecodeJob], settings: DecodeSettings, workdir: Workdir, *, progress: Progress
) -> None:
    progress.stage("decode", len(jobs))
    ctx.preload()
    meter = StageMeter.start()
    for job in jobs:
        try:
            _decode_one(ctx, job, workdir, settings, meter, progress)
        except (UsageError, KeyboardInterrupt):
            raise
        except HyvError as exc:
            job.out.fail(str(exc))
            job.out.video = job.out.manifest = None
            progress.item("failed", job.latents.name)


def _decode_one(
    ctx: DecodeContext,
    job: DecodeJob,
    workdir: Workdir,
    settings: DecodeSettings,
    meter: StageMeter,
    progress: Progress,
) -> None:
    art = read_artifact(job.latents, "latents")
    sha = art.sha256
    out = job.out.item.output or workdir.video(job.latents, settings.format)
    job.out.video, job.out.manifest = out, Workdir.sidecar(out)
    job.out.seed = job.out.seed if job.out.seed is not None else art.manifest.get("seed")
    job.out.prompt = job.out.prompt or art.manifest.get("prompt")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Another process decoding the same latents holds the lock; wait for it, then find the video done.
    with workdir.item_lock(out.name, wait=True):
        if is_decoded(out, sha, settings):
            job.out.status = "skipped"
            progress.item("skipped", out.name)
            return
        for final in (out, Workdir.sidecar(out)):  # leftovers of a killed writer (the lock keeps others away)
            remove_leftovers(final)
        _write_video(ctx, job, art, sha, out, settings, meter, progress)


def _write_video(
    ctx: DecodeContext,
    job: DecodeJob,
    art: Artifact,
    sha: str,
    out: Path,
    settings: DecodeSettings,
    meter: StageMeter,
    progress: Progress,
) -> None:
    import torch

    from render.files.video import write_mp4, write_png_folder

    lat = art.tensors["latents"]  # [1, C, T, h, w]
    want_c = ctx.channels
    if lat.ndim != 5 or lat.shape[0] != 1 or lat.shape[1] != want_c:
        raise IncompatibleError(
            f"{job.latents} holds latents of shape {list(lat.shape)}, but the VAE of {ctx.source} takes "
            f"[1, {want_c}, T, h, w]; decode with the model that rendered them"
        )
    if not bool(torch.isfinite(lat).all()):
        raise NonFiniteError(f"{job.latents} holds NaN or Inf latents; re-render it")
    progress.steps(1, out.name)
    vae = ctx.vae(settings.placement, settings.tiling)
    tiles: dict[str, Any] = {}
    frames = decode_frames(vae.module, vae.device, lat, settings.tiling, ctx.family, tiles)  # [F, H, W, 3] uint8
    frames = frames[int(art.manifest.get("dropped_frames", 0)) :]  # e.g. an image-to-video model's given frame
    progress.step()
    manifest = {
        "stage": "decode",
        "prompt": art.manifest.get("prompt"),
        "original_prompt": art.manifest.get("original_prompt"),
        "seed": art.manifest.get("seed"),
        "inputs": [{"kind": "latents", "path": str(art.path), "sha256": sha}],
        **_decode_record(settings),
        "frames": int(frames.shape[0]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "vae_tiles": tiles,
        "model": {"source": ctx.source, "vae_identity": ctx.identity()},
        "device": str(vae.device),
        "versions": versions(),
        "render": art.manifest,
    }
    # The video is written under a temporary name, then its manifest (with the video's hash), and only then does
    # the video take its final name: a final-named video always has its manifest, and a re-run finds a video
    # that was truncated or altered afterwards (its hash no longer matches) and makes it again.
    with atomic_target(out) as tmp:
        if settings.format == "mp4":
            write_mp4(tmp, frames, settings.fps, settings.crf)
        else:
            write_png_folder(tmp, frames)
        manifest["video"] = {"sha256": tree_sha256(tmp), "bytes": _size(tmp)}
        manifest.update(meter.record())
        write_text_atomic(Workdir.sidecar(out), dumps(manifest, indent=2))
    job.out.status = "done"
    progress.item("done", out.name)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def check_output(path: Path, settings: DecodeSettings) -> None:
    """A UsageError, before any work, for an output path the video cannot take."""
    if settings.format == "mp4" and path.suffix.lower() != ".mp4":
        raise UsageError(f"-o {path}: an mp4 needs a name ending in .mp4 (or give --format png for a folder)")
    if path.is_dir() and settings.format == "mp4":
        raise UsageError(f"-o {path} is a directory; give a file name ending in .mp4")
    from render.files.workdir import writable_dir_problem

    problem = writable_dir_problem(path.parent)
    if problem is not None:
        raise UsageError(f"-o {path}: the folder {path.parent} {problem}")


def check_latents_file(path: Path, settings: DecodeSettings | None = None) -> None:
    """Raise ArtifactError early for a file that is not latents (before any model loads); a UsageError for latents
    whose manifest says they need VAE tiling (upscaled to 1080p) decoded without it."""
    kind, manifest = read_manifest(path)
    if kind != "latents":
        raise ArtifactError(f"{path} holds {kind}, not latents; `hyv decode` takes latents from `hyv render`")
    if settings is not None and not settings.tiling and manifest.get("decode_tiling") == "required":
        size = f"{manifest.get('height')}x{manifest.get('width')}"
        raise UsageError(f"{path} is {size}: decoding it needs VAE tiling (see `hyv plan`); leave out --no-tiling")
