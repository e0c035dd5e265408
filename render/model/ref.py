"""Finding a model: `--model` (a directory in the diffusers or the original layout, or a hub id), else
$HYV_MODEL, else the bundled demo model; and what can be known of it without loading weights (configs)."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError
from render.model.family import Family, family_of
from render.model.layout import DEFAULT_SCHEDULER, DIFFUSERS, ORIGINAL, component_dir, detect, original_dit

BUNDLED_DEMO = Path(__file__).resolve().parents[1] / "demo_model"


def _demo_defaults() -> dict[str, Any]:
    try:
        found = json.loads((BUNDLED_DEMO / "hyv.json").read_text()).get("defaults", {})
    except (OSError, json.JSONDecodeError):
        return {}
    return dict(found) if isinstance(found, dict) else {}


DEMO_DEFAULTS = _demo_defaults()  # for help texts: what the bundled demo model uses


@dataclass(frozen=True)
class ModelRef:
    path: Path
    source: str  # what the user gave (a path or a hub id), or "bundled demo"
    bundled: bool = False
    layout: str = DIFFUSERS  # or ORIGINAL (Tencent's ckpts/ folder)

    def component(self, name: str) -> Path:
        return component_dir(self.layout, self.path, name)

    def hyv_json(self) -> dict[str, Any]:
        p = self.path / "hyv.json"
        if not p.is_file():
            return {}
        try:
            found = json.loads(p.read_text())
        except json.JSONDecodeError:
            found = None
        if not isinstance(found, dict):
            raise ModelNotFoundError(f"{p} is not valid JSON with a `defaults` object")
        return found

    def defaults(self) -> dict[str, Any]:
        """Settings defaults a model ships in `hyv.json` ({"defaults": {"frames": .., "steps": ..}}), e.g. the
        bundled demo model, whose size is far from HunyuanVideo's 129x720x1280. Flags still win."""
        from render.core.resolve import check_model_defaults

        found = self.hyv_json().get("defaults", {})
        if not isinstance(found, dict):
            raise ModelNotFoundError(f"{self.path / 'hyv.json'} is not valid JSON with a `defaults` object")
        return check_model_defaults(found, str(self.path / "hyv.json"))

    @property
    def family(self) -> Family:
        p = self.path / "model_index.json"
        if not p.is_file():
            return family_of({}, self.source)  # the original layout, or a model assembled by hand
        try:
            index = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            index = None
        if not isinstance(index, dict):
            raise ModelNotFoundError(f"{p} is not valid JSON with an object; the model directory is damaged")
        return family_of(index, self.source)

    def config(self, name: str) -> dict[str, Any]:
        """A component's config (no weights are read; an original-layout DiT's is inferred from its tensor
        shapes, its VAE's translated from Tencent's config)."""
        if self.layout == ORIGINAL and name == "scheduler":
            return dict(DEFAULT_SCHEDULER)
        if self.layout == ORIGINAL and name == "transformer":
            dit = original_dit(self.path)
            if not dit.is_file():
                dit = original_dit(self.path, fp8=True)
            overrides = self.hyv_json().get("transformer", {})
            return dict(original_dit_config(dit, json.dumps(overrides, sort_keys=True)))
        p = self.component(name) / ("scheduler_config.json" if name == "scheduler" else "config.json")
        try:
            cfg = dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise ModelNotFoundError(
                f"model {self.source} has no {p.relative_to(self.path)}; the model directory is incomplete"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelNotFoundError(f"{p} is not valid JSON ({exc.msg})") from None
        if self.layout == ORIGINAL and name == "vae":
            from render.model.original import vae_config_from_original

            return vae_config_from_original(cfg)
        return cfg


@functools.lru_cache(maxsize=8)
def original_dit_config(path: Path, overrides_json: str) -> dict[str, Any]:
    """The diffusers config of an original-layout DiT file, from its tensor shapes (mmap: no data read)."""
    from render.model.original import infer_dit_config
    from render.model.weightfiles import file_shapes

    if not path.is_file():
        raise ModelNotFoundError(f"the original-layout model has no DiT checkpoint {path}")
    return infer_dit_config(file_shapes(path), json.loads(overrides_json), str(path))


def resolve_model(spec: str | Path | None) -> ModelRef:
    """Find the model: --model, else HYV_MODEL, else the bundled demo model."""
    spec = str(spec) if spec else os.environ.get("HYV_MODEL") or None
    if spec is None:
        if (BUNDLED_DEMO / "model_index.json").is_file():
            return ModelRef(BUNDLED_DEMO, "bundled demo", bundled=True)
        raise ModelNotFoundError(
            "no model given: pass --model DIR (a diffusers-layout directory) or set HYV_MODEL"
        )
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelNotFoundError(
                f"--model {spec} is a file; give the model directory (with model_index.json)"
            )
        found = detect(p)
        if found is None:
            raise ModelNotFoundError(
                f"{spec} is neither a diffusers-layout model directory (no model_index.json) nor Tencent's "
                "original layout (no hunyuan-video-t2v-720p/); use e.g. hunyuanvideo-community/HunyuanVideo "
                "or `hyv models init-tiny DIR`"
            )
        layout, root = found
        return ModelRef(root.resolve(), spec, layout=layout)
    if _looks_like_hub_id(spec):
        return ModelRef(_download(spec), spec)
    raise ModelNotFoundError(f"model directory {spec} does not exist")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not spec.startswith((".", "~"))
        and os.sep not in spec.replace("/", "")
    )


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # offline, unknown repo, no permission: one clear line
        reason = " ".join(str(exc).split())[:200]
        raise ModelNotFoundError(
            f"model {repo_id} is not a local directory and could not be fetched from the hub ({type(exc).__name__}: "
            f"{reason}); download it where you are online, then pass --model DIR"
        ) from None
