"""HunyuanVideo (Tencent, 2024; diffusers' `HunyuanVideoPipeline`) as a hyv family: a Llama text encoder (hidden
states of a templated prompt) and CLIP (pooled), a 13B dual/single-stream DiT with embedded guidance, a 16-channel
causal VAE with 8x spatial and 4x temporal compression."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from render.core.settings import EncodeSettings, Profile, RenderSettings
from render.families.hunyuan_video import admin, attention, configs, dit, layout, original
from render.families.hunyuan_video.templates import template_for
from render.model.family import Family, Released, StepInputs, TextEncoders, TextEncoding
from render.model.mapping import ModuleMap
from render.model.ref import DIFFUSERS, ModelRef
from render.model.variant import DiTVariant

# TeaCache4HunyuanVideo's rescale polynomial (highest power first); `hyv calibrate` fits one per model.
TEACACHE_COEFFICIENTS = (7.33226126e02, -4.01131952e02, 6.75869174e01, -3.14987800e00, 9.61237896e-02)
MIN_TILE = 64  # pixels: the smallest spatial tile tried when backing off after an out-of-memory error
MIN_TILE_FRAMES = 8  # frames: the smallest temporal tile tried after the spatial floor (stride 4 = one latent)
# The released 13B model's configs, shipped in released/ (no weights): DiT and VAE are diffusers' defaults of their
# classes (HYVideo-T/2-cfgdistill, 884-16c-hy); the text encoders are the Llama-3-8B language model of
# xtuner/llava-llama-3-8b-v1_1-transformers (vocabulary 128320, as in the community repo) and CLIP ViT-L/14's text
# model. tests/test_first_use.py checks them against diffusers' defaults.
_SHIPPED = Path(__file__).parent / "released"
RELEASED = (Released("hunyuanvideo", "hunyuanvideo-community/HunyuanVideo", _SHIPPED / "hunyuanvideo"),)


class HunyuanVideo(Family):
    name = "HunyuanVideo"
    pipeline_classes = (layout.PIPELINE,)
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
            "transformer": "diffusers.HunyuanVideoTransformer3DModel",
            "vae": "diffusers.AutoencoderKLHunyuanVideo",
            "text_encoder": "transformers.LlamaModel",
            "text_encoder_2": "transformers.CLIPTextModel",
        }
    )
    embedding_tensors = ("prompt_embeds", "prompt_attention_mask", "pooled_prompt_embeds")
    text_streams = (("encoder_hidden_states", "encoder_attention_mask"),)
    embedded_guidance = True
    profile = Profile("HunyuanVideo")
    original_marker = f"{layout.T2V}/"
    released: tuple[Released, ...] = RELEASED
    module_map = ModuleMap(original.map_module, original.original_linear_modules)

    # ------------------------------------------------------------------ model folders

    def find_original(self, path: Path, source: str) -> ModelRef | None:
        return layout.find_original(path, source)

    def config(self, model: ModelRef, name: str) -> dict[str, Any]:
        return configs.config(model, name)

    def built_in(self, model: ModelRef, name: str) -> str | None:
        if model.layout != DIFFUSERS and name == "scheduler":
            return "flow matching, shift 7 (built in: the original layout has no scheduler folder)"
        return None

    def component_weights(
        self, model: ModelRef, name: str, variant: DiTVariant
    ) -> tuple[dict[str, tuple[int, ...]], list[Path], dict[str, Any]] | None:
        from render.model.weightfiles import file_shapes, weight_files

        if name == "transformer":
            src = dit.dit_source(model, variant)
            files = weight_files(src.path) if src.path.is_dir() else [src.path]
            return dit.diffusers_shapes(model, variant), files, dit.dit_config(model, variant)
        if model.layout != DIFFUSERS and name == "vae":
            from render.core.errors import ModelNotFoundError

            f = model.component("vae") / "pytorch_model.pt"
            if not f.is_file():
                raise ModelNotFoundError(f"model {model.source} has no VAE checkpoint {f}")
            return original.vae_state_dict(file_shapes(f)), [f], self.config(model, name)
        return None

    def fp8_kind(self, model: ModelRef, variant: DiTVariant) -> str | None:
        return dit.fp8_kind(model, variant)

    def dit_config(self, model: ModelRef, variant: DiTVariant) -> dict[str, Any]:
        return dit.dit_config(model, variant)

    # ------------------------------------------------------------------ loading

    def load_text_encoders(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> TextEncoders:
        from transformers import AutoTokenizer, CLIPTextModel, LlamaModel

        from render.model.loading import text_encoders_placed

        tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        tok.padding_side = "right"
        tok2 = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
        te = LlamaModel.from_pretrained(model.component("text_encoder"), dtype=dtype).eval()
        te2 = CLIPTextModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype).eval()
        modules = {"tokenizer": tok, "text_encoder": te, "tokenizer_2": tok2, "text_encoder_2": te2}
        hooks = text_encoders_placed(modules, ["text_encoder", "text_encoder_2"], device, offload)
        return TextEncoders(modules, device, dtype, hooks)

    def load_transformer(self, model: ModelRef, variant: DiTVariant, dtype: Any) -> Any:
        return dit.load_dit(model, variant, dtype)

    def load_vae(self, model: ModelRef, dtype: Any) -> Any:
        from diffusers import AutoencoderKLHunyuanVideo

        if model.layout == DIFFUSERS:
            return AutoencoderKLHunyuanVideo.from_pretrained(model.component("vae"), dtype=dtype)
        import torch

        from render.model.weightfiles import load_pt, unwrap_state_dict

        path = model.component("vae") / "pytorch_model.pt"
        sd = original.vae_state_dict(unwrap_state_dict(load_pt(path), path))
        with torch.device("meta"):
            vae: Any = AutoencoderKLHunyuanVideo.from_config(self.config(model, "vae"))
        vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
        return vae

    def preload(self, stage: str) -> None:
        if stage == "encode":
            from transformers import CLIPTextModel, LlamaModel  # noqa: F401
        else:
            from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel  # noqa: F401

    # ------------------------------------------------------------------ encode and render

    def text_encoding(self, model: ModelRef) -> TextEncoding:
        from render.families.hunyuan_video.text import HunyuanVideoText

        return HunyuanVideoText(model)

    def check_embeddings(
        self, dit_config: Mapping[str, Any], source: str, manifest: Mapping[str, Any], frames: int
    ) -> str | None:
        enc = manifest.get("encoder", {})
        want_d, want_p = dit_config.get("text_embed_dim"), dit_config.get("pooled_projection_dim")
        if enc.get("text_dim") != want_d or enc.get("pooled_dim") != want_p:
            return (
                f"was encoded with text dim {enc.get('text_dim')} / pooled {enc.get('pooled_dim')}, but the DiT of "
                f"{source} takes {want_d} / {want_p}; re-encode with the same --model"
            )
        found = manifest.get("template", {}).get("name")
        want, _ = template_for(frames)
        if found != want:
            return (
                f"holds {found}-template embeddings but {frames} frame(s) need the {want} template; "
                f"re-encode with --frames {frames}"
            )
        return None

    def conditioning(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        # prompt_embeds [B, L, D], prompt_attention_mask [B, L], pooled_prompt_embeds [B, P]
        return {
            "encoder_hidden_states": tensors["prompt_embeds"],
            "encoder_attention_mask": tensors["prompt_attention_mask"],
            "pooled_projections": tensors["pooled_prompt_embeds"],
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
        from render.sampling.attention import trim_padding

        def kwargs(tensors: Mapping[str, Any]) -> dict[str, Any]:
            c = self.conditioning(tensors)
            return trim_padding(c, "encoder_hidden_states", "encoder_attention_mask") if trim else c

        guidance = s.guidance

        def per_step(i: int, x: Any, timesteps: Any) -> dict[str, Any]:
            import torch

            # as the distilled model was trained: guidance * 1000. [B]
            return {"guidance": torch.tensor([guidance] * x.shape[0], dtype=x.dtype, device=x.device) * 1000.0}

        guided = bool(config.get("guidance_embeds", True))  # an image-to-video DiT may have none
        return StepInputs(
            kwargs(cond), kwargs(uncond) if uncond is not None else None, per_step=per_step if guided else None
        )

    # ------------------------------------------------------------------ the DiT's blocks

    def attention_blocks(self, transformer: Any) -> list[Any]:
        return attention.attention_blocks(transformer)

    def processor(self, padding: Any) -> Any:
        return attention.processor(padding)

    def teacache(self) -> Any:
        from render.sampling.teacache import TeaCacheRecipe, adaln_modulated

        return TeaCacheRecipe(attention.attention_blocks, adaln_modulated, TEACACHE_COEFFICIENTS)

    def cp_plan(self) -> dict[str, Any]:
        return attention.cp_plan()

    # ------------------------------------------------------------------ the VAE

    def smaller_tiles(self, vae: Any, tiling: bool) -> bool:
        """Halve the spatial tiles down to MIN_TILE, then the temporal ones down to MIN_TILE_FRAMES; False at the
        floor. Strides keep diffusers' 3/4 overlap (temporal strides stay multiples of the 4x compression)."""
        if tiling and vae.tile_sample_min_height // 2 >= MIN_TILE:
            vae.tile_sample_min_height //= 2
            vae.tile_sample_min_width //= 2
            vae.tile_sample_stride_height = vae.tile_sample_min_height * 3 // 4
            vae.tile_sample_stride_width = vae.tile_sample_min_width * 3 // 4
            return True
        if vae.tile_sample_min_num_frames // 2 >= MIN_TILE_FRAMES:
            vae.tile_sample_min_num_frames //= 2
            vae.tile_sample_stride_num_frames = max(4, vae.tile_sample_min_num_frames // 2)
            return True
        return False

    def tile_record(self, vae: Any, tiling: bool, backoffs: int = 0) -> dict[str, Any]:
        return {
            "spatial": [vae.tile_sample_min_height, vae.tile_sample_min_width] if tiling else None,
            "spatial_stride": [vae.tile_sample_stride_height, vae.tile_sample_stride_width] if tiling else None,
            "frames": vae.tile_sample_min_num_frames,
            "frame_stride": vae.tile_sample_stride_num_frames,
            "backoffs": backoffs,
        }

    # ------------------------------------------------------------------ the memory plan

    def plan_text_inputs(
        self, model: ModelRef, settings: EncodeSettings, frames: int
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """Llama reads text_len + the template's tokens; CLIP 77."""
        return [
            ("text_encoder", settings.text_len + _crop_start(model, frames), {"output_hidden_states": True}),
            ("text_encoder_2", 77, {"output_hidden_states": False}),
        ]

    def plan_dit_inputs(
        self, dit_config: Mapping[str, Any], latent: tuple[int, ...], text_len: int, dtype: Any
    ) -> dict[str, Any]:
        import torch

        def meta(shape: tuple[int, ...], dt: Any = dtype) -> Any:
            return torch.empty(shape, device="meta", dtype=dt)

        b, _, t, h, w = latent
        kw = {
            "hidden_states": meta((b, int(dit_config.get("in_channels", latent[1])), t, h, w)),
            "encoder_hidden_states": meta((1, text_len, int(dit_config["text_embed_dim"]))),
            "encoder_attention_mask": meta((1, text_len)),
            "pooled_projections": meta((1, int(dit_config["pooled_projection_dim"]))),
            "timestep": meta((1,), torch.float32),
        }
        if dit_config.get("guidance_embeds", True):
            kw["guidance"] = meta((1,))
        return kw

    # ------------------------------------------------------------------ admin tools

    def tiny_presets(self) -> tuple[str, ...]:
        from render.families.hunyuan_video.tiny import PRESETS

        return tuple(PRESETS)

    def init_tiny(self, directory: Path, preset: str, seed: int) -> None:
        from render.families.hunyuan_video.tiny import write_tiny

        write_tiny(directory, preset, seed)

    def convert_original(self, src: ModelRef, out: Path, max_shard_size: str) -> None:
        admin.convert_original(src, out, max_shard_size)

    def fetch_list(self, layout_name: str, fp8: bool) -> list[Any]:
        return admin.fetch_list(layout_name, fp8)

    def after_download(self, directory: Path, say: Any) -> None:
        admin.after_download(directory, say)

    def prepare_text_encoder(self, src: Path, dst: Path, *, dtype_name: str, force: bool) -> Path:
        return admin.prepare_text_encoder(src, dst, dtype_name=dtype_name, force=force)


def _crop_start(model: ModelRef, frames: int) -> int:
    """Template tokens before the prompt, from the model's tokenizer when it has one (Llama-3: 95 / 36)."""
    from render.families.hunyuan_video.templates import compute_crop_start

    name, text = template_for(frames)
    d = model.component("tokenizer")
    if d.is_dir() and any(d.glob("tokenizer*")):
        from transformers import AutoTokenizer

        return compute_crop_start(AutoTokenizer.from_pretrained(d), text)
    return 95 if name == "video" else 36
