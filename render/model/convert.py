"""`hyv models convert SRC DST`: a model in its family's original layout -> the diffusers layout, so that later runs
load fast (sharded safetensors, no conversion at load time). The family writes the components (tensor by tensor
from memory-mapped checkpoints: views and row splits, no second copy of the model in memory); this module checks
the source first and makes the result appear atomically (a temporary folder renamed)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from render.core import hyvjson
from render.core.errors import UsageError
from render.core.fsutil import tmp_path_for
from render.model.family import Family
from render.model.ref import ORIGINAL, ModelRef

SHARD = "5GB"


def convert_model(
    src: ModelRef, family: Family, dst: Path, *, force: bool = False, max_shard_size: str = SHARD
) -> Path:
    """Write `src` (original layout) to `dst` in the diffusers layout; atomic."""
    if src.layout != ORIGINAL:
        raise UsageError(f"{src.source} is already in the diffusers layout; nothing to convert")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise UsageError(f"{dst} exists and is not empty; choose another directory or pass --force")
    from render.model.check import check_stage
    from render.model.variant import DiTVariant

    for stage in family.components_for(src):
        check_stage(src, family, stage, DiTVariant())  # a truncated source fails before anything is written
    tmp = tmp_path_for(dst)
    try:
        tmp.mkdir(parents=True)
        family.convert_original(src, tmp, max_shard_size)
        if family.upscalers_in(src.path):  # its super-resolution models too (hyv's layout: sr-<target>/)
            family.convert_upscalers(src.path, tmp, max_shard_size)
        hyv = src.hyv_json()
        hyv.pop("transformer", None)  # the converted config holds what the original layout could not
        if hyv:
            hyvjson.write(tmp, hyv)
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def convert_upscalers(
    src: Path, family: Family, dst: Path, *, force: bool = False, max_shard_size: str = SHARD
) -> list[str]:
    """Write the super-resolution models `src` holds in the family's original layout to `dst` in hyv's layout (each
    checked first); atomic. Returns their targets."""
    from render.model.check import require_upscaler

    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise UsageError(f"{dst} exists and is not empty; choose another directory or pass --force")
    found = [family.find_upscaler(ModelRef(src, str(src)), t, src) for t in family.upscalers_in(src)]
    found = [up for up in found if up.layout == ORIGINAL]
    if not found:
        raise UsageError(f"{src} holds no {family.name} super-resolution model in the original layout: nothing to do")
    for up in found:
        require_upscaler(family, up)
    tmp = tmp_path_for(dst)
    try:
        tmp.mkdir(parents=True)
        done = family.convert_upscalers(src, tmp, max_shard_size)
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done


def save_component(
    sd: dict[str, Any], out: Path, config: dict[str, Any], class_name: str, max_shard_size: str
) -> None:
    """A diffusers component folder: sharded safetensors and its config.json."""
    from render.model.shards import write_shards

    out.mkdir(parents=True)
    write_shards(sd.items(), out, "diffusion_pytorch_model", max_shard_size)
    (out / "config.json").write_text(json.dumps({"_class_name": class_name, **config}, indent=2, default=list))


def write_json(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link when on the same file system, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
