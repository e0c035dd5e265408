"""The stage index: what `encode` and `render` made for an item as given, so that a stage command with nothing to do
answers as fast as a finished `run` does (render.run.runindex): without importing torch, loading a tokenizer or
resolving a device. `decode` needs no index: a video's manifest names its latents and settings (`decoded`).

A key hashes what decides the artifact before any model is touched: the weights identity of the stage's components,
the item's input (its prompt, or its embeddings' content key), the settings as resolved and the placement as given.
An entry is trusted only while its artifact is whole, still records the content key the entry names, and was made
on the device "auto" would pick now; otherwise the normal path runs (and re-checks everything).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from render.core.errors import HyvError
from render.core.fsutil import dumps, write_text_atomic
from render.core.hashing import file_sha256, key_of
from render.core.items import Item, Outcome, Report
from render.core.settings import RenderSettings, Settings
from render.files.artifacts import read_manifest
from render.files.workdir import Workdir
from render.run.runindex import auto_device_guess
from render.run.session import Session
from render.stages.decode import is_decoded

KEY_VERSION = "stage1"


def _text(engine: Session, item: Item, frames: int, settings: Settings) -> dict[str, Any]:
    """What decides an item's embeddings: the encoders, the prompt, its first frame's content (image-to-video), its
    template's frames, the text settings and where they were computed (as given)."""
    return {
        "encoders": engine.identity(*engine.family.stage_components["encode"]),
        "prompt": item.prompt,
        "image": file_sha256(item.image) if item.image is not None else None,
        "frames": frames,
        "text": settings.encode.text_record(),
        "placement": asdict(settings.encode.placement),
    }


def _encode_key(engine: Session, item: Item, s: RenderSettings, settings: Settings) -> str:
    return key_of(KEY_VERSION, {"stage": "encode", "label": item.label, **_text(engine, item, s.frames, settings)})


def _render_key(engine: Session, item: Item, v: RenderSettings, settings: Settings) -> str | None:
    """v: one video's settings. None when the item's input cannot be read (the normal path reports it)."""
    if item.embeddings is not None:
        try:
            _, m = read_manifest(item.embeddings, "embeddings")
        except HyvError:
            return None
        given: dict[str, Any] = {"embeddings": m.get("cache_key"), "label": item.name or m.get("prompt")}
        given["image"] = file_sha256(item.image) if item.image is not None else None
    else:
        given = {"label": item.label, **_text(engine, item, v.frames, settings)}
    return key_of(
        KEY_VERSION,
        {
            "stage": "render",
            **given,
            "dit": engine.identity(*engine.family.stage_components["render"]),
            "sampling": v.sampling_record(),
            "seed": v.seed,
            "placement": [asdict(v.placement), asdict(settings.encode.placement)],  # the DiT's, the negatives'
            "calibration": key_of("cal", engine.calibration()) if v.cache != "none" else None,
            **engine.sampling_extras(),
        },
    )


def lookup(engine: Session, stage: str, items: list[Item], settings: Settings, wd: Workdir) -> Report | None:
    """For `encode` or `render`: a report of what is already made ("cached" embeddings, "skipped" latents) when
    every item's artifacts are there and whole, else None."""
    if stage == "render" and settings.render.stop_at is not None:
        return None
    report = Report()
    for item in items:
        if item.prompt is None and (stage == "encode" or item.embeddings is None):
            return None
        if stage == "encode" and item.image is not None:  # its first frame's artifacts are checked on the full path
            return None
        try:
            s = settings.render.with_overrides(item.overrides)
            for v in s.videos() if stage == "render" else [s]:
                if stage == "render":
                    key, device = _render_key(engine, item, v, settings), v.placement.device
                else:
                    key, device = _encode_key(engine, item, s, settings), settings.encode.placement.device
                out = _valid(wd.index(key), stage, item, v, device) if key is not None else None
                if out is None:
                    return None
                report.outcomes.append(out)
        except (OSError, HyvError):  # a bad override or an unreadable image: the normal path reports it
            return None
    if stage == "encode":
        report.cache_hits = len(report.outcomes)  # as the full path counts embeddings found in the workdir
    return report


def record(engine: Session, stage: str, report: Report, settings: Settings, wd: Workdir) -> None:
    """Remember what this call made or found, for the next call with nothing to do."""
    for out in report.outcomes:
        path = out.embeddings if stage == "encode" else out.latents
        if out.status not in ("done", "cached", "skipped") or path is None or out.key is None:
            continue
        item = out.item
        if stage == "encode" and item.image is not None:
            continue
        s = settings.render.with_overrides(item.overrides)
        if stage == "encode":
            key: str | None = _encode_key(engine, item, s, settings)
        else:
            video = next((v for v in s.videos() if v.seed == out.seed), None)
            key = _render_key(engine, item, video, settings) if video is not None else None
        if key is not None:
            entry = {"path": str(path), "embeddings": str(out.embeddings), "key": out.key, "cached": out.cached}
            if stage == "render":
                try:
                    entry["render_key"] = read_manifest(path, "latents")[1].get("render_key")
                except HyvError:
                    continue
            write_text_atomic(wd.index(key), dumps(entry))


def _valid(index: Path, stage: str, item: Item, v: RenderSettings, device: str) -> Outcome | None:
    """The outcome an index entry promises, when its artifact is whole, still what the entry says it is, and was
    made on the device `device` ("auto" included) names now; else None."""
    try:
        entry = json.loads(index.read_text(encoding="utf-8"))
        path, embeddings = Path(entry["path"]), Path(entry["embeddings"])
        _, m = read_manifest(path, "embeddings" if stage == "encode" else "latents")  # whole, and ours
    except (OSError, ValueError, KeyError, TypeError, HyvError):
        return None
    if str(m.get("device", "")).split(":")[0] != auto_device_guess(device):
        return None
    if stage == "encode":
        if m.get("cache_key") != entry["key"] or m.get("prompt") != item.prompt:
            return None
        return Outcome(item, status="cached", prompt=item.prompt, embeddings=path, key=entry["key"], cached=True,
                       path=path)  # fmt: skip
    if m.get("render_key") != entry.get("render_key") or not embeddings.is_file():
        return None
    return Outcome(
        item, seed=v.seed, status="skipped", prompt=m.get("prompt"), embeddings=embeddings, key=entry["key"],
        cached=bool(entry.get("cached")), latents=path, step=v.steps, path=path,
    )  # fmt: skip


def decoded(items: list[Item], settings: Settings, wd: Workdir) -> Report | None:
    """For `decode`: a report of "skipped" outcomes when every item's video is there, whole, made from these very
    latents with these settings (what the decode stage itself checks before loading the VAE), else None."""
    report = Report()
    for item in items:
        if item.latents is None:
            return None
        video = item.output or wd.video(item.latents, settings.decode.format)
        try:
            _, m = read_manifest(item.latents, "latents")
            done = is_decoded(video, file_sha256(item.latents), settings.decode)
        except (OSError, HyvError):
            return None
        if not done:
            return None
        report.outcomes.append(
            Outcome(item, seed=m.get("seed"), status="skipped", prompt=m.get("prompt"), latents=item.latents,
                    video=video, manifest=Workdir.sidecar(video), path=video)  # fmt: skip
        )
    return report
