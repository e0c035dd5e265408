"""HunyuanVideo-I2V (Tencent, 2025; diffusers' `HunyuanVideoImageToVideoPipeline`) as a hyv family: HunyuanVideo's DiT
and VAE with a first frame, in either of the pipeline's two modes (the DiT config's `image_condition_type`):

- latent_concat (the 33-channel model): the DiT reads [latents, the image's latent in frame 0 (zeros after), a mask
  of ones in frame 0] = 2C + 1 channels; no embedded guidance; the decoded video's first 4 frames (the image's) are
  dropped, so a request for F frames gives F - 4;
- token_replace (the 16-channel model, Tencent's default since March 2025): latent frame 0 is the image's clean
  latent, put back after every step (the scheduler moves only frames 1:), and the DiT modulates its tokens with the
  timestep-0 embedding; embedded guidance as text-to-video.

Both start from noise * 0.999 + the image's latent * (1 - 0.999) in every frame (the pipeline's "stability" mix).
The text encoder is a LLaVA that reads the prompt with the image (`i2v_text`); the image's latent is the encode
stage's image half (`HunyuanVideoI2VImages`). Sizes: the image's bucket of Tencent's 720p list (area 960^2, sides
multiples of 32, the ratio nearest the image's), the image stretched to it (as the pipeline resizes). Layouts:
diffusers' (the community conversions) and Tencent's `ckpts/` (`layout.find_original_i2v`), read in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from render.core.buckets import crop_sizes, nearest
from render.core.settings import EncodeSettings, Profile, RenderSettings
from render.families.hunyuan_video import layout
from render.families.hunyuan_video.family import HunyuanVideo
from render.model.family import ImageEncoding, StepInputs, TextEncoders, TextEncoding, unsupported
from render.model.ref import ModelRef
from render.model.variant import DiTVariant

STABILITY = 0.999  # the noise's share of the initial latents (the rest is the image's latent)
BUCKET_AREA, BUCKET_STEP = 960, 32  # Tencent's 720p buckets: generate_crop_size_list(960, 32)
# TeaCache's hook reads block 0's plain AdaLN norm; MagCache needs `hyv calibrate`, which has no first frame to give
CACHES = ("none", "fbcache", "taylorseer")
# transformers' renames of a LLaVA checkpoint's tensors (its conversion mapping for "llava"), the first that matches
LLAVA_RENAMES = (
    (r"^language_model\.lm_head", "lm_head"),
    (r"^language_model\.model", "model.language_model"),
    (r"^language_model", "model.language_model"),
    (r"^vision_tower", "model.vision_tower"),
    (r"^multi_modal_projector", "model.multi_modal_projector"),
)


class HunyuanVideoI2V(HunyuanVideo):
    name = "HunyuanVideo-I2V"
    pipeline_classes = (layout.PIPELINE_I2V,)
    released = ()  # none of its configs ship (yet): `hyv plan` takes its folder
    stage_components = MappingProxyType(
        {
            "encode": ("text_encoder", "tokenizer", "image_processor", "text_encoder_2", "tokenizer_2"),
            "render": ("transformer", "scheduler"),
            "decode": ("vae",),
        }
    )
    component_classes = MappingProxyType(
        {**HunyuanVideo.component_classes, "text_encoder": "transformers.LlavaForConditionalGeneration"}
    )
    profile = Profile("HunyuanVideo-I2V")
    original_marker = f"{layout.I2V}/"
    cache_kinds = CACHES

    # ------------------------------------------------------------------ model folders

    def components_for(self, model: ModelRef) -> Mapping[str, tuple[str, ...]]:
        return {**self.stage_components, "image": ("vae",)}

    def find_original(self, path: Path, source: str) -> ModelRef | None:
        return layout.find_original_i2v(path, source)

    def component_weights(
        self, model: ModelRef, name: str, variant: DiTVariant
    ) -> tuple[dict[str, tuple[int, ...]], list[Path], dict[str, Any]] | None:
        """The LLaVA's tensors under its module's names: checkpoints keep transformers 4's (`language_model.model.`,
        `vision_tower.`), which transformers renames as it loads (its conversion mapping for "llava")."""
        if name != "text_encoder":
            return super().component_weights(model, name, variant)
        import re

        from render.model.weightfiles import folder_shapes, weight_files

        d = model.component(name)
        shapes = {}
        for key, shape in folder_shapes(d).items():
            for pattern, to in LLAVA_RENAMES:
                if re.match(pattern, key):
                    key = re.sub(pattern, to, key, count=1)
                    break
            shapes[key] = shape
        return shapes, weight_files(d), {}

    def defaults(self, model: ModelRef) -> dict[str, Any]:
        """The shift of its scheduler (7 in the conversions, Tencent's "stable" setting); the rest as HunyuanVideo
        (129 frames, 50 steps, embedded guidance 6)."""
        return {"shift": float(self.config(model, "scheduler").get("shift", 7.0))}

    def profile_for(self, model: ModelRef) -> Profile:
        if _condition(self.config(model, "transformer")) == "latent_concat":
            why = "its latent_concat DiT has no embedded guidance; use --cfg-scale with a negative prompt"
            return replace(self.profile, refused=MappingProxyType({"guidance": why}))
        return self.profile

    # ------------------------------------------------------------------ loading

    def load_text_encoders(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> TextEncoders:
        from transformers import (
            AutoTokenizer,
            CLIPImageProcessor,
            CLIPTextModel,
            LlavaForConditionalGeneration,
        )

        from render.model.loading import text_encoders_placed

        tok = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        tok.padding_side = "right"
        tok2 = AutoTokenizer.from_pretrained(model.component("tokenizer_2"))
        te = LlavaForConditionalGeneration.from_pretrained(model.component("text_encoder"), dtype=dtype).eval()
        te2 = CLIPTextModel.from_pretrained(model.component("text_encoder_2"), dtype=dtype).eval()
        modules = {
            "tokenizer": tok,
            "text_encoder": te,
            "image_processor": CLIPImageProcessor.from_pretrained(model.component("image_processor")),
            "tokenizer_2": tok2,
            "text_encoder_2": te2,
        }
        hooks = text_encoders_placed(modules, ["text_encoder", "text_encoder_2"], device, offload)
        return TextEncoders(modules, device, dtype, hooks)

    def preload(self, stage: str) -> None:
        if stage == "encode":
            from transformers import CLIPTextModel, LlavaForConditionalGeneration  # noqa: F401
        else:
            super().preload(stage)

    # ------------------------------------------------------------------ encode and render

    def text_encoding(self, model: ModelRef) -> TextEncoding:
        from render.families.hunyuan_video.i2v_text import HunyuanVideoI2VText

        return HunyuanVideoI2VText(model, _condition(self.config(model, "transformer")))

    def image_encoding(self, model: ModelRef) -> ImageEncoding:
        return HunyuanVideoI2VImages(self)

    def image_required(self, model: ModelRef) -> bool:
        return True

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
        if manifest.get("template", {}).get("name") != "i2v":
            return f"holds text-to-video embeddings, but {source} is an image-to-video model; re-encode with --image"
        if _condition(dit_config) == "latent_concat" and frames < 5:
            return "makes no frame at --frames 1 with a latent_concat model (its first 4 are the image's); use 5+"
        return None

    def step_inputs(
        self,
        cond: Mapping[str, Any],
        uncond: Mapping[str, Any] | None,
        s: RenderSettings,
        trim: bool,
        config: Mapping[str, Any],
        image: Mapping[str, Any] | None = None,
    ) -> StepInputs:
        import torch

        assert image is not None, "an image-to-video render needs its image artifact"
        base = super().step_inputs(cond, uncond, s, trim, config)
        first = image["image_latents"].to(torch.float32)  # [1, C, 1, h, w]: the image's latent, scaled

        def start(noise: Any) -> Any:  # [B, C, T, h, w]: noise * 0.999 + image * 0.001 in every frame
            t = torch.tensor([STABILITY])
            return noise * t.to(noise.device) + first.to(noise.device) * (1 - t.to(noise.device))

        if _condition(config) == "latent_concat":

            def concat(x: Any) -> Any:  # [B, C, T, h, w] -> [B, 2C + 1, T, h, w]
                b, _, t, h, w = x.shape
                condition, mask = torch.zeros_like(x), x.new_zeros((b, 1, t, h, w))
                condition[:, :, :1] = first.to(x)
                mask[:, :, :1] = 1.0
                return torch.cat([x, condition, mask], dim=1)

            return StepInputs(base.cond, base.uncond, hidden=concat, per_step=base.per_step, start=start)

        def replaced(x: Any) -> Any:  # frame 0 of the DiT's input is the clean image latent
            return torch.cat([first.to(x), x[:, :, 1:]], dim=2)

        def put_back(latents: Any) -> Any:  # the scheduler's frame 0 is replaced (fp32 + step: promoted as diffusers)
            return torch.cat([first.to(latents.device), latents[:, :, 1:]], dim=2)

        return StepInputs(
            base.cond, base.uncond, hidden=replaced, per_step=base.per_step, start=start, after_step=put_back
        )

    def dropped_frames(self, dit_config: Mapping[str, Any]) -> int:
        return 4 if _condition(dit_config) == "latent_concat" else 0

    # ------------------------------------------------------------------ the DiT's blocks

    def teacache(self) -> Any:
        raise unsupported(self.name, "teacache (its token_replace blocks modulate the first frame apart)")

    def cp_plan(self) -> dict[str, Any]:
        raise unsupported(self.name, "context parallel (the first frame's tokens must stay on one rank)")

    # ------------------------------------------------------------------ the memory plan

    def plan_text_inputs(
        self, model: ModelRef, settings: EncodeSettings, frames: int
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """The LLaVA reads text_len + the template's tokens + the image's N - 1 more (its language model counted:
        the vision tower is small beside it); CLIP 77."""
        from render.families.hunyuan_video.i2v_text import image_tokens

        crop = 103  # Llama-3's tokens before the prompt in the I2V template
        d = model.component("tokenizer")
        if d.is_dir() and any(d.glob("tokenizer*")):
            from transformers import AutoTokenizer

            from render.families.hunyuan_video.templates import I2V_TEMPLATE, compute_crop_start

            crop = compute_crop_start(AutoTokenizer.from_pretrained(d), I2V_TEMPLATE)
        n = image_tokens(self.config(model, "text_encoder"))
        return [
            ("text_encoder", settings.text_len + crop + n - 1, {"output_hidden_states": True}),
            ("text_encoder_2", 77, {"output_hidden_states": False}),
        ]

    def plan_image_inputs(self, model: ModelRef, height: int, width: int) -> list[tuple[str, Any]]:
        import torch

        def encode(vae: Any) -> Any:  # one frame [1, 3, 1, H, W] -> its latent distribution's mode
            x = torch.empty((1, 3, 1, height, width), device="meta", dtype=vae.dtype)
            return vae.encode(x).latent_dist.mode()

        return [("vae", encode)]

    # ------------------------------------------------------------------ admin tools

    def tiny_presets(self) -> tuple[str, ...]:
        from render.families.hunyuan_video.tiny_i2v import PRESETS

        return tuple(PRESETS)

    def init_tiny(self, directory: Path, preset: str, seed: int) -> None:
        from render.families.hunyuan_video.tiny_i2v import write_tiny

        write_tiny(directory, preset, seed)

    def fetch_list(self, layout_name: str, fp8: bool) -> list[Any]:
        from render.families.hunyuan_video.admin import fetch_list_i2v

        if fp8:
            raise unsupported(self.name, "a Tencent fp8 checkpoint (pass --fp8 at run time: fp8 storage)")
        return fetch_list_i2v(layout_name)

    def after_download(self, directory: Path, say: Any) -> None:
        return None

    def prepare_text_encoder(self, src: Path, dst: Path, *, dtype_name: str, force: bool) -> Path:
        raise unsupported(self.name, "prepare-text-encoder (its LLaVA is used whole)")


class HunyuanVideoI2VImages(ImageEncoding):
    """The first frame's latent: the image stretched to the video's size (PIL Lanczos, diffusers' VideoProcessor),
    one frame through the VAE (no tiling), its distribution's mode in float32 times the scaling factor:
    `image_latents` [1, C, 1, H/8, W/8]."""

    components = ("vae",)

    def __init__(self, family: HunyuanVideoI2V) -> None:
        self.family = family

    def size(self, width: int, height: int) -> tuple[int, int]:
        return nearest(height, width, crop_sizes(BUCKET_AREA, BUCKET_STEP))

    def key_record(self, height: int, width: int) -> dict[str, Any]:
        return {"height": height, "width": width, "resize": "stretch, lanczos", "vae_tiling": False}

    def load(self, model: ModelRef, device: Any, dtype: Any, offload: str) -> dict[str, Any]:
        from diffusers.video_processor import VideoProcessor

        from render.model.offload import place

        vae = self.family.load_vae(model, dtype).eval()
        vae.disable_tiling()
        hook = place(vae, offload, device)
        spatial = self.family.vae_factors(model)[2]
        return {"vae": vae, "processor": VideoProcessor(vae_scale_factor=spatial), "device": device,
                "hooks": [hook] if hook is not None else []}  # fmt: skip

    def encode(self, encoders: Any, image: Any, height: int, width: int) -> dict[str, Any]:
        import torch

        vae, device = encoders["vae"], encoders["device"]
        x = encoders["processor"].preprocess(image, height, width).to(device, vae.dtype)  # [1, 3, H, W] in [-1, 1]
        with torch.inference_mode():
            mode = vae.encode(x.unsqueeze(2)).latent_dist.mode()  # [1, C, 1, h, w]
        return {"image_latents": mode.to(torch.float32) * vae.config.scaling_factor}


def _condition(dit_config: Mapping[str, Any]) -> str:
    return str(dit_config.get("image_condition_type") or "latent_concat")
