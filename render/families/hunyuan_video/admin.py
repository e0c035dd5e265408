"""HunyuanVideo's admin tools: what `hyv models download` fetches, the Llama text encoder out of LLaVA
(`prepare-text-encoder`), and the original layout -> diffusers layout conversion (`hyv models convert`).

- diffusers layout: `hunyuanvideo-community/HunyuanVideo` as it is.
- original layout: Tencent's DiT (or, with --fp8, its fp8 DiT and scale map) and VAE from `tencent/HunyuanVideo`,
  the LLaVA model `xtuner/llava-llama-3-8b-v1_1-transformers` (its language model is then extracted into
  `text_encoder/` on the CPU) and CLIP `openai/clip-vit-large-patch14` as `text_encoder_2/`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.families.hunyuan_video.layout import DEFAULT_SCHEDULER, DIT_NAME, I2V, PIPELINE, PIPELINE_I2V, T2V
from render.model.convert import link_or_copy, save_component, write_json
from render.model.download import Fetch
from render.model.ref import ModelRef
from render.model.text_encoder import LanguageModel, extract_language_model

LLAVA = "llava-llama-3-8b-v1_1-transformers"
MODEL_INDEX = {
    "_class_name": PIPELINE,
    "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLHunyuanVideo"],
    "text_encoder": ["transformers", "LlamaModel"],
    "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    "text_encoder_2": ["transformers", "CLIPTextModel"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
}
_TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "vocab", "merges", "added_tokens", "chat_template")


def fetch_list(layout: str, fp8: bool) -> list[Fetch]:
    if layout == "diffusers":
        if fp8:
            raise UsageError(
                "Tencent's fp8 DiT comes in the original layout: use --layout original --fp8, or keep the diffusers "
                "layout and pass --fp8 at run time (fp8 storage of the bf16 weights)"
            )
        return [Fetch("hunyuanvideo-community/HunyuanVideo", "", None)]
    if layout != "original":
        raise UsageError(f"unknown layout {layout!r}; use diffusers or original")
    dit = f"{T2V}/transformers/{DIT_NAME}"
    dits = (f"{dit}_fp8.pt", f"{dit}_fp8_map.pt") if fp8 else (f"{dit}.pt",)
    return [
        Fetch("tencent/HunyuanVideo", "", (*dits, f"{T2V}/vae/*")),
        Fetch("xtuner/llava-llama-3-8b-v1_1-transformers", LLAVA, None),
        Fetch("openai/clip-vit-large-patch14", "text_encoder_2", ("*.json", "*.txt", "model.safetensors")),
    ]


def fetch_list_i2v(layout: str) -> list[Fetch]:
    """HunyuanVideo-I2V: the community's diffusers conversion (the 16-channel token_replace model), or Tencent's
    checkpoint with the whole LLaVA beside it (text_encoder_i2v/) and CLIP."""
    if layout == "diffusers":
        return [Fetch("hunyuanvideo-community/HunyuanVideo-I2V", "", None)]
    if layout != "original":
        raise UsageError(f"unknown layout {layout!r}; use diffusers or original")
    return [
        Fetch("tencent/HunyuanVideo-I2V", "", (f"{I2V}/transformers/{DIT_NAME}.pt", f"{I2V}/vae/*")),
        Fetch("xtuner/llava-llama-3-8b-v1_1-transformers", "text_encoder_i2v", None),
        Fetch("openai/clip-vit-large-patch14", "text_encoder_2", ("*.json", "*.txt", "model.safetensors")),
    ]


def after_download(directory: Path, say: Callable[[str], None]) -> None:
    """The original layout's text encoder: Llama-3's language model out of the LLaVA checkpoint."""
    if (directory / LLAVA).is_dir():
        say(f"extracting the text encoder from {LLAVA} into {directory / 'text_encoder'} (CPU, streaming)")
        prepare_text_encoder(directory / LLAVA, directory / "text_encoder", force=True)
        say(f"done; {directory / LLAVA} is no longer needed and can be deleted")


def _llama_config(cfg: dict[str, Any], vocab: int, dtype_name: str) -> dict[str, Any]:
    from transformers import LlamaConfig

    text = cfg.get("text_config")
    if not isinstance(text, dict):
        raise UsageError("config.json has no text_config: not a LLaVA checkpoint folder")
    text = {k: v for k, v in text.items() if k not in ("architectures", "_name_or_path", "model_type")}
    out = LlamaConfig(**{**text, "vocab_size": vocab}).to_dict()
    out.update({"architectures": ["LlamaModel"], "torch_dtype": dtype_name})
    return out


# LLaVA checkpoints as saved by transformers < 4.52 (`language_model.model.*`, `language_model.lm_head`,
# `vision_tower.*`, `multi_modal_projector.*`), as the hub repository holds them, or by later versions
# (`model.language_model.*`, `lm_head`, `model.vision_tower.*`).
LLAVA_LM = LanguageModel("a LLaVA checkpoint folder", ("language_model.model.", "model.language_model."), _llama_config)


def prepare_text_encoder(
    src: Path, dst: Path, *, dtype_name: str = "float16", max_shard_size: str = "2GB", force: bool = False
) -> Path:
    """The Llama-3-8B language model and tokenizer out of `xtuner/llava-llama-3-8b-v1_1-transformers`."""
    return extract_language_model(
        src, dst, LLAVA_LM, dtype_name=dtype_name, max_shard_size=max_shard_size, force=force
    )


MODEL_INDEX_I2V = {
    **MODEL_INDEX,
    "_class_name": PIPELINE_I2V,
    "text_encoder": ["transformers", "LlavaForConditionalGeneration"],
    "image_processor": ["transformers", "CLIPImageProcessor"],
}


def convert_original(src: ModelRef, out: Path, max_shard_size: str) -> None:
    """The DiT and the VAE converted tensor by tensor; the text encoders and tokenizers copied (hard-linked when on
    the same file system); the scheduler's config and model_index.json written. HunyuanVideo-I2V: its LLaVA's image
    processor goes to image_processor/."""
    _write_dit(src, out / "transformer", max_shard_size)
    _write_vae(src, out / "vae", max_shard_size)
    for enc, tok in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
        _copy_component(src.component(enc), out / enc, out / tok)
    write_json(out / "scheduler" / "scheduler_config.json", DEFAULT_SCHEDULER)
    if src.pipeline == PIPELINE_I2V:
        (out / "image_processor").mkdir()
        (out / "text_encoder" / "preprocessor_config.json").rename(out / "image_processor" / "preprocessor_config.json")
    write_json(out / "model_index.json", MODEL_INDEX_I2V if src.pipeline == PIPELINE_I2V else MODEL_INDEX)


def _write_dit(src: ModelRef, out: Path, max_shard_size: str) -> None:
    from render.families.hunyuan_video.dit import dit_config, dit_source
    from render.families.hunyuan_video.original import convert_dit_state_dict
    from render.model.variant import DiTVariant
    from render.model.weightfiles import load_pt, unwrap_state_dict

    s = dit_source(src, DiTVariant())
    sd = unwrap_state_dict(load_pt(s.path), s.path)
    config = dit_config(src, DiTVariant())
    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    converted = convert_dit_state_dict(sd, hidden, str(s.path))
    save_component(converted, out, config, "HunyuanVideoTransformer3DModel", max_shard_size)


def _write_vae(src: ModelRef, out: Path, max_shard_size: str) -> None:
    from render.families.hunyuan_video.configs import config
    from render.families.hunyuan_video.original import vae_state_dict
    from render.model.weightfiles import load_pt, unwrap_state_dict

    path = src.component("vae") / "pytorch_model.pt"
    sd = vae_state_dict(unwrap_state_dict(load_pt(path), path))
    save_component(sd, out, config(src, "vae"), "AutoencoderKLHunyuanVideo", max_shard_size)


def _copy_component(src: Path, model_dir: Path, tokenizer_dir: Path) -> None:
    """A text encoder folder holds its tokenizer in the original layout; the diffusers layout splits them."""
    model_dir.mkdir()
    tokenizer_dir.mkdir()
    for f in sorted(src.iterdir()):
        if not f.is_file():
            continue
        to = tokenizer_dir if f.name.startswith(_TOKENIZER_FILES) else model_dir
        link_or_copy(f, to / f.name)
