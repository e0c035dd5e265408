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
from render.families.hunyuan_video15 import attention, buckets, encoders, layout, original
from render.families.hunyuan_video15.hub import RELEASED
from render.families.hunyuan_video15.upscaling import SuperResolution
from render.model.family import StepInputs, TextEncoders, TextEncoding
from render.model.mapping import ModuleMap
from render.model.ref import DIFFUSERS, ModelRef
from render.model.variant import DiTVariant

T2V, I2V = "HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"
MIN_TILE = 64  # pixels: the smallest spatial tile tried when backing off after an out-of-memory error
# 1.5 has no published TeaCache polynomial: the relative L1 change itself, until `hyv calibrate` fits one.
IDENTITY_POLYNOMIAL = (0.0, 0.0, 0.0, 1.0, 0.0)
DEFAULTS = MappingProxyType(
    {"frames": 121, "fps": 24, "steps": 50, "text_len": 1000, "clip_len": 256, "neg_prompt": ""}
)
STEP_DISTILLED_STEPS = 8  # Tencent's table: 8 or 12 (its CLI's default 12)


class HunyuanVideo15(SuperResolution):
    name = "HunyuanVideo-1.5"
    pipeline_classes = (T2V, I2V)
    stage_components = MappingProxyType(
        {
            "encode": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
            "render": ("transformer", "scheduler"),
            "decode": ("vae",),
        }
    )
    weight_components = ("transformer", "vae", "text_encoder", "text_encoder_2", "image_encoder")
    component_classes = MappingProxyType(
        {
            "transformer": "diffusers.HunyuanVideo15Transformer3DModel",
            "vae": "diffusers.AutoencoderKLHunyuanVideo15",
            "text_encoder": "transformers.Qwen2_5_VLTextModel",
            "text_encoder_2": "transformers.T5EncoderModel",
            "image_encoder": "transformers.SiglipVisionModel",
        }
    )
    embedding_tensors = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
    text_streams = (
        ("encoder_hidden_states", "encoder_attention_mask"),
        ("encoder_hidden_states_2", "encoder_attention_mask_2"),
    )
    embedded_guidance = False
    noise_in_dit_dtype = True  # diffusers: randn_tensor(dtype=transformer.dtype)
    # FasterCache and PAB expect CFG batched in one forward (PAB's state is shared by hyv's two forwards): refused.
    cache_kinds = ("none", "fbcache", "teacache", "magcache", "taylorseer")
    profile = Profile(
        "HunyuanVideo-1.5",
        sizes=buckets.presets(),
        refused=MappingProxyType({"guidance": "it has no embedded guidance: its guidance is CFG, --cfg-scale"}),
    )
    original_marker = "transformer/<variant>/ and vae/ of HunyuanVideo 1.5"
    module_map = ModuleMap(original.map_module, original.linear_modules)
    released = RELEASED

    # ------------------------------------------------------------------ model folders

    def find_original(self, path: Path, source: str) -> ModelRef | None:
        return layout.find_original(path, source)

    def config(self, model: ModelRef, name: str) -> dict[str, Any]:
        """A component's config in diffusers' terms (Tencent's translated; its scheduler is its variant's)."""
        if model.layout == DIFFUSERS:
            return model.config(name)
        if name == "scheduler":
            _, shift, _ = layout.VARIANTS.get(layout.variant_of(model), (6.0, 5.0, 50))
            return {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": shift}
        if name == "transformer":
            return original.dit_config(model.config(name), layout.variant_of(model), _dit_shapes(model))
        if name == "vae":
            return original.vae_config(model.config(name))
        return model.config(name)

    def built_in(self, model: ModelRef, name: str) -> str | None:
        if model.layout != DIFFUSERS and name == "scheduler":
            shift = self.config(model, "scheduler")["shift"]
            return f"flow matching, shift {shift:g} (Tencent's table for {layout.variant_of(model)})"
        return None

    def component_weights(
        self, model: ModelRef, name: str, variant: DiTVariant
    ) -> tuple[dict[str, tuple[int, ...]], list[Path], dict[str, Any]] | None:
        from render.model.weightfiles import weight_files

        if name == "transformer":
            self.check_variant(variant)  # checked with the model, before any stage runs
        if model.layout == DIFFUSERS or name not in ("transformer", "vae", "text_encoder_2"):
            return None
        d = model.component(name)
        files = weight_files(d)
        if name == "text_encoder_2":
            problem = encoders.glyph_problem(model.component("glyph"))
            if problem is not None:
                raise ModelNotFoundError(problem)
            return None  # byt5-small itself: checked as a folder
        if not files:
            raise ModelNotFoundError(f"{d} holds no weight files")
        config = self.config(model, name)
        if name == "vae":
            return original.convert_vae(_shapes(files)), files, config
        return _converted_dit_shapes(_shapes(files), config, str(d)), files, config

    def defaults(self, model: ModelRef) -> dict[str, Any]:
        """121 frames at 24 fps, the 16:9 bucket of the model's target size, the CFG scale of its guider (6, or 1
        when CFG-distilled), the shift of its scheduler, 50 steps (8 for a step-distilled model), an empty
        negative prompt (Tencent's), 1000 + 256 text tokens."""
        dit = self.config(model, "transformer")
        _, _, s = self.vae_factors(model)
        height, width = buckets.bucket(9, 16, int(dit.get("target_size", 640)), patch=s)
        out: dict[str, Any] = {**DEFAULTS, "height": height, "width": width}
        out["shift"] = float(self.config(model, "scheduler").get("shift", 5.0))
        if model.layout != DIFFUSERS:
            cfg, _, steps = layout.VARIANTS.get(layout.variant_of(model), (6.0, 5.0, 50))
            return {**out, "cfg_scale": cfg, "steps": steps}
        guider = _guider(model)
        out["cfg_scale"] = float(guider.get("guidance_scale", 6.0)) if guider.get("enabled", True) else 1.0
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
        from render.model.loading import text_encoders_placed

        tok, te = encoders.load_qwen(model, dtype)
        tok2, te2 = encoders.load_byt5(model, dtype)
        modules = {"tokenizer": tok, "text_encoder": te, "tokenizer_2": tok2, "text_encoder_2": te2}
        hooks = text_encoders_placed(modules, ["text_encoder", "text_encoder_2"], device, offload)
        return TextEncoders(modules, device, dtype, hooks)

    def load_transformer(self, model: ModelRef, variant: DiTVariant, dtype: Any) -> Any:
        from diffusers import HunyuanVideo15Transformer3DModel

        self.check_variant(variant)
        if variant.dit_file is not None:
            return original.load_dit_file(variant.dit_file, self.dit_config(model, variant), dtype)
        if model.layout == DIFFUSERS:
            return HunyuanVideo15Transformer3DModel.from_pretrained(model.component("transformer"), dtype=dtype)
        from render.model.weightfiles import weight_files

        config = self.config(model, "transformer")
        hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
        d = model.component("transformer")
        sd = original.convert_dit(original.read_safetensors(weight_files(d)), hidden, str(d))
        return original.assemble(HunyuanVideo15Transformer3DModel, config, sd, dtype)

    def load_vae(self, model: ModelRef, dtype: Any) -> Any:
        from diffusers import AutoencoderKLHunyuanVideo15

        if model.layout == DIFFUSERS:
            return AutoencoderKLHunyuanVideo15.from_pretrained(model.component("vae"), dtype=dtype)
        from render.model.weightfiles import weight_files

        sd = original.convert_vae(original.read_safetensors(weight_files(model.component("vae"))))
        return original.assemble(AutoencoderKLHunyuanVideo15, self.config(model, "vae"), sd, dtype)

    def preload(self, stage: str) -> None:
        if stage == "encode":
            from transformers import Qwen2_5_VLTextModel, T5EncoderModel  # noqa: F401
        else:
            from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel  # noqa: F401

    # ------------------------------------------------------------------ encode and render

    def text_encoding(self, model: ModelRef) -> TextEncoding:
        from render.families.hunyuan_video15.text import HunyuanVideo15Text

        return HunyuanVideo15Text(model)

    def components_for(self, model: ModelRef) -> Mapping[str, tuple[str, ...]]:
        if model.pipeline != layout.I2V:
            return self.stage_components
        return {**self.stage_components, "image": ("image_encoder", "feature_extractor", "vae")}

    def image_encoding(self, model: ModelRef) -> Any:
        if model.pipeline != layout.I2V:
            return None
        from render.families.hunyuan_video15.images import HunyuanVideo15Images

        return HunyuanVideo15Images(model, self)

    def image_required(self, model: ModelRef) -> bool:
        """An image-to-video model needs a first frame, unless its hyv.json says it also renders from text alone
        (`"tasks": ["t2v", "i2v"]`: 1.5's image models take zero image conditions for text-to-video)."""
        from render.core import hyvjson

        return model.pipeline == layout.I2V and "t2v" not in (hyvjson.read(model.path).get("tasks") or [])

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
        image: Mapping[str, Any] | None = None,
    ) -> StepInputs:
        from render.families.hunyuan_video15.inputs import step_inputs

        return step_inputs(self, cond, uncond, trim, config, image)

    # ------------------------------------------------------------------ the DiT's blocks

    def attention_blocks(self, transformer: Any) -> list[Any]:
        return attention.attention_blocks(transformer)

    def processor(self, padding: Any) -> Any:
        return attention.processor(padding)

    def teacache(self) -> Any:
        from render.sampling.teacache import TeaCacheRecipe, adaln_modulated

        return TeaCacheRecipe(attention.attention_blocks, adaln_modulated, IDENTITY_POLYNOMIAL)

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

    def plan_image_inputs(self, model: ModelRef, height: int, width: int) -> list[tuple[str, Any]]:
        from render.families.hunyuan_video15.inputs import plan_image_runs

        if model.pipeline != layout.I2V:
            return []
        return plan_image_runs(model.config("feature_extractor"), height, width)

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

    def convert_original(self, src: ModelRef, out: Path, max_shard_size: str) -> None:
        from render.families.hunyuan_video15.admin import convert_original

        convert_original(src, out, max_shard_size, self)

    def fetch_list(self, layout_name: str, fp8: bool) -> list[Any]:
        from render.families.hunyuan_video15.admin import fetch_list

        return fetch_list(layout_name, fp8)

    def after_download(self, directory: Path, say: Any) -> None:
        from render.families.hunyuan_video15.admin import after_download

        after_download(directory, say)

    def prepare_text_encoder(self, src: Path, dst: Path, *, dtype_name: str, force: bool) -> Path:
        from render.families.hunyuan_video15.admin import prepare_text_encoder

        return prepare_text_encoder(src, dst, dtype_name=dtype_name, force=force)


def _shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    from render.model.weightfiles import file_shapes

    out: dict[str, tuple[int, ...]] = {}
    for f in files:
        out.update(file_shapes(f))
    return out


def _dit_shapes(model: ModelRef) -> dict[str, tuple[int, ...]] | None:
    from render.model.weightfiles import weight_files

    d = model.component("transformer")
    files = weight_files(d) if d.is_dir() else []
    return _shapes(files) if files else None


def _converted_dit_shapes(shapes: dict[str, tuple[int, ...]], config: dict[str, Any], source: str) -> dict:
    """The original DiT's tensor shapes under diffusers' names (converted on the meta device: no data read)."""
    import torch

    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: tuple(v.shape) for k, v in original.convert_dit(meta, hidden, source).items()}


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
