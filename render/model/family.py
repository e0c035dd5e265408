"""What differs between model families, named in one place so the stages stay generic.

The engine's seams are: text encoders -> an embeddings artifact (named tensors); DiT + schedule -> latents;
VAE -> frames. A family says which components each stage loads, which tensors its embeddings hold, how they
become the DiT's keyword arguments, and whether the DiT takes an embedded guidance scale. HunyuanVideo 1.5
(`HunyuanVideo15Pipeline`: no pooled embedding, a second text stream, real CFG, no embedded guidance) will be a
second `Family`; only HunyuanVideo is built today.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from render.core.errors import ModelNotFoundError


@dataclass(frozen=True)
class Family:
    name: str
    pipeline_class: str  # model_index.json `_class_name`
    stage_components: Mapping[str, tuple[str, ...]]  # stage -> the model directory's component folders
    weight_components: tuple[str, ...]  # the components holding weights (a config.json and weight files)
    embedding_tensors: tuple[str, ...]  # tensors of an embeddings artifact
    # embeddings artifact tensors -> the DiT's conditioning keyword arguments
    conditioning: Callable[[Mapping[str, Any]], dict[str, Any]]
    embedded_guidance: bool  # the DiT takes `guidance` (x 1000), as a CFG-distilled model does
    # the conditioning's text tokens and their padding mask (render.sampling.attention trims the padding), if it has one
    tokens_key: str | None = None
    mask_key: str | None = None
    # weight component -> "library.ClassName" of the module it holds (built on the meta device to check shapes)
    component_classes: Mapping[str, str] = field(default_factory=dict)


def _hunyuan_video_conditioning(t: Mapping[str, Any]) -> dict[str, Any]:
    # prompt_embeds [B, L, D], prompt_attention_mask [B, L], pooled_prompt_embeds [B, P]
    return {
        "encoder_hidden_states": t["prompt_embeds"],
        "encoder_attention_mask": t["prompt_attention_mask"],
        "pooled_projections": t["pooled_prompt_embeds"],
    }


HUNYUAN_VIDEO = Family(
    name="HunyuanVideo",
    pipeline_class="HunyuanVideoPipeline",
    stage_components={
        "encode": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
        "render": ("transformer", "scheduler"),
        "decode": ("vae",),
    },
    weight_components=("transformer", "vae", "text_encoder", "text_encoder_2"),
    embedding_tensors=("prompt_embeds", "prompt_attention_mask", "pooled_prompt_embeds"),
    conditioning=_hunyuan_video_conditioning,
    embedded_guidance=True,
    tokens_key="encoder_hidden_states",
    mask_key="encoder_attention_mask",
    component_classes=MappingProxyType(
        {
            "transformer": "diffusers.HunyuanVideoTransformer3DModel",
            "vae": "diffusers.AutoencoderKLHunyuanVideo",
            "text_encoder": "transformers.LlamaModel",
            "text_encoder_2": "transformers.CLIPTextModel",
        }
    ),
)

FAMILIES = {f.pipeline_class: f for f in (HUNYUAN_VIDEO,)}


def family_of(model_index: Mapping[str, Any], source: str) -> Family:
    """The family of a diffusers-layout model, from model_index.json's `_class_name`."""
    name = model_index.get("_class_name", HUNYUAN_VIDEO.pipeline_class)
    if name not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise ModelNotFoundError(f"model {source} is a {name}; this hyv runs {known}")
    return FAMILIES[name]
