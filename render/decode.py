"""Stage 3: latents -> video (mp4 or a folder of PNG frames), with its manifest beside it (`<video>.json`).

decode = vae.decode(latents / scaling_factor), then (x / 2 + 0.5).clamp(0, 1), as diffusers' pipeline does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.artifacts import read_artifact
from render.errors import ArtifactError, HyvError, IncompatibleError, NonFiniteError, UsageError
from render.fsutil import write_text_atomic
from render.hashing import weights_identity
from render.loading import ModelRef, check_components, load_vae, release_memory
from render.manifest import StageMeter, versions
from render.progress import NullProgress, Progress
from render.settings import DecodeSettings

MIN_TILE = 64  # pixels: the smallest spatial tile tried when backing off after an out-of-memory error


@dataclass(frozen=True)
class DecodeJob:
    latents: Path
    out: Path | None = None  # default: workdir/videos/<latents stem>.mp4 (or a folder for png)


@dataclass
class DecodeResult:
    job: DecodeJob
    path: Path | None = None
    manifest_path: Path | None = None
    status: str = "pending"  # done | skipped | failed
    error: str | None = None


def output_path(job: DecodeJob, workdir: Path, settings: DecodeSettings) -> Path:
    if job.out is not None:
        return job.out
    stem = job.latents.name.removesuffix(".safetensors")
    return workdir / "videos" / (f"{stem}.mp4" if settings.format == "mp4" else stem)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class VAEStage:
    def __init__(self, model: ModelRef, settings: DecodeSettings) -> None:
        import imageio_ffmpeg  # noqa: F401
        from diffusers import AutoencoderKLHunyuanVideo  # noqa: F401

        check_components(model, "decode")
        self.model, self.settings = model, settings
        self.config = model.config("vae")
        self.identity = weights_identity(model.component("vae"))
        self._vae: Any = None
        self.device: Any = None

    @property
    def vae(self) -> Any:
        if self._vae is None:
            self._vae, self.device, _ = load_vae(self.model, self.settings.placement)
            if self.settings.tiling:
                self._vae.enable_tiling()  # acts only on videos larger than one tile
        return self._vae

    def close(self) -> None:
        self._vae = None
        release_memory()

    def decode(self, latents: Any) -> Any:
        """latents [1, C, T, h, w] -> uint8 frames [F, H, W, 3], backing off to smaller tiles on OOM."""
        import torch

        vae = self.vae
        z = latents.to(device=self.device, dtype=vae.dtype) / vae.config.scaling_factor
        while True:
            try:
                with torch.inference_mode():
                    x = vae.decode(z, return_dict=False)[0]  # [1, 3, F, H, W] in [-1, 1]
                break
            except torch.OutOfMemoryError:
                if not self.settings.tiling or vae.tile_sample_min_height // 2 < MIN_TILE:
                    raise
                vae.tile_sample_min_height //= 2
                vae.tile_sample_min_width //= 2
                vae.tile_sample_stride_height = vae.tile_sample_min_height * 3 // 4
                vae.tile_sample_stride_width = vae.tile_sample_min_width * 3 // 4
                release_memory()
        x = (x.float() / 2 + 0.5).clamp(0, 1)
        frames = (x[0].permute(1, 2, 3, 0) * 255).round().to(torch.uint8)  # [F, H, W, 3]
        return frames.cpu().numpy()


def is_decoded(path: Path, latents_sha: str, settings: DecodeSettings) -> bool:
    """A finished video: the file and its manifest exist, and the manifest names these latents and settings."""
    side = sidecar(path)
    if not path.exists() or not side.is_file():
        return False
    try:
        m = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    same = m.get("inputs", [{}])[0].get("sha256") == latents_sha and m.get("format") == settings.format
    if not same:
        return False
    if settings.format == "png":
        return path.is_dir() and len(list(path.glob("*.png"))) == m.get("frames")
    return path.stat().st_size > 0


def decode_jobs(
    jobs: list[DecodeJob],
    model: ModelRef,
    settings: DecodeSettings,
    workdir: Path,
    *,
    progress: Progress | None = None,
    stage: VAEStage | None = None,
) -> list[DecodeResult]:
    progress = progress or NullProgress()
    settings.check()
    own = stage is None
    st = stage or VAEStage(model, settings)
    results = [DecodeResult(job=j) for j in jobs]
    progress.stage("decode", len(jobs))
    meter = StageMeter.start()
    try:
        for r in results:
            try:
                _decode_one(st, r, workdir, settings, meter, progress)
            except (UsageError, KeyboardInterrupt):
                raise
            except HyvError as exc:
                r.status, r.error, r.path = "failed", str(exc), None
                progress.item("failed", r.job.latents.name)
    finally:
        if own:
            st.close()
    return results


def _decode_one(
    st: VAEStage,
    r: DecodeResult,
    workdir: Path,
    settings: DecodeSettings,
    meter: StageMeter,
    progress: Progress,
) -> None:
    from filelock import FileLock

    from render.fsutil import lock_path

    art = read_artifact(r.job.latents, "latents")
    sha = art.sha256
    out = output_path(r.job, workdir, settings)
    r.path, r.manifest_path = out, sidecar(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Another process decoding the same latents holds the lock; wait for it, then find the video done.
    with FileLock(str(lock_path(workdir, out.name))):
        if is_decoded(out, sha, settings):
            r.status = "skipped"
            progress.item("skipped", out.name)
            return
        _write_video(st, r, art, sha, out, settings, meter, progress)


def _write_video(
    st: VAEStage,
    r: DecodeResult,
    art: Any,
    sha: str,
    out: Path,
    settings: DecodeSettings,
    meter: StageMeter,
    progress: Progress,
) -> None:
    import torch

    from render.video import write_mp4, write_png_folder

    lat = art.tensors["latents"]  # [1, C, T, h, w]
    want_c = int(st.config.get("latent_channels", 16))
    if lat.ndim != 5 or lat.shape[0] != 1 or lat.shape[1] != want_c:
        raise IncompatibleError(
            f"{r.job.latents} holds latents of shape {list(lat.shape)}, but the VAE of {st.model.source} takes "
            f"[1, {want_c}, T, h, w]; decode with the model that rendered them"
        )
    if not bool(torch.isfinite(lat).all()):
        raise NonFiniteError(f"{r.job.latents} holds NaN or Inf latents; re-render it")
    progress.steps(1, out.name)
    frames = st.decode(lat)  # [F, H, W, 3] uint8
    progress.step()
    if settings.format == "mp4":
        write_mp4(out, frames, settings.fps, settings.crf)
    else:
        write_png_folder(out, frames)
    manifest = {
        "stage": "decode",
        "prompt": art.manifest.get("prompt"),
        "original_prompt": art.manifest.get("original_prompt"),
        "seed": art.manifest.get("seed"),
        "inputs": [{"kind": "latents", "path": str(art.path), "sha256": sha}],
        "format": settings.format,
        "fps": settings.fps,
        "crf": settings.crf if settings.format == "mp4" else None,
        "frames": int(frames.shape[0]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "tiling": settings.tiling,
        "model": {"source": st.model.source, "vae_identity": st.identity},
        "device": str(st.device),
        "versions": versions(),
        "render": art.manifest,
        **meter.record(),
    }
    write_text_atomic(sidecar(out), json.dumps(manifest, indent=2, ensure_ascii=False))
    r.status = "done"
    progress.item("done", out.name)


def check_latents_file(path: Path) -> None:
    """Raise ArtifactError early for a file that is not latents (before any model loads)."""
    from render.artifacts import read_manifest

    kind, _ = read_manifest(path)
    if kind != "latents":
        raise ArtifactError(f"{path} holds {kind}, not latents; `hyv decode` takes latents from `hyv render`")
