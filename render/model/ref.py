"""A model as hyv finds it: a folder (the diffusers layout, or a family's original layout), where each component
lives in it, and what can be known without loading weights (configs, the model's hyv.json). Which family a model
is, and the finding of original layouts, is `render.families` (one level up: the families know their layouts)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render.core import hyvjson
from render.core.errors import ModelNotFoundError

DIFFUSERS, ORIGINAL = "diffusers", "original"
BUNDLED_DEMO = Path(__file__).resolve().parents[1] / "demo_model"


def _demo_defaults() -> dict[str, Any]:
    try:
        found = hyvjson.section(BUNDLED_DEMO, "defaults")
    except ModelNotFoundError:
        return {}
    return dict(found)


DEMO_DEFAULTS = _demo_defaults()  # for help texts: what the bundled demo model uses


# a component's config file where it is not config.json
CONFIG_FILES = {
    "scheduler": "scheduler_config.json",
    "image_processor": "preprocessor_config.json",
    "feature_extractor": "preprocessor_config.json",
}

@dataclass(frozen=True)
class ModelRef:
    path: Path
    source: str  # what the user gave (a path or a hub id), or "bundled demo"
    bundled: bool = False
    layout: str = DIFFUSERS  # or ORIGINAL (a family's own release layout, e.g. Tencent's ckpts/)
    pipeline: str = ""  # the pipeline class it is (model_index.json `_class_name`, or its family's for ORIGINAL)
    dirs: Mapping[str, str] = field(default_factory=dict)  # ORIGINAL: component -> folder, relative to `path`

    def component(self, name: str) -> Path:
        return self.path / self.dirs.get(name, name)

    def hyv_json(self) -> dict[str, Any]:
        return hyvjson.read(self.path)

    def defaults(self) -> dict[str, Any]:
        """Settings defaults a model ships in `hyv.json` ({"defaults": {"frames": .., "steps": ..}}), e.g. the
        bundled demo model, whose size is far from HunyuanVideo's 129x720x1280. Flags still win."""
        from render.core.resolve import check_model_defaults

        return check_model_defaults(hyvjson.section(self.path, "defaults"), str(hyvjson.path_of(self.path)))

    def config(self, name: str) -> dict[str, Any]:
        """A component's config file as it is (families translate original-layout configs: `Family.config`)."""
        p = self.component(name) / CONFIG_FILES.get(name, "config.json")
        try:
            cfg = dict(json.loads(p.read_text()))
        except FileNotFoundError:
            where = p.relative_to(self.path) if p.is_relative_to(self.path) else p
            raise ModelNotFoundError(
                f"model {self.source} has no {where}; the model directory is incomplete"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelNotFoundError(f"{p} is not valid JSON ({exc.msg})") from None
        return cfg


def model_index(path: Path) -> dict[str, Any]:
    """A diffusers-layout folder's model_index.json."""
    p = path / "model_index.json"
    try:
        index = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        index = None
    if not isinstance(index, dict):
        raise ModelNotFoundError(f"{p} is not valid JSON with an object; the model directory is damaged")
    return index


def diffusers_ref(path: Path, source: str, bundled: bool = False) -> ModelRef:
    """A folder in the diffusers layout (model_index.json names its pipeline class)."""
    name = model_index(path).get("_class_name")
    return ModelRef(path, source, bundled=bundled, pipeline=name if isinstance(name, str) else "")


def looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not spec.startswith((".", "~"))
        and os.sep not in spec.replace("/", "")
    )


def download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # offline, unknown repo, no permission: one clear line
        reason = " ".join(str(exc).split())[:200]
        raise ModelNotFoundError(
            f"model {repo_id} is not a local directory and could not be fetched from the hub ({type(exc).__name__}: "
            f"{reason}); download it where you are online, then pass --model DIR"
        ) from None
