"""HunyuanVideo 1.5 (Tencent, Nov 2025; diffusers' `HunyuanVideo15Pipeline`) as a hyv family: Qwen2.5-VL's language
model (hidden states of a chat-templated prompt) and ByT5 for quoted text, an 8.3B DiT of 54 dual-stream blocks that
takes 65 input channels (32 noisy latents + 32 condition latents + 1 mask) and real CFG only, a 32-channel causal VAE
with 16x spatial and 4x temporal compression. Step-distilled models (`use_meanflow`) also take `timestep_r`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from render.core.errors import ModelNotFoundError
from render.core.settings import EncodeSettings, Profile, RenderSettings
from render.families.hunyuan_video15 import attention, buckets
from render.model.family import Family, Released, StepInputs, TextEncoders, TextEncoding
from render.model.ref import ModelRef
from render.model.variant import DiTVariant

T2V, I2V = "HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"
MIN_TILE = 64  # pixels: the smallest spatial tile tried when backing off after an out-of-memory error
# 1.5 has no published TeaCache polynomial: the relative L1 change itself, until `hyv calibrate` fits one.
IDENTITY_POLYNOMIAL = (0.0, 0.0, 0.0, 1.0, 0.0)
DEFAULTS = MappingProxyType(
    {"frames": 121, "fps": 24, "steps": 50, "text_len": 1000, "clip_len": 256, "neg_prompt": ""}
)
STEP_DISTILLED_STEPS = 8  # Tencent's table: 8 or 12 (its CLI's default 12)
# The released variants (community repos hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-<variant>), their configs
# shipped in released/ (no weights): the DiT and VAE are diffusers' defaults of their classes (target_size 640 for
# 480p, 960 for 720p; use_meanflow for the step-distilled model), Qwen2.5-VL-7B-Instruct's language model, ByT5-small's
# encoder with the Glyph-SDXL-v2 tokens (vocabulary 1510), SigLIP from FLUX.1-Redux (image-to-video); the guider's CFG
# scale 6 (1 when distilled) and the scheduler's shift 5 (480p), 9 (720p T2V), 7 (720p I2V, step-distilled).
VARIANTS = ("480p_t2v", "480p_i2v", "720p_t2v", "720p_i2v", "480p_t2v_distilled", "480p_i2v_distilled",
            "720p_i2v_distilled", "480p_i2v_step_distilled")  # fmt: skip
RELEASED = tuple(
    Released(
        f"hunyuanvideo-1.5-{v}",
        f"hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-{v}",
        Path(__file__).parent / "released" / f"hunyuanvideo-1.5-{v}",
    )
    for v in VARIANTS
)


class HunyuanVideo15(Family):
    name = "HunyuanVideo-1.5"
    pipeline_classes = (T2V, I2V)
    stage_components = MappingProxyType(
        {
            "encode": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
            "render": ("transformer", "scheduler"),
            "decode": ("vae",),
        }
    )
    weight_components = ("transformer", "vae", "text_encoder", "text_encoder_2")
    component_classes = MappingProxyType(
        {
            "transformer": "diffusers.HunyuanVideo15Transformer3DModel",
            "vae": "diffusers.AutoencoderKLHunyuanVideo15",
            "text_encoder": "transformers.Qwen2_5_VLTextModel",
            "text_encoder_2": "transformers.T5EncoderModel",
        }
    )
    embedding_tensors = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
    text_streams = (
        ("encoder_hidden_states", "encoder_attention_mask"),
        ("encoder_hidden_states_2", "encoder_attention_mask_2"),
    )
    embedded_guidance = False
    noise_in_dit_dtype = True  # diffusers: randn_tensor(dtype=transformer.dtype)
    # FasterCache and PAB expect CFG batched in one forward, and PAB shares its state between hyv's cond and uncond
    # forwards (whose text lengths differ once the padding is dropped): refused with a one-line error.
    cache_kinds = ("none", "fbcache", "teacache", "magcache", "taylorseer")
    profile = Profile(
        "HunyuanVideo-1.5",
        sizes=buckets.presets(),
        refused=MappingProxyType(
            {"guidance": "it has no embedded guidance; its guidance is real CFG: use --cfg-scale (1 turns it off)"}
        ),
    )
    original_marker = "transformer/480p_t2v/ (or another variant)"
    released = RELEASED

    # ------------------------------------------------------------------ model folders

    def defaults(self, model: ModelRef) -> dict[str, Any]:
        """121 frames at 24 fps, the 16:9 bucket of the model's target size, the CFG scale of its guider (6, or 1
        when CFG-distilled), the shift of its scheduler, 50 steps (8 for a step-distilled model), an empty
        negative prompt (Tencent's), 1000 + 256 text tokens."""
        dit = self.config(model, "transformer")
        _, _, s = self.vae_factors(model)
        height, width = buckets.bucket(9, 16, int(dit.get("target_size", 640)), patch=s)
        out: dict[str, Any] = {**DEFAULTS, "height": height, "width": width}
        guider = _guider(model)
        out["cfg_scale"] = float(guider.get("guidance_scale", 6.0)) if guider.get("enabled", True) else 1.0
        out["shift"] = float(self.config(model, "scheduler").get("shift", 5.0))
        if dit.get("use_meanflow"):
            out["steps"] = STEP_DISTILLED_STEPS
        return out

    def profile_for(self, model: ModelRef) -> Profile:
        _, _, s = self.vae_factors(model)
        return replace(self.profile, size_multiple=s * int(self.config(model, "transformer").get("patch_size", 1)))

    def check_variant(self, variant: DiTVariant) -> None:
        if variant.dit_file is not None and variant.dit_file.suffix == ".gguf":
            raise ModelNotFoundError("GGUF DiT files are read for HunyuanVideo only, not HunyuanVideo 1.5")

    # ------------------------------------------------------------------ loading

    def load_text_encoders(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> TextEncoders:
        from transformers import AutoTokenizer, Qwen2_5_VLTextModel, T5EncoderModel

        from render.model.loading import text_encoders_placed

        tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        tok.padding_side = "right"
        tok2 = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
        te = Qwen2_5_VLTextModel.from_pretrained(model.component("text_encoder"), dtype=dtype).eval()
        te2 = T5EncoderModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype).eval()
        modules = {"tokenizer": tok, "text_encoder": te, "tokenizer_2": tok2, "text_encoder_2": te2}
        hooks = text_encoders_placed(modules, ["text_encoder", "text_encoder_2"], device, offload)
        return TextEncoders(modules, device, dtype, hooks)

    def load_transformer(self, model: ModelRef, variant: DiTVariant, dtype: Any) -> Any:
        from diffusers import HunyuanVideo15Transformer3DModel

        self.check_variant(variant)
        if variant.dit_file is not None:
            from render.families.hunyuan_video15.original import load_dit_file

            return load_dit_file(variant.dit_file, self.dit_config(model, variant), dtype)
        return HunyuanVideo15Transformer3DModel.from_pretrained(model.component("transformer"), dtype=dtype)

    def load_vae(self, model: ModelRef, dtype: Any) -> Any:
        from diffusers import AutoencoderKLHunyuanVideo15

        return AutoencoderKLHunyuanVideo15.from_pretrained(model.component("vae"), dtype=dtype)

    def preload(self, stage: str) -> None:
        if stage == "encode":
            from transformers import Qwen2_5_VLTextModel, T5EncoderModel  # noqa: F401
        else:
            from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel  # noqa: F401

    # ------------------------------------------------------------------ encode and render

    def text_encoding(self, model: ModelRef) -> TextEncoding:
        from render.families.hunyuan_video15.text import HunyuanVideo15Text

        return HunyuanVideo15Text(model)

    def check_embeddings(
        self, dit_config: Mapping[str, Any], source: str, manifest: Mapping[str, Any], frames: int
    ) -> str | None:
        enc = manifest.get("encoder", {})
        want = (dit_config.get("text_embed_dim"), dit_config.get("text_embed_2_dim"))
        found = (enc.get("text_dim"), enc.get("text_2_dim"))
        if found != want:
            return (
                f"was encoded with text dims {found[0]} / {found[1]}, but the DiT of {source} takes "
                f"{want[0]} / {want[1]}; re-encode with the same --model"
            )
        return None

    def conditioning(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        # prompt_embeds [B, L, D], prompt_embeds_mask [B, L], prompt_embeds_2 [B, L2, D2], prompt_embeds_mask_2
        return {
            "encoder_hidden_states": tensors["prompt_embeds"],
            "encoder_attention_mask": tensors["prompt_embeds_mask"],
            "encoder_hidden_states_2": tensors["prompt_embeds_2"],
            "encoder_attention_mask_2": tensors["prompt_embeds_mask_2"],
        }

    def step_inputs(
        self,
        cond: Mapping[str, Any],
        uncond: Mapping[str, Any] | None,
        s: RenderSettings,
        trim: bool,
        config: Mapping[str, Any],
    ) -> StepInputs:
        from render.families.hunyuan_video15.inputs import step_inputs

        return step_inputs(self, cond, uncond, trim, config)

    # ------------------------------------------------------------------ the DiT's blocks

    def attention_blocks(self, transformer: Any) -> list[Any]:
        return attention.attention_blocks(transformer)

    def processor(self, padding: Any) -> Any:
        return attention.processor(padding)

    def teacache(self) -> Any:
        from render.families.hunyuan_video.family import modulated
        from render.sampling.teacache import TeaCacheRecipe

        return TeaCacheRecipe(attention.attention_blocks, modulated, IDENTITY_POLYNOMIAL)

    def register_cache_blocks(self) -> None:
        attention.register_cache_blocks()

    def cp_plan(self) -> dict[str, Any]:
        return attention.cp_plan()

    # ------------------------------------------------------------------ the VAE

    def smaller_tiles(self, vae: Any, tiling: bool) -> bool:
        """Halve the spatial tiles down to MIN_TILE (the 1.5 VAE tiles spatially only; its overlap is kept)."""
        if not tiling or vae.tile_sample_min_height // 2 < MIN_TILE:
            return False
        s = vae.tile_sample_min_height // vae.tile_latent_min_height  # the spatial compression
        vae.tile_sample_min_height //= 2
        vae.tile_sample_min_width //= 2
        vae.tile_latent_min_height = vae.tile_sample_min_height // s
        vae.tile_latent_min_width = vae.tile_sample_min_width // s
        return True

    def tile_record(self, vae: Any, tiling: bool, backoffs: int = 0) -> dict[str, Any]:
        return {
            "spatial": [vae.tile_sample_min_height, vae.tile_sample_min_width] if tiling else None,
            "overlap": vae.tile_overlap_factor if tiling else None,
            "frames": None,  # no temporal tiling: the causal VAE decodes every frame at once
            "backoffs": backoffs,
        }

    # ------------------------------------------------------------------ the memory plan

    def plan_text_inputs(
        self, model: ModelRef, settings: EncodeSettings, frames: int
    ) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            ("text_encoder", settings.text_len + _crop_start(model), {"output_hidden_states": True}),
            ("text_encoder_2", settings.clip_len, {}),
        ]

    def plan_dit_inputs(
        self, dit_config: Mapping[str, Any], latent: tuple[int, ...], text_len: int, dtype: Any
    ) -> dict[str, Any]:
        from render.families.hunyuan_video15.inputs import plan_inputs

        return plan_inputs(dit_config, latent, text_len, dtype)

    def plan_dit_forward(self, module: Any, kwargs: dict[str, Any]) -> Any:
        from render.families.hunyuan_video15.inputs import plan_forward

        return plan_forward(module, kwargs)

    # ------------------------------------------------------------------ admin tools

    def tiny_presets(self) -> tuple[str, ...]:
        from render.families.hunyuan_video15.tiny import PRESETS

        return tuple(PRESETS)

    def init_tiny(self, directory: Path, preset: str, seed: int) -> None:
        from render.families.hunyuan_video15.tiny import write_tiny

        write_tiny(directory, preset, seed)


def _guider(model: ModelRef) -> dict[str, Any]:
    """The model's guider config (its CFG scale), {} when it has none."""
    p = model.component("guider") / "guider_config.json"
    if not p.is_file():
        return {}
    try:
        found = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        raise ModelNotFoundError(f"{p} is not valid JSON") from None
    return found if isinstance(found, dict) else {}


def _crop_start(model: ModelRef) -> int:
    """Template tokens before the prompt, from the model's tokenizer when it has one (Qwen2.5-VL: 108)."""
    d = model.component("tokenizer")
    if d.is_dir() and any(d.glob("tokenizer*")):
        from transformers import AutoTokenizer

        from render.families.hunyuan_video15.prompts import crop_start

        return crop_start(AutoTokenizer.from_pretrained(d))
    return 108
