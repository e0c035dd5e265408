"""Layer 5: the model families, one package each, behind `render.model.family.Family`, and the registry that finds
a model and tells its family: a family is registered here once (`FAMILIES`) and the rest of hyv never names it.

    model = resolve_model("path/or/hub-id")   # --model, else $HYV_MODEL, else the bundled demo model
    family = family_of(model)                 # by model_index.json `_class_name`, or the original layout found
"""

from __future__ import annotations

import os
from pathlib import Path

from render.core.errors import ModelNotFoundError, UsageError
from render.families.hunyuan_video import HUNYUAN_VIDEO, HUNYUAN_VIDEO_I2V
from render.families.hunyuan_video15 import HUNYUAN_VIDEO_15
from render.model.family import Family
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


def resolve_model(spec: str | Path | None) -> ModelRef:
    """Find the model: --model, else HYV_MODEL, else the bundled demo model."""
    spec = str(spec) if spec else os.environ.get("HYV_MODEL") or None
    if spec is None:
        if (BUNDLED_DEMO / "model_index.json").is_file():
            return diffusers_ref(BUNDLED_DEMO, "bundled demo", bundled=True)
        raise ModelNotFoundError("no model given: pass --model DIR (a diffusers-layout directory) or set HYV_MODEL")
    p = Path(spec).expanduser()
    if p.exists():
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
    if looks_like_hub_id(spec):
        return diffusers_ref(download(spec), spec)
    raise ModelNotFoundError(f"model directory {spec} does not exist")


def init_tiny(
    directory: Path, family: str | Family = HUNYUAN_VIDEO, preset: str = "tiny", seed: int = 0, force: bool = False
) -> Path:
    """A randomly initialised model of a family in the diffusers layout (render.model.tiny)."""
    from render.model.tiny import init_tiny as write

    fam = family_named(family) if isinstance(family, str) else family
    return write(directory, fam, preset, seed, force)
