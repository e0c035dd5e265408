"""The one place that finds and loads weights.

A model is a directory in the diffusers layout (model_index.json, transformer/, vae/, text_encoder/, tokenizer/,
text_encoder_2/, tokenizer_2/, scheduler/), a hub id (fetched through huggingface_hub when online), or, when
neither --model nor HYV_MODEL is given, the demo model bundled with hyv when one is installed.
Each stage loads only the components it needs; `render.engine.Engine` decides when (first use) and for how long.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.errors import ModelNotFoundError, SettingsError
from render.family import Family, family_of
from render.settings import Placement

STAGES = ("encode", "render", "decode")
# GPU dtypes per component family (CPU computes in fp32: half precision is hundreds of times slower there).
GPU_DTYPES = {"encode": "float16", "render": "bfloat16", "decode": "float16"}
DTYPES = ("float32", "float16", "bfloat16")
BUNDLED_DEMO = Path(__file__).parent / "demo_model"


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

    def component(self, name: str) -> Path:
        return self.path / name

    def defaults(self) -> dict[str, Any]:
        """Settings defaults a model ships in `hyv.json` ({"defaults": {"frames": .., "steps": ..}}), e.g. the
        bundled demo model, whose size is far from HunyuanVideo's 129x720x1280. Flags still win."""
        from render.resolve import check_model_defaults

        p = self.path / "hyv.json"
        if not p.is_file():
            return {}
        try:
            found = json.loads(p.read_text()).get("defaults", {})
        except (json.JSONDecodeError, AttributeError):
            found = None
        if not isinstance(found, dict):
            raise ModelNotFoundError(f"{p} is not valid JSON with a `defaults` object")
        return check_model_defaults(found, str(p))

    @property
    def family(self) -> Family:
        p = self.path / "model_index.json"
        if not p.is_file():
            return family_of({}, self.source)  # a model assembled by hand (the training script's)
        try:
            index = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            index = None
        if not isinstance(index, dict):
            raise ModelNotFoundError(f"{p} is not valid JSON with an object; the model directory is damaged")
        return family_of(index, self.source)

    def config(self, name: str) -> dict[str, Any]:
        """A component's config.json (no weights are read)."""
        p = self.path / name / ("scheduler_config.json" if name == "scheduler" else "config.json")
        try:
            return dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise ModelNotFoundError(
                f"model {self.source} has no {name}/{p.name}; the model directory is incomplete"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelNotFoundError(f"{p} is not valid JSON ({exc.msg})") from None


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
        if not (p / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"{spec} is not a diffusers-layout model directory (no model_index.json); "
                "use e.g. hunyuanvideo-community/HunyuanVideo or `hyv models init-tiny DIR`"
            )
        return ModelRef(p.resolve(), spec)
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


def check_components(model: ModelRef, stage: str) -> None:
    """Fail with one line naming every component the stage needs that is missing."""
    family = model.family
    missing = []
    for name in family.stage_components[stage]:
        d = model.component(name)
        if not d.is_dir() or not any(d.iterdir()):
            missing.append(name)
            continue
        if name in family.weight_components:
            has_weights = any(p.name.endswith((".safetensors", ".bin")) for p in d.iterdir())
            if not (d / "config.json").is_file() or not has_weights:
                missing.append(f"{name} (config.json or weights)")
    if missing:
        raise ModelNotFoundError(
            f"model {model.source} is incomplete for {stage}: missing {', '.join(missing)}"
        )


def resolve_placement(placement: Placement, stage: str) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for a stage."""
    import torch

    dev = placement.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(dev)
    except RuntimeError:
        raise SettingsError(f"unknown device {placement.device!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {dev} asked for but no CUDA GPU is available; use --device cpu")
    name = placement.dtype
    if name == "auto":
        name = GPU_DTYPES[stage] if device.type == "cuda" else "float32"
    if name not in DTYPES:
        raise SettingsError(f"unknown dtype {placement.dtype!r}; use auto, {', '.join(DTYPES)}")
    return device, getattr(torch, name)


@dataclass
class TextEncoders:
    tokenizer: Any
    text_encoder: Any  # LlamaModel
    tokenizer_2: Any
    text_encoder_2: Any  # CLIPTextModel
    device: Any
    dtype: Any


def load_text_encoders(model: ModelRef, placement: Placement) -> TextEncoders:
    from transformers import AutoTokenizer, CLIPTextModel, LlamaModel

    device, dtype = resolve_placement(placement, "encode")
    tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
    tok.padding_side = "right"
    tok2 = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
    te = LlamaModel.from_pretrained(model.component("text_encoder"), dtype=dtype).to(device).eval()
    te2 = CLIPTextModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype).to(device).eval()
    return TextEncoders(tok, te, tok2, te2, device, dtype)


def load_transformer(model: ModelRef, placement: Placement) -> tuple[Any, Any, Any]:
    """(transformer, device, dtype)."""
    from diffusers import HunyuanVideoTransformer3DModel

    device, dtype = resolve_placement(placement, "render")
    tr = HunyuanVideoTransformer3DModel.from_pretrained(model.component("transformer"), dtype=dtype)
    return tr.to(device).eval(), device, dtype


def load_scheduler(model: ModelRef, shift: float) -> Any:
    """The model's flow-matching Euler scheduler with the requested shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(model.config("scheduler"), shift=shift)


def load_vae(model: ModelRef, placement: Placement) -> tuple[Any, Any, Any]:
    from diffusers import AutoencoderKLHunyuanVideo

    device, dtype = resolve_placement(placement, "decode")
    vae = AutoencoderKLHunyuanVideo.from_pretrained(model.component("vae"), dtype=dtype)
    return vae.to(device).eval(), device, dtype


def vae_factors(model: ModelRef) -> tuple[int, int, int]:
    """(latent channels, temporal compression, spatial compression) read from vae/config.json."""
    cfg = model.config("vae")
    return (
        int(cfg.get("latent_channels", 16)),
        int(cfg.get("temporal_compression_ratio", 4)),
        int(cfg.get("spatial_compression_ratio", 8)),
    )


def release_memory() -> None:
    """Give the memory of models the caller has dropped back before the next stage loads."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
