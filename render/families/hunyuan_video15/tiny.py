"""Randomly initialised HunyuanVideo 1.5 models built from configs with diffusers' and transformers' own classes,
in the diffusers layout, with no network (a locally trained byte-level BPE stands in for Qwen2.5-VL's tokenizer,
with its chat template; ByT5's tokenizer needs no files).

Presets:
- tiny:                    latent 4 channels, width 16 (2 heads x 8), 2 blocks, VAE 4x/2x: tests.
- tiny-i2v:                the same as an image-to-video model (a SigLIP image encoder), CFG 6.
- tiny-i2v-step-distilled: the image-to-video model step-distilled (`use_meanflow`: timestep_r), CFG 1, shift 7.
- tiny-sr:                 tiny, with its super-resolution models (sr-720p/, sr-1080p/ in hyv's layout: 1.5x its
                           buckets, then 1.5x again; 6 and 8 steps, as Tencent's).
- tiny-i2v-sr:             tiny-i2v with them.
- medium:                  latent 32 channels, width 512 (8 heads x 64), 12 blocks, VAE 16x/4x: benchmarks.
- medium-i2v, medium-i2v-step-distilled: the same as image-to-video models (benchmarks/i2v_steps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from render.families.hunyuan_video15.prompts import SYSTEM_MESSAGE


@dataclass(frozen=True)
class Preset:
    latent: int  # VAE latent channels (the DiT takes 2 * latent + 1)
    heads: int
    head_dim: int
    layers: int
    rope_axes: tuple[int, int, int]
    qwen_hidden: int
    qwen_layers: int
    byt5_dim: int
    image_dim: int
    vae_channels: tuple[int, ...]
    spatial: int
    temporal: int
    target_size: int
    kind: str = "t2v"  # t2v | i2v | i2v_step_distilled
    qwen_heads: int = 2
    mrope: tuple[int, int, int] = (1, 1, 2)  # sums to the Qwen head size / 2
    sr: bool = False  # with super-resolution models (render.families.hunyuan_video15.sr_models)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(4, 2, 8, 2, (2, 2, 4), 16, 4, 32, 12, (16, 16), 4, 2, 32),
    "tiny-i2v": Preset(4, 2, 8, 2, (2, 2, 4), 16, 4, 32, 12, (16, 16), 4, 2, 32, "i2v"),
    "tiny-i2v-step-distilled": Preset(4, 2, 8, 2, (2, 2, 4), 16, 4, 32, 12, (16, 16), 4, 2, 32, "i2v_step_distilled"),
    "tiny-sr": Preset(4, 2, 8, 2, (2, 2, 4), 16, 4, 32, 12, (16, 16), 4, 2, 32, sr=True),
    "tiny-i2v-sr": Preset(4, 2, 8, 2, (2, 2, 4), 16, 4, 32, 12, (16, 16), 4, 2, 32, "i2v", sr=True),
    "medium": Preset(32, 8, 64, 12, (16, 24, 24), 1024, 6, 256, 64, (16, 32, 64, 64, 64), 16, 4, 256, "t2v", 16,
                     (8, 12, 12)),
}
PRESETS["medium-i2v"] = replace(PRESETS["medium"], kind="i2v")
PRESETS["medium-i2v-step-distilled"] = replace(PRESETS["medium"], kind="i2v_step_distilled")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = [
    SYSTEM_MESSAGE,
    "a photo of a cat. A cat walks on the grass, realistic style. A dog runs along the beach at sunset.",
    'a sign that says "HELLO" on a wooden door. a red fox runs through snowy woods at dawn.',
    "a red circle moves to the right on a black background. a green square moves up on a white background.",
    "a blue triangle moves to the left on a yellow background; the camera pans slowly over a city at night.",
    "user system assistant",
]


def build_tokenizer(vocab: int = 400) -> Any:
    """A byte-level BPE trained on a fixed corpus (deterministic), with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"], padding_side="right", model_max_length=131072,
    )  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_components(preset: str, seed: int) -> dict[str, Any]:
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        T5Config,
        T5EncoderModel,
    )

    p = PRESETS[preset]
    i2v, meanflow = p.kind != "t2v", p.kind == "i2v_step_distilled"
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    transformer: Any = HunyuanVideo15Transformer3DModel(
        in_channels=2 * p.latent + 1, out_channels=p.latent, num_attention_heads=p.heads,
        attention_head_dim=p.head_dim, num_layers=p.layers, num_refiner_layers=1,
        mlp_ratio=2.0 if p.layers <= 2 else 4.0,
        patch_size=1, patch_size_t=1, text_embed_dim=p.qwen_hidden, text_embed_2_dim=p.byt5_dim,
        image_embed_dim=p.image_dim, rope_axes_dim=p.rope_axes, target_size=p.target_size,
        task_type="i2v" if i2v else "t2v", use_meanflow=meanflow,
    )  # fmt: skip
    torch.manual_seed(seed + 1)
    vae: Any = AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=p.latent, block_out_channels=p.vae_channels,
        layers_per_block=1, spatial_compression_ratio=p.spatial, temporal_compression_ratio=p.temporal,
        downsample_match_channel=False, upsample_match_channel=False,
    )  # fmt: skip
    torch.manual_seed(seed + 2)
    text_encoder = Qwen2_5_VLTextModel(
        Qwen2_5_VLTextConfig(
            vocab_size=max(512, len(tokenizer)), hidden_size=p.qwen_hidden, intermediate_size=2 * p.qwen_hidden,
            num_hidden_layers=p.qwen_layers, num_attention_heads=p.qwen_heads, num_key_value_heads=2,
            max_position_embeddings=2048,
            rope_parameters={"mrope_section": list(p.mrope), "rope_type": "default", "rope_theta": 1000000.0},
            bos_token_id=0, eos_token_id=2, pad_token_id=0,
        )
    )  # fmt: skip
    torch.manual_seed(seed + 3)
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=384, d_model=p.byt5_dim, d_kv=8, d_ff=37, num_layers=2, num_heads=4, pad_token_id=0,
                 eos_token_id=1)  # fmt: skip
    )
    out: dict[str, Any] = {
        "transformer": transformer.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer, "text_encoder_2": text_encoder_2.eval(), "tokenizer_2": ByT5Tokenizer(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0 if meanflow else 5.0),
        "guider": ClassifierFreeGuidance(guidance_scale=1.0 if meanflow else 6.0),
    }  # fmt: skip
    if i2v:
        from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

        torch.manual_seed(seed + 4)
        out["image_encoder"] = SiglipVisionModel(
            SiglipVisionConfig(hidden_size=p.image_dim, intermediate_size=16, num_hidden_layers=1,
                               num_attention_heads=2, image_size=28, patch_size=14)  # fmt: skip
        ).eval()
        out["feature_extractor"] = SiglipImageProcessor(size={"height": 28, "width": 28})
    return out


def write_tiny(directory: Path, preset: str, seed: int) -> None:
    """Write the model in the diffusers layout (loadable by HunyuanVideo15Pipeline / its image-to-video sibling)."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Pipeline

    cls = HunyuanVideo15Pipeline if PRESETS[preset].kind == "t2v" else HunyuanVideo15ImageToVideoPipeline
    pipe: Any = cls(**build_components(preset, seed))
    pipe.save_pretrained(str(directory), safe_serialization=True)
    p = PRESETS[preset]
    if p.sr:
        from render.families.hunyuan_video15.sr_models import write_tiny as write_sr

        base = {"latent": p.latent, "heads": p.heads, "head_dim": p.head_dim, "layers": p.layers,
                "text_dim": p.qwen_hidden, "text_2_dim": p.byt5_dim, "image_dim": p.image_dim,
                "rope_axes": p.rope_axes, "target_size": p.target_size}  # fmt: skip
        write_sr(directory, base, seed)
