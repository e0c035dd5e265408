"""`hyv models init-tiny DIR [--family F] [--preset P]`: a randomly initialised model of a family in the diffusers
layout, built from configs with no network (the family writes it: `Family.init_tiny`), placed atomically."""

from __future__ import annotations

import shutil
from pathlib import Path

from render.core.errors import UsageError
from render.core.fsutil import tmp_path_for
from render.model.family import Family


def init_tiny(directory: Path, family: Family, preset: str = "tiny", seed: int = 0, force: bool = False) -> Path:
    if preset not in family.tiny_presets():
        raise UsageError(
            f"unknown preset {preset!r} for {family.name}; use one of {', '.join(family.tiny_presets())}"
        )
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not force:
        raise UsageError(f"{directory} exists and is not empty; choose another directory or pass --force")
    tmp = tmp_path_for(directory)
    try:
        family.init_tiny(tmp, preset, seed)
        if directory.is_dir():
            shutil.rmtree(directory)
        elif directory.exists():
            directory.unlink()
        tmp.rename(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
