"""Stage-major orchestration: every encode (text encoders loaded once, then freed), every render (the DiT loaded
once, then freed), every decode (the VAE). Peak memory is the largest stage, not the sum of the models."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from render.decode import DecodeJob, DecodeResult, VAEStage, decode_jobs
from render.denoise import DiTStage, RenderJob, RenderResult, render_jobs, with_overrides
from render.encode import EncodeJob, TextEncoderStage, encode_jobs
from render.errors import SettingsError
from render.loading import STAGE_COMPONENTS, ModelRef, check_components
from render.progress import NullProgress, Progress
from render.settings import DecodeSettings, EncodeSettings, RenderSettings


@dataclass(frozen=True)
class RunItem:
    prompt: str
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # per-item render settings and `name`
    original_prompt: str | None = None


@dataclass
class VideoEntry:
    prompt: str
    source: str
    seed: int
    embeddings: Path | None = None
    latents: Path | None = None
    video: Path | None = None
    status: str = "pending"  # done | skipped | stopped | failed
    error: str | None = None
    preview: bool = False
    rendered: bool = False  # this process ran the DiT for it (False: its latents were already there)

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "source": self.source,
            "seed": self.seed,
            "status": self.status,
            "embeddings": str(self.embeddings) if self.embeddings else None,
            "latents": str(self.latents) if self.latents else None,
            "video": str(self.video) if self.video else None,
            "preview": self.preview,
            "rendered": self.rendered,
            "error": self.error,
        }


@dataclass
class RunReport:
    videos: list[VideoEntry]
    encodes: int = 0
    cache_hits: int = 0
    rendered: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, message)

    @property
    def ok(self) -> bool:
        return not self.failed and all(v.status != "failed" for v in self.videos)


def run_batch(
    items: list[RunItem],
    model: ModelRef,
    enc: EncodeSettings,
    ren: RenderSettings,
    dec: DecodeSettings,
    workdir: Path,
    *,
    resume: bool = False,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> RunReport:
    progress = progress or NullProgress()
    for stage_name in STAGE_COMPONENTS:  # a missing VAE is reported before hours of rendering, not after
        check_components(model, stage_name)
    dec.check()
    # A per-item setting that cannot work (frames 10 in one .jsonl line) fails that item, not the batch.
    bad: list[tuple[RunItem, str]] = []
    good: list[RunItem] = []
    for it in items:
        try:
            with_overrides(ren, it.overrides).check()
            good.append(it)
        except SettingsError as exc:
            bad.append((it, str(exc)))
    items = good
    per_item = [with_overrides(ren, it.overrides) for it in items]

    # 1. Encode: the prompts, and the negative prompts of items with true CFG.
    te = TextEncoderStage(model, enc)
    jobs = [
        EncodeJob(it.prompt, s.frames, it.source, it.overrides.get("name"), it.original_prompt)
        for it, s in zip(items, per_item, strict=True)
    ]
    negs = sorted({(s.negative_prompt, s.frames > 1) for s in per_item if s.negative_prompt is not None})
    neg_jobs = [
        EncodeJob(p, 129 if video else 1, "negative prompt", "negative", folder="negative-embeddings")
        for p, video in negs
    ]
    try:
        enc_results = encode_jobs(
            jobs + neg_jobs, model, enc, workdir, use_cache=use_cache, progress=progress, stage=te
        )
    finally:
        te.close()
    neg_paths = {
        (j.prompt, j.frames > 1): r.path for j, r in zip(neg_jobs, enc_results[len(jobs) :], strict=True)
    }
    report = RunReport(videos=[])
    report.encodes = sum(1 for r in enc_results if not r.cached and r.error is None)
    report.cache_hits = sum(1 for r in enc_results if r.cached)

    # 2. Render every (item, seed).
    render_list: list[tuple[VideoEntry, RenderJob]] = []
    for it, s, er in zip(items, per_item, enc_results[: len(jobs)], strict=True):
        label = it.overrides.get("name") or it.prompt
        for i in range(s.num_videos):
            v = VideoEntry(it.prompt, it.source, s.seed + i, embeddings=er.path)
            report.videos.append(v)
            if er.error is not None or er.path is None:
                v.status, v.error = "failed", f"encode failed: {er.error}"
                continue
            neg = neg_paths.get((s.negative_prompt, s.frames > 1)) if s.negative_prompt is not None else None
            if s.negative_prompt is not None and neg is None:
                v.status, v.error = "failed", "encoding the negative prompt failed"
                continue
            render_list.append(
                (v, RenderJob(er.path, s.seed + i, replace(s, seed=s.seed + i, num_videos=1), label, neg))
            )
    dit = DiTStage(model, ren)
    try:
        ren_results: list[RenderResult] = render_jobs(
            [j for _, j in render_list], model, workdir, resume=resume, progress=progress, stage=dit
        )
    finally:
        dit.close()
    report.rendered = sum(1 for r in ren_results if r.status in ("done", "stopped"))

    # 3. Decode finished latents (or the previews of stopped renders).
    to_decode: list[tuple[VideoEntry, DecodeJob]] = []
    for (v, _), rr in zip(render_list, ren_results, strict=True):
        v.latents = rr.path
        v.rendered = rr.status in ("done", "stopped")
        if rr.status == "failed":
            v.status, v.error = "failed", rr.error
        elif rr.status == "stopped":
            v.status, v.preview, v.latents = "stopped", True, rr.checkpoint
            if rr.preview is not None:
                to_decode.append((v, DecodeJob(rr.preview)))
        else:
            assert rr.path is not None
            to_decode.append((v, DecodeJob(rr.path)))
    vae = VAEStage(model, dec)
    try:
        dec_results: list[DecodeResult] = decode_jobs(
            [j for _, j in to_decode], model, dec, workdir, progress=progress, stage=vae
        )
    finally:
        vae.close()
    for (v, _), dr in zip(to_decode, dec_results, strict=True):
        v.video = dr.path
        if dr.status == "failed":
            v.status, v.error = "failed", dr.error
        elif v.status != "stopped":
            v.status = "done" if dr.status == "done" else "skipped"
    for it, msg in bad:
        report.videos.append(
            VideoEntry(
                it.prompt, it.source, int(it.overrides.get("seed", ren.seed)), status="failed", error=msg
            )
        )
    report.failed = [(v.source, v.error or "") for v in report.videos if v.status == "failed"]
    return report
