"""The gallery: every video in the work directory with its provenance, newest first, and the settings that make
it again (the page's "reuse" and "continue" buttons post them back).

A video's manifest (`<video>.json`, written by the decode stage) holds the render's manifest, which holds the
sampling settings and the seed; the text length comes from the embeddings' header. Together they give the same
content keys, so "reuse" with the same seed finds the video made, and "continue" on a preview (a render stopped
at `stop_at`) finds its checkpoint and renders only the remaining steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from render.core.errors import HyvError
from render.files.artifacts import read_manifest

MAX_VIDEOS = 200
SAMPLING = ("frames", "height", "width", "steps", "guidance", "shift", "cfg_scale", "sr")


def videos(workdir: Path, limit: int = MAX_VIDEOS) -> list[dict[str, Any]]:
    folder = workdir / "videos"
    if not folder.is_dir():
        return []
    found = sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)
    out = []
    for path in found[:limit]:
        entry = describe(path)
        if entry is not None:
            out.append(entry)
    return out


def describe(video: Path) -> dict[str, Any] | None:
    """A gallery entry, or None while its manifest is not written yet (a video being made)."""
    side = video.with_name(video.name + ".json")
    try:
        m = json.loads(side.read_text())
        stat = video.stat()
    except (OSError, json.JSONDecodeError):
        return None
    r = m.get("render", {})
    sampling = r.get("sampling", {})
    settings: dict[str, Any] = {"prompt": m.get("prompt"), "seed": m.get("seed"), "fps": m.get("fps")}
    settings |= {k: sampling[k] for k in SAMPLING if k in sampling}
    if sampling.get("cfg_scale", 1.0) > 1.0 and sampling.get("neg_prompt") is not None:
        settings["neg_prompt"] = sampling["neg_prompt"]
    text_len = _text_len(r)
    if text_len is not None:
        settings["text_len"] = text_len
    url = "/files/videos/" + quote(video.name)
    return {
        "name": video.name,
        "video_url": url,
        "manifest_url": url + ".json",
        "prompt": m.get("prompt"),
        "original_prompt": m.get("original_prompt"),
        "seed": m.get("seed"),
        "is_preview": bool(r.get("preview")),
        "step": r.get("step"),
        "steps": sampling.get("steps"),
        "frames": m.get("frames"),
        "height": m.get("height"),
        "width": m.get("width"),
        "model": (r.get("model") or {}).get("source"),
        "render_key": r.get("render_key"),
        "created": stat.st_mtime,
        "settings": {k: v for k, v in settings.items() if v is not None},
    }


def _text_len(render_manifest: dict[str, Any]) -> int | None:
    for inp in render_manifest.get("inputs", []):
        if inp.get("kind") == "embeddings":
            try:
                _, m = read_manifest(Path(inp["path"]), "embeddings")
            except (HyvError, OSError, KeyError):
                return None
            value = m.get("text_len")
            return value if isinstance(value, int) else None
    return None
