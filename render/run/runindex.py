"""The run index: which video a `run` of one (item, seed) made, so that re-running a finished batch finds that
nothing is to be done without importing torch or loading a tokenizer (well under a second).

The key hashes what decides the video before any model is touched: the weights identity of every component,
the prompt and item name, the resolved settings, the placement as given and the engine's extras. An entry is
trusted only while the video still has its manifest and the bytes that manifest recorded, its latents and
embeddings still exist, and the device it was rendered on is the one "auto" would pick now; otherwise the
normal path runs (and re-checks everything).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from render.core.errors import SettingsError
from render.core.fsutil import dumps, write_text_atomic
from render.core.hashing import file_sha256, key_of, tree_sha256
from render.core.items import Item, Outcome, Report
from render.core.settings import RenderSettings, Settings
from render.files.workdir import Workdir
from render.run.session import Session

KEY_VERSION = "run1"


def run_key(engine: Session, item: Item, s: RenderSettings, settings: Settings) -> str:
    """s: the settings of one video (its seed). An item's first frame counts by its bytes (OSError when it cannot
    be read: the normal path then reports it)."""
    components = engine.components()
    decode = asdict(settings.decode)
    image = {"image": file_sha256(item.image)} if item.image is not None else {}
    return key_of(
        KEY_VERSION,
        {
            **image,
            "model": engine.identity(*components),
            "prompt": item.prompt,
            "name": item.name,
            "output": str(item.output) if item.output else None,
            "text": settings.encode.text_record(),
            "sampling": s.sampling_record(),
            "seed": s.seed,
            "decode": decode,
            "placement": [asdict(settings.encode.placement), asdict(s.placement)],
            "calibration": key_of("cal", engine.calibration()) if s.cache != "none" else None,
            **engine.sampling_extras(),
            **_upscale_record(engine, settings),
        },
    )


def _upscale_record(engine: Session, settings: Settings) -> dict[str, Any]:
    """With --sr: the target and the SR model's folder (its weights are identified when it runs); nothing without
    (the keys of runs without super-resolution stay what they were)."""
    target = settings.upscale.sr
    if target is None:
        return {}
    return {"sr": target, "sr_model": str(engine.spec.sr_model) if engine.spec.sr_model else None}


def lookup(engine: Session, items: list[Item], settings: Settings, wd: Workdir) -> Report | None:
    """A report of "skipped" outcomes when every video of every item is already made and whole, else None."""
    if settings.render.stop_at is not None:
        return None
    report = Report()
    for item in items:
        if item.prompt is None:
            return None
        try:
            s = settings.render.with_overrides(item.overrides)
        except SettingsError:
            return None
        for v in s.videos():
            try:
                key = run_key(engine, item, v, settings)
            except OSError:
                return None
            out = _valid_entry(wd.index(key), v)
            if out is None:
                return None
            out.item, out.prompt = item, item.prompt
            report.outcomes.append(out)
    return report


def record(engine: Session, report: Report, settings: Settings, wd: Workdir) -> None:
    """Remember the videos this run made or found, for the next no-op re-run."""
    for out in report.outcomes:
        if out.status not in ("done", "skipped") or out.video is None or out.item.prompt is None:
            continue
        s = settings.render.with_overrides(out.item.overrides)
        video = next((v for v in s.videos() if v.seed == out.seed), None)
        if video is None:
            continue
        entry = {"video": str(out.video), "latents": str(out.latents), "embeddings": str(out.embeddings)}
        write_text_atomic(wd.index(run_key(engine, out.item, video, settings)), dumps(entry))


def _valid_entry(path: Path, s: RenderSettings) -> Outcome | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        video, latents, embeddings = (Path(entry[k]) for k in ("video", "latents", "embeddings"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (latents.is_file() and embeddings.is_file() and video.exists()):
        return None
    m = _manifest(video)
    if m is None or not isinstance(m.get("video"), dict) or m["video"].get("sha256") != tree_sha256(video):
        return None
    rendered_on = str((m.get("render") or {}).get("device", "")).split(":")[0]
    if rendered_on != auto_device_guess(s.placement.device):
        return None
    return Outcome(
        Item(), seed=s.seed, status="skipped", step=s.steps, embeddings=embeddings, latents=latents,
        video=video, manifest=Workdir.sidecar(video), path=video,
    )  # fmt: skip


def _manifest(video: Path) -> dict[str, Any] | None:
    try:
        m = json.loads(Workdir.sidecar(video).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def auto_device_guess(device: str) -> str:
    """The device type a placement names; for "auto", a guess made without importing torch: cuda when an NVIDIA
    driver is loaded and not hidden by CUDA_VISIBLE_DEVICES. A wrong guess only sends the run the normal way."""
    if device != "auto":
        return device.split(":")[0]
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1")
    return "cuda" if Path("/proc/driver/nvidia/version").exists() and not hidden else "cpu"
