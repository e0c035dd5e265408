"""Layer 5: the model families, one package each, behind `render.model.family.Family`, and the registry that finds
a model and tells its family: a family is registered here once (`FAMILIES`) and the rest of hyv never names it.

    model = resolve_model("path/or/hub-id")   # --model, else $HYV_MODEL, else the bundled demo model
    family = family_of(model)                 # by model_index.json `_class_name`, or the original layout found

A released model is known by a short name or its hub id (`released_models`); its configs ship with hyv, so that the
memory plan needs no download (`resolve_model(name, configs_only=True)`).
"""

from __future__ import annotations

import os
from pathlib import Path

from render.core.errors import ModelNotFoundError, UsageError
from render.families.hunyuan_video import HUNYUAN_VIDEO, HUNYUAN_VIDEO_I2V
from render.families.hunyuan_video15 import HUNYUAN_VIDEO_15
from render.model.family import Family, Released
from render.model.ref import BUNDLED_DEMO, ModelRef, diffusers_ref, download, looks_like_hub_id

FAMILIES: tuple[Family, ...] = (HUNYUAN_VIDEO, HUNYUAN_VIDEO_I2V, HUNYUAN_VIDEO_15)
_BY_PIPELINE = {cls: f for f in FAMILIES for cls in f.pipeline_classes}


def family_of(model: ModelRef) -> Family:
    """The family of a model, from its pipeline class; an unknown one is a one-line error listing the supported."""
    found = _BY_PIPELINE.get(model.pipeline)
    if found is None:
        known = ", ".join(f"{f.name} ({' / '.join(f.pipeline_classes)})" for f in FAMILIES)
        what = f"a {model.pipeline}" if model.pipeline else "a model whose model_index.json names no `_class_name`"
        raise ModelNotFoundError(f"model {model.source} is {what}; this hyv runs {known}")
    return found


def family_named(name: str) -> Family:
    """A family by its name (`--family` of the admin commands), case and punctuation aside."""

    def norm(s: str) -> str:
        return "".join(c for c in s.lower() if c.isalnum())

    for f in FAMILIES:
        if norm(f.name) == norm(name):
            return f
    raise UsageError(f"unknown family {name!r}; use one of {', '.join(f.name for f in FAMILIES)}")


def upscaler_family(path: Path) -> Family | None:
    """The family whose super-resolution models a folder holds (either layout), or None."""
    return next((f for f in FAMILIES if f.upscalers_in(path)), None)


def released_models() -> tuple[Released, ...]:
    """Every family's released models (short name, hub id, shipped configs)."""
    return tuple(r for f in FAMILIES for r in f.released)


def find_released(spec: str) -> Released | None:
    """The released model a name means: its short name, its hub id or the hub id's name part (any case)."""
    s = spec.strip().lower()
    for r in released_models():
        if s in (r.name.lower(), r.hub_id.lower(), r.hub_id.split("/")[-1].lower()):
            return r
    return None


def known_models() -> str:
    """The names `--model` takes without a folder, for messages and help: "hunyuanvideo, hunyuanvideo-1.5-..."."""
    return ", ".join(r.name for r in released_models())


def resolve_model(spec: str | Path | None, *, configs_only: bool = False) -> ModelRef:
    """Find the model: --model, else HYV_MODEL, else the bundled demo model. A folder is used as it is; a released
    model's name or hub id is fetched from the hub (or its local snapshot), or, with `configs_only` (the memory
    plan), read from the configs shipped with hyv, offline."""
    spec = str(spec) if spec else os.environ.get("HYV_MODEL") or None
    if spec is None:
        if (BUNDLED_DEMO / "model_index.json").is_file():
            return diffusers_ref(BUNDLED_DEMO, "bundled demo", bundled=True)
        raise ModelNotFoundError("no model given: pass --model DIR (a diffusers-layout directory) or set HYV_MODEL")
    p = Path(spec).expanduser()
    if p.exists():
        return _folder(p, spec)
    released = find_released(spec)
    if released is not None and configs_only:
        return diffusers_ref(released.configs, f"{released.hub_id} (configs shipped with hyv)")
    hub = released.hub_id if released is not None else spec if looks_like_hub_id(spec) else None
    if hub is None:
        raise ModelNotFoundError(
            f"model directory {spec} does not exist, and it is not a released model's name ({known_models()}) "
            "nor a hub id"
        )
    try:
        return diffusers_ref(download(hub), hub)
    except ModelNotFoundError as exc:
        more = (
            f"; `hyv plan --model {spec}` works offline (its configs ship with hyv)"
            if released is not None
            else f"; the released models hyv knows without a download: {known_models()}"
        )
        raise ModelNotFoundError(f"{exc}{more}") from None


def _folder(p: Path, spec: str) -> ModelRef:
    if not p.is_dir():
        raise ModelNotFoundError(f"--model {spec} is a file; give the model directory (with model_index.json)")
    if (p / "model_index.json").is_file():
        return diffusers_ref(p.resolve(), spec)
    for family in FAMILIES:
        found = family.find_original(p, spec)
        if found is not None:
            return found
    originals = " or ".join(f"{f.name}'s original layout (no {f.original_marker})" for f in FAMILIES)
    raise ModelNotFoundError(
        f"{spec} is neither a diffusers-layout model directory (no model_index.json) nor {originals}; "
        "use e.g. hunyuanvideo-community/HunyuanVideo or `hyv models init-tiny DIR`"
    )


def init_tiny(
    directory: Path, family: str | Family = HUNYUAN_VIDEO, preset: str = "tiny", seed: int = 0, force: bool = False
) -> Path:
    """A randomly initialised model of a family in the diffusers layout (render.model.tiny)."""
    from render.model.tiny import init_tiny as write

    fam = family_named(family) if isinstance(family, str) else family
    return write(directory, fam, preset, seed, force)
