"""Randomly initialised HunyuanVideo models built from configs, in the diffusers layout, with no network.

Presets:
- tiny:   latent 4 channels, width 20, patch 1: 9x32x32 runs in milliseconds a step (tests).
- small:  latent 16 channels, width 128, patch 2.
- medium: latent 16 channels, width 512 (8 heads x 64), 4 double + 8 single blocks, patch 2 (benchmarks:
          33x256x256 at a few seconds a step on two CPU cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.families.hunyuan_video.templates import IMAGE_TEMPLATE, VIDEO_TEMPLATE


@dataclass(frozen=True)
class Preset:
    # DiT
    heads: int
    head_dim: int
    double_layers: int
    single_layers: int
    refiner_layers: int
    patch: int
    rope_axes: tuple[int, int, int]
    # VAE
    latent_channels: int
    vae_channels: tuple[int, int, int, int]
    vae_groups: int
    vae_layers: int
    # text encoders
    llama_hidden: int
    llama_layers: int
    llama_heads: int
    clip_hidden: int
    vocab: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(2, 10, 1, 1, 1, 1, (2, 4, 4), 4, (8, 8, 8, 8), 4, 1, 16, 3, 4, 8, 600),
    "small": Preset(4, 32, 2, 2, 1, 2, (8, 12, 12), 16, (16, 32, 32, 32), 8, 1, 64, 3, 4, 32, 1000),
    # medium: the text encoder is ~0.8x the DiT in bytes, as Llama-3-8B is ~0.6x the 13B DiT, so that measuring
    # stage-major peak memory against a pipeline holding every model means something.
    "medium": Preset(8, 64, 4, 8, 2, 2, (8, 28, 28), 16, (32, 64, 128, 128), 16, 1, 1024, 6, 16, 128, 2000),
}

SPECIALS_LLAMA = [
    "<pad>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
SPECIALS_CLIP = ["<|startoftext|>", "<|endoftext|>"]
_CORPUS = [
    VIDEO_TEMPLATE.replace("{}", ""),
    IMAGE_TEMPLATE.replace("{}", ""),
    "A cat walks on the grass, realistic style. A dog runs along the beach at sunset.",
    "a red circle moves to the right on a black background. a green square moves up on a white background.",
    "a blue triangle moves to the left on a yellow background; the camera pans slowly over a city at night.",
    "Two puppies wag their tails in a large cage. A flock of bats flies over the village in medium long shot.",
    "The quick brown fox jumps over the lazy dog. Rain falls on a quiet street, cinematic lighting, 4k.",
]


def build_tokenizer(
    specials: list[str], vocab: int, bos: str, eos: str | None, pad: str, max_len: int
) -> Any:
    """A byte-level BPE tokenizer trained on a fixed corpus (deterministic), wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return wrap_tokenizer(tok, bos, eos, pad, max_len)


def wrap_tokenizer(
    tok: Any, bos: str, eos: str | None, pad: str, max_len: int, unk: str | None = None
) -> Any:
    """A `tokenizers.Tokenizer` -> transformers' fast tokenizer: bos (and eos) added around every text, right
    padding, as HunyuanVideo's Llama (bos only) and CLIP (bos + eos) tokenizers do."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    single = f"{bos} $A" + (f" {eos}" if eos else "")
    used = [bos] + ([eos] if eos else [])
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, tok.token_to_id(t)) for t in used]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos or bos,
        pad_token=pad,
        unk_token=unk,
        model_max_length=max_len,
        padding_side="right",
    )


def build_pipeline_components(preset_name: str, seed: int) -> dict[str, Any]:
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    p = PRESETS[preset_name]
    tokenizer = build_tokenizer(SPECIALS_LLAMA, p.vocab, "<|begin_of_text|>", None, "<pad>", 1024)
    tokenizer_2 = build_tokenizer(
        SPECIALS_CLIP, p.vocab, "<|startoftext|>", "<|endoftext|>", "<|endoftext|>", 77
    )

    torch.manual_seed(seed)
    transformer: Any = HunyuanVideoTransformer3DModel(
        in_channels=p.latent_channels,
        out_channels=p.latent_channels,
        num_attention_heads=p.heads,
        attention_head_dim=p.head_dim,
        num_layers=p.double_layers,
        num_single_layers=p.single_layers,
        num_refiner_layers=p.refiner_layers,
        patch_size=p.patch,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=p.llama_hidden,
        pooled_projection_dim=p.clip_hidden,
        rope_axes_dim=p.rope_axes,
    )
    torch.manual_seed(seed + 1)
    vae: Any = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=p.latent_channels,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=p.vae_channels,
        layers_per_block=p.vae_layers,
        norm_num_groups=p.vae_groups,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    )
    torch.manual_seed(seed + 2)
    text_encoder = LlamaModel(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=p.llama_hidden,
            intermediate_size=p.llama_hidden * 2 + 5,
            num_hidden_layers=p.llama_layers,
            num_attention_heads=p.llama_heads,
            num_key_value_heads=max(1, p.llama_heads // 2),
            max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.convert_tokens_to_ids("<|eot_id|>"),
        )
    )
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2),
            hidden_size=p.clip_hidden,
            intermediate_size=p.clip_hidden * 4,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=p.clip_hidden,
            max_position_embeddings=77,
            bos_token_id=tokenizer_2.bos_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            pad_token_id=tokenizer_2.pad_token_id,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer_2": tokenizer_2,
        "scheduler": scheduler,
    }


def write_tiny(directory: Path, preset: str, seed: int) -> None:
    """Write a randomly initialised model in the diffusers layout (loadable by HunyuanVideoPipeline too)."""
    from diffusers import HunyuanVideoPipeline

    pipe: Any = HunyuanVideoPipeline(**build_pipeline_components(preset, seed))
    pipe.save_pretrained(str(directory), safe_serialization=True)
