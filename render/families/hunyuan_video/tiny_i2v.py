"""Randomly initialised HunyuanVideo-I2V models (diffusers' HunyuanVideoImageToVideoPipeline layout), no network.

Presets (latent 4 channels, width 24, patch 2; 9x64x48 runs in a fraction of a second a step):
- tiny-i2v:      token_replace (as the 16-channel model): in_channels 4, embedded guidance;
- tiny-i2v-33ch: latent_concat (as the 33-channel model): in_channels 2 * 4 + 1, no embedded guidance.

The text encoder is a LLaVA (a tiny Llama + a tiny CLIP vision tower of 8 x 8 = 64 patches, not the real 576, so
that nothing may assume that number); its tokenizer splits as Llama-3's does, so the I2V template's layout is the
real one (<image> at token 5, "\\n\\n" one token after the assistant header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from render.families.hunyuan_video.templates import I2V_TEMPLATE
from render.families.hunyuan_video.tiny import SPECIALS_CLIP, build_tokenizer, wrap_tokenizer

PRESETS = {"tiny-i2v": "token_replace", "tiny-i2v-33ch": "latent_concat"}
IMAGE_SIDE, VISION_PATCH = 16, 2  # the vision tower's input and patch: 64 image tokens
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<image>", "<pad>"]  # fmt: skip
_CORPUS = [
    I2V_TEMPLATE.replace("{}", "A cat walks on the grass."),
    "A cat walks on the grass, realistic style. A dog runs along the beach at sunset.",
    "a red circle moves to the right on a black background. a green square moves up on a white background.",
    "Two puppies wag their tails in a large cage. A flock of bats flies over the village in medium long shot.",
    "deformation, a poor composition and deformed video, bad teeth, bad eyes, bad limbs",
]


def llama3_tokenizer(vocab: int = 900) -> Any:
    """A byte-level BPE with Llama-3's pre-tokenizer split, trained on a fixed corpus (deterministic)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(_CORPUS * 8, trainer)
    return wrap_tokenizer(tok, "<|begin_of_text|>", None, "<pad>", 2048)


def build_components(condition: str, seed: int, image_side: int = IMAGE_SIDE) -> dict[str, Any]:
    """The pipeline's components; `image_side` / 2 squared image tokens (48: the real 576)."""
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tokenizer = llama3_tokenizer()
    tokenizer_2 = build_tokenizer(SPECIALS_CLIP, 600, "<|startoftext|>", "<|endoftext|>", "<|endoftext|>", 77)
    c = 4
    torch.manual_seed(seed)
    transformer: Any = HunyuanVideoTransformer3DModel(
        in_channels=2 * c + 1 if condition == "latent_concat" else c,
        out_channels=c,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=2,
        patch_size_t=1,
        guidance_embeds=condition == "token_replace",
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(4, 4, 4),
        image_condition_type=condition,
    )
    torch.manual_seed(seed + 1)
    vae: Any = AutoencoderKLHunyuanVideo(
        latent_channels=c,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    )
    pad = tokenizer.pad_token_id
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=pad,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=8, intermediate_size=37, projection_dim=8, num_attention_heads=2, num_hidden_layers=2,
        image_size=image_side, patch_size=VISION_PATCH,
    )  # fmt: skip
    n = (image_side // VISION_PATCH) ** 2
    torch.manual_seed(seed + 2)
    llava = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=n, vision_feature_layer=-2, vision_feature_select_strategy="default",
    )  # fmt: skip
    llava.pad_token_id = pad  # as xtuner's llava-llama-3 config: the pipeline masks the LLaVA's input by it
    text_encoder = LlavaForConditionalGeneration(llava)
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2), hidden_size=8, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=2, projection_dim=8, max_position_embeddings=77,
            bos_token_id=tokenizer_2.bos_token_id, eos_token_id=tokenizer_2.eos_token_id,
            pad_token_id=tokenizer_2.pad_token_id,
        )
    )  # fmt: skip
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_side}, crop_size={"height": image_side, "width": image_side},
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711], resample=3,
    )  # fmt: skip
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer_2": tokenizer_2,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
        "image_processor": image_processor,
    }


def write_tiny(directory: Path, preset: str, seed: int) -> None:
    """Write the preset in the diffusers layout (loadable by HunyuanVideoImageToVideoPipeline)."""
    import json

    from diffusers import HunyuanVideoImageToVideoPipeline

    pipe: Any = HunyuanVideoImageToVideoPipeline(**build_components(PRESETS[preset], seed))
    pipe.save_pretrained(str(directory), safe_serialization=True)
    index = directory / "model_index.json"  # the processor's class as the real conversions name it (transformers
    found = json.loads(index.read_text())  # without torchvision saves its PIL twin's name)
    found["image_processor"] = ["transformers", "CLIPImageProcessor"]
    index.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
