"""First frames in a run (image-to-video): an item's image checked against the model (a text-to-video model takes none,
an image-to-video model needs one), read and checked once, the video's size fitted to it (the bucket nearest its
aspect ratio, unless a size was asked for), and its image job planned (its content key: the embeddings that go with
it carry that key too, so a changed image is a new item everywhere: caches, artifacts, resume, no-op re-runs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from render.core.errors import IncompatibleError, UsageError
from render.core.items import Item
from render.core.settings import RenderSettings, Settings
from render.files import cache
from render.files.artifacts import read_manifest
from render.files.images import check_image
from render.files.workdir import Workdir
from render.run.session import Session
from render.stages.images import ImageJob, image_jobs, plan_image


def first_frame(
    engine: Session, item: Item, s: RenderSettings, settings: Settings, wd: Workdir
) -> tuple[RenderSettings, ImageJob | None]:
    """The item's render settings (its size fitted to its image) and its planned image job (None: no image). A
    UsageError (the item's own bad input) for an image the model cannot take, a missing one it needs, or a file that
    is not a readable image."""
    encoding = engine.family.image_encoding(engine.model)
    if item.image is None:
        if engine.family.image_required(engine.model):
            raise UsageError(
                f"{engine.model.source} is an image-to-video model: give the first frame with --image (or an "
                "`image` column in the batch file)"
            )
        return s, None
    if encoding is None:
        raise UsageError(
            f"{engine.model.source} is a text-to-video model: it takes no --image (use an image-to-video model)"
        )
    info = check_image(item.image)
    if s.fit_image:
        height, width = encoding.size(info.width, info.height)
        s = replace(s, height=height, width=width)
        s.check()
    job = ImageJob(info, s.height, s.width, item.label)
    plan_image(engine.image_stage(), job, wd, settings.encode.placement)
    return s, job


def encode_images(
    engine: Session, jobs: list[ImageJob], settings: Settings, wd: Workdir, use_cache: bool, progress: Any
) -> None:
    """Every image job's artifact (the image encoders freed after them)."""
    if jobs:
        image_jobs(engine.image_stage(), jobs, wd, settings.encode.placement, use_cache=use_cache, progress=progress)


def given_image(
    emb: Path, manifest: dict[str, Any], s: RenderSettings, here: Path | None = None
) -> tuple[Path | None, RenderSettings]:
    """The first frame's artifact that embeddings given to `render` go with (their manifest names its key and
    path: `here` (this work directory's) or that path when it holds the key, else the cache's entry), and the
    render's size fitted to it."""
    found = manifest.get("image")
    if not isinstance(found, dict):
        return None, s
    key, path = found.get("key"), Path(str(found.get("path", "")))
    for candidate in (*([here] if here else []), path, cache.entry_path(str(key))):
        try:
            _, m = read_manifest(candidate, "image")
        except Exception:  # noqa: BLE001 - not there, or not it: try the next place
            continue
        if m.get("cache_key") == key:
            if s.fit_image:
                s = replace(s, height=int(m["height"]), width=int(m["width"]))
            return candidate, s
    raise IncompatibleError(
        f"{emb} goes with a first frame whose conditions are gone ({key}); re-run `hyv encode --image` for it"
    )
