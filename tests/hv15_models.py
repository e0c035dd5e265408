"""HunyuanVideo 1.5 folders written here with diffusers' and transformers' own classes (not with hyv's init-tiny),
for the tests that compare hyv with diffusers' 1.5 pipelines on the same folder: a tokenizer trained here (other
merges than hyv's), other widths and depths, the guider and scheduler of the variant asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SENTENCES = [
    "You are a helpful assistant. Describe the video by detailing the following aspects:",
    "1. The main content and theme of the video. 2. The color, shape, size, texture, quantity, text.",
    "3. Actions, events, behaviors temporal relationships. 4. background environment, light, style.",
    "5. camera angles, movements, and transitions used in the video. a photo of a cat",
    'a neon sign that says "OPEN" above a diner at night, rain on the street',
    "a red fox runs through snowy woods at dawn. user system assistant",
]


def tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 3, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        padding_side="right",
    )
    fast.chat_template = CHAT
    return fast


def write(directory: Path, kind: str = "t2v", guidance: float = 4.5, shift: float = 5.0) -> Path:
    """kind: t2v | i2v | i2v_step_distilled (use_meanflow: timestep_r)."""
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Pipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        T5Config,
        T5EncoderModel,
    )

    i2v = kind != "t2v"
    torch.manual_seed(11)
    parts: dict[str, Any] = {
        "transformer": HunyuanVideo15Transformer3DModel(
            in_channels=17, out_channels=8, num_attention_heads=2, attention_head_dim=12, num_layers=2,
            num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=24,
            text_embed_2_dim=16, image_embed_dim=20, rope_axes_dim=(4, 4, 4), target_size=32,
            task_type="i2v" if i2v else "t2v", use_meanflow=kind == "i2v_step_distilled",
        ),
        "vae": AutoencoderKLHunyuanVideo15(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 16), layers_per_block=1,
            spatial_compression_ratio=4, temporal_compression_ratio=2, downsample_match_channel=False,
            upsample_match_channel=False,
        ),
        "text_encoder": Qwen2_5_VLTextModel(
            Qwen2_5_VLTextConfig(
                vocab_size=400, hidden_size=24, intermediate_size=40, num_hidden_layers=4, num_attention_heads=2,
                num_key_value_heads=1, rope_parameters={"mrope_section": [1, 1, 4], "rope_type": "default",
                                                        "rope_theta": 10000.0},
                bos_token_id=0, eos_token_id=2, pad_token_id=0,
            )
        ),
        "tokenizer": tokenizer(),
        "text_encoder_2": T5EncoderModel(
            T5Config(vocab_size=384, d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=4, pad_token_id=0,
                     eos_token_id=1)
        ),
        "tokenizer_2": ByT5Tokenizer(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=shift),
        "guider": ClassifierFreeGuidance(guidance_scale=guidance),
    }  # fmt: skip
    if i2v:
        from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

        parts["image_encoder"] = SiglipVisionModel(
            SiglipVisionConfig(hidden_size=20, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                               image_size=28, patch_size=14)  # fmt: skip
        )
        parts["feature_extractor"] = SiglipImageProcessor(size={"height": 28, "width": 28})
    pipe = (HunyuanVideo15ImageToVideoPipeline if i2v else HunyuanVideo15Pipeline)(**parts)
    pipe.save_pretrained(str(directory))
    return directory


def pipeline(directory: Path) -> Any:
    """The folder's diffusers pipeline, its crop set as Tencent computes it (diffusers' 108 is the real Qwen
    tokenizer's)."""
    from diffusers import DiffusionPipeline

    from render.families.hunyuan_video15.prompts import crop_start

    pipe: Any = DiffusionPipeline.from_pretrained(str(directory))
    pipe.prompt_template_encode_start_idx = crop_start(pipe.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe
