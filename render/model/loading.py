"""The one place that loads weights: every stage's models are loaded through these functions, which ask the model's
family for its classes and layouts (render.families) and apply what is the same for every family: the DiT's weight
variant (fp8 storage, LoRAs: render.model.variant), the placement and the offload mode (render.model.offload).
Each loads on the CPU first; `render.run` decides when (first use) and for how long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from render.core.placement import resolve_placement
from render.core.settings import Placement
from render.model.family import Family, TextEncoders, Upscaler
from render.model.offload import place
from render.model.ref import ModelRef
from render.model.variant import DiTVariant


@dataclass
class Loaded:
    """A loaded model and where it lives."""

    module: Any
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    placement: Placement
    hooks: list[Any] = field(default_factory=list)  # model offloading: offload() parks it on the CPU
    state: Any = None  # the DiT's: what speed settings were applied to it (render.stages.speed.DiTState)
    parts: dict[str, Any] = field(default_factory=dict)  # what loads with it (super-resolution: its upsampler)


def load_text_encoders(model: ModelRef, family: Family, placement: Placement, offload: str = "none") -> TextEncoders:
    device, dtype = resolve_placement(placement, "encode")
    return family.load_text_encoders(model, device, dtype, offload)


def load_transformer(
    model: ModelRef, family: Family, placement: Placement, variant: DiTVariant, offload: str = "none"
) -> Loaded:
    """The DiT in its variant (GGUF, FP8, LoRAs), placed by `offload`."""
    from render.model.fp8 import enable_fp8_storage
    from render.model.lora import apply_loras

    device, dtype = resolve_placement(placement, "render")
    variant.check()
    tr = family.load_transformer(model, variant, dtype)
    apply_loras(tr, variant.loras, family)
    if family.fp8_kind(model, variant) == "layerwise":
        enable_fp8_storage(tr, dtype)
    hook = place(tr, offload, device)
    return Loaded(tr, device, dtype, placement, [hook] if hook is not None else [])


def load_upscaler(family: Family, up: Upscaler, placement: Placement, offload: str = "none") -> Loaded:
    """A super-resolution model: its DiT placed by `offload` (no weight variant: fp8, GGUF and LoRAs are the base
    DiT's), its upsampler whole on the device in float32 (`parts["upsampler"]`; a few MB)."""
    device, dtype = resolve_placement(placement, "render")
    dit, upsampler = family.load_upscaler(up, dtype)
    hook = place(dit, offload, device)
    upsampler.to(device)
    parts = {"upsampler": upsampler, "target": up.target, "source": up.source}
    return Loaded(dit, device, dtype, placement, [hook] if hook is not None else [], parts=parts)


def load_vae(model: ModelRef, family: Family, placement: Placement, offload: str = "none") -> Loaded:
    """The VAE, always loaded whole (small weights, large activations): group/sequential mean model for it."""
    device, dtype = resolve_placement(placement, "decode")
    vae = family.load_vae(model, dtype).eval()
    place(vae, "model" if offload in ("group", "sequential") else offload, device)
    return Loaded(vae, device, dtype, placement)


def text_encoders_placed(encoders: dict[str, Any], order: list[str], device: Any, offload: str) -> list[Any]:
    """Place a family's text encoders (in `order`) by the offload mode; with model offloading they take turns,
    batch after batch, as diffusers' model offloading does. Returns the offload hooks."""
    hooks: list[Any] = []
    for name in order:
        hooks.append(place(encoders[name], offload, device, prev_hook=hooks[-1] if hooks else None))
    found = [h for h in hooks if h is not None]
    if len(found) > 1:
        found[0].hook.prev_module_hook = found[-1]
    return found


def check_components(model: ModelRef, family: Family, stage: str, variant: DiTVariant) -> None:
    """Fail with one line for a component the stage needs that is missing, truncated or does not fit its config
    (headers and shapes only; render.model.check)."""
    from render.model.check import check_stage

    check_stage(model, family, stage, variant)
