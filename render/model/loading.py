"""The one place that finds and loads weights.

A model is a directory in the diffusers layout (model_index.json, transformer/, vae/, text_encoder/, tokenizer/,
text_encoder_2/, tokenizer_2/, scheduler/) or in Tencent's original layout (`ckpts/`: render.model.layout), a hub
id (fetched through huggingface_hub when online), or, when neither --model nor HYV_MODEL is given, the demo model
bundled with hyv. The DiT may come in another form (FP8, GGUF, LoRAs: render.model.variant). Each stage loads
only the components it needs, on the CPU, then places them with its offload mode (render.model.offload);
`render.engine.Engine` decides when (first use) and for how long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from render.core.errors import SettingsError
from render.core.settings import Placement
from render.model.layout import DEFAULT_SCHEDULER, ORIGINAL
from render.model.ref import BUNDLED_DEMO, DEMO_DEFAULTS, ModelRef, resolve_model
from render.model.variant import DiTVariant

STAGES = ("encode", "render", "decode")
# GPU dtypes per component family (CPU computes in fp32: half precision is hundreds of times slower there).
GPU_DTYPES = {"encode": "float16", "render": "bfloat16", "decode": "float16"}
DTYPES = ("float32", "float16", "bfloat16")
FULL = DiTVariant()

__all__ = ["BUNDLED_DEMO", "DEMO_DEFAULTS", "ModelRef", "resolve_model"]


def check_components(model: ModelRef, stage: str, variant: DiTVariant = FULL) -> None:
    """Fail with one line for a component the stage needs that is missing, truncated or does not fit its config
    (headers and shapes only; render.model.check)."""
    from render.model.check import check_stage

    check_stage(model, stage, variant)


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


def check_devices(settings: Any, *stages: str) -> None:
    """Every stage's device and dtype are valid here, before the first stage runs (a --vae-device cuda on a
    machine without one fails now, not after hours of rendering)."""
    for stage in stages:
        resolve_placement(getattr(settings, stage).placement, stage)


@dataclass
class TextEncoders:
    tokenizer: Any
    text_encoder: Any  # LlamaModel
    tokenizer_2: Any
    text_encoder_2: Any  # CLIPTextModel
    device: Any
    dtype: Any
    hooks: list[Any] = field(default_factory=list)  # model offloading: offload() moves a model back to the CPU


def load_text_encoders(model: ModelRef, placement: Placement, offload: str = "none") -> TextEncoders:
    from transformers import AutoTokenizer, CLIPTextModel, LlamaModel

    from render.model.offload import place

    device, dtype = resolve_placement(placement, "encode")
    tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
    tok.padding_side = "right"
    tok2 = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
    te = LlamaModel.from_pretrained(model.component("text_encoder"), dtype=dtype).eval()
    te2 = CLIPTextModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype).eval()
    hook = place(te, offload, device)
    hook2 = place(te2, offload, device, prev_hook=hook)
    if hook is not None and hook2 is not None:  # model offloading: they take turns, batch after batch
        hook.hook.prev_module_hook = hook2
    return TextEncoders(tok, te, tok2, te2, device, dtype, [h for h in (hook, hook2) if h is not None])


def load_transformer(
    model: ModelRef, placement: Placement, variant: DiTVariant = FULL, offload: str = "none"
) -> tuple[Any, Any, Any, Any]:
    """(transformer, device, compute dtype, model-offload hook or None): the DiT in its variant (GGUF, FP8,
    LoRAs), placed by `offload`."""
    from render.model.dit import load_dit
    from render.model.fp8 import enable_fp8_storage
    from render.model.lora import apply_loras
    from render.model.offload import place

    device, dtype = resolve_placement(placement, "render")
    variant.check()
    tr = load_dit(model, variant, dtype)
    apply_loras(tr, variant.loras)
    if variant.fp8_kind(model) == "layerwise":
        enable_fp8_storage(tr, dtype)
    hook = place(tr, offload, device)
    return tr, device, dtype, hook


def load_scheduler(model: ModelRef, shift: float) -> Any:
    """The model's flow-matching Euler scheduler with the requested shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    config = DEFAULT_SCHEDULER if model.layout == ORIGINAL else model.config("scheduler")
    return FlowMatchEulerDiscreteScheduler.from_config(config, shift=shift)


def load_vae(model: ModelRef, placement: Placement, offload: str = "none") -> tuple[Any, Any, Any]:
    from diffusers import AutoencoderKLHunyuanVideo

    from render.model.offload import place

    device, dtype = resolve_placement(placement, "decode")
    if model.layout == ORIGINAL:
        import torch

        from render.model.original import vae_state_dict
        from render.model.weightfiles import load_pt, unwrap_state_dict

        path = model.component("vae") / "pytorch_model.pt"
        sd = vae_state_dict(unwrap_state_dict(load_pt(path), path))
        with torch.device("meta"):
            vae: Any = AutoencoderKLHunyuanVideo.from_config(model.config("vae"))
        vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    else:
        vae = AutoencoderKLHunyuanVideo.from_pretrained(model.component("vae"), dtype=dtype)
    place(vae.eval(), offload, device)
    return vae, device, dtype


def vae_factors(model: ModelRef) -> tuple[int, int, int]:
    """(latent channels, temporal compression, spatial compression) read from vae/config.json."""
    cfg = model.config("vae")
    return (
        int(cfg.get("latent_channels", 16)),
        int(cfg.get("temporal_compression_ratio", 4)),
        int(cfg.get("spatial_compression_ratio", 8)),
    )


def preload(stage: str) -> None:
    """Import the stage's model classes (and their kernels' libraries) before its memory is measured: the
    manifest's peak RSS of a stage is then its models and activations, not hundreds of MB of code."""
    if stage == "encode":
        from transformers import CLIPTextModel, LlamaModel  # noqa: F401
    else:
        from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel  # noqa: F401


def release_memory() -> None:
    """Give the memory of models the caller has dropped back before the next stage loads."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
