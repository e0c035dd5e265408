"""HunyuanVideo 1.5's admin tools: what `hyv models download` fetches (Tencent's layout, as its download page lists
it, or a community diffusers-layout repo), the text encoder out of Qwen2.5-VL (`prepare-text-encoder`, streaming, on
the CPU), and the original layout -> diffusers layout conversion (`hyv models convert`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.families.hunyuan_video15 import encoders, layout, original
from render.model.convert import save_component, write_json
from render.model.download import Fetch
from render.model.ref import ModelRef
from render.model.text_encoder import LanguageModel, extract_language_model

COMMUNITY = "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-{variant}"
QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"


def fetch_list(layout_name: str, fp8: bool, variant: str = "480p_t2v") -> list[Fetch]:
    if fp8:
        raise UsageError("Tencent ships no fp8 HunyuanVideo 1.5 weights; pass --fp8 at run time (fp8 storage)")
    if variant not in layout.VARIANTS:
        raise UsageError(f"unknown HunyuanVideo 1.5 variant {variant!r}; use one of {', '.join(layout.VARIANTS)}")
    if layout_name == "diffusers":
        return [Fetch(COMMUNITY.format(variant=variant), "", None)]
    if layout_name != "original":
        raise UsageError(f"unknown layout {layout_name!r}; use diffusers or original")
    fetches = [
        Fetch("tencent/HunyuanVideo-1.5", "", (f"transformer/{variant}/*", "vae/*", "scheduler/*", "config.json")),
        Fetch(QWEN, "text_encoder/llm", None),
        Fetch("google/byt5-small", "text_encoder/byt5-small", ("*.json", "pytorch_model.bin")),
        # Glyph-SDXL-v2 is on ModelScope (AI-ModelScope/Glyph-SDXL-v2), not the hub: `after_download` says so
    ]
    if "_i2v" in variant:  # gated: needs a hub token with access to FLUX.1-Redux-dev
        siglip = ("image_encoder/*", "feature_extractor/*")
        fetches.append(Fetch("black-forest-labs/FLUX.1-Redux-dev", "vision_encoder/siglip", siglip))
    return fetches


def after_download(directory: Path, say: Callable[[str], None]) -> None:
    glyph = directory / layout.GLYPH
    if encoders.glyph_problem(glyph) is not None:
        say(
            f"still needed: Glyph-SDXL-v2 from ModelScope (not on the hub): `modelscope download --model "
            f"AI-ModelScope/Glyph-SDXL-v2 --local_dir {glyph}`"
        )


def _qwen_text_config(cfg: dict[str, Any], vocab: int, dtype_name: str) -> dict[str, Any]:
    """The language model's config of a Qwen2.5-VL config.json (its text_config, or its top level in the
    checkpoints saved by transformers < 4.52)."""
    from transformers import Qwen2_5_VLTextConfig

    text = cfg.get("text_config") or {k: v for k, v in cfg.items() if k != "vision_config"}
    text = {k: v for k, v in text.items() if k not in ("architectures", "_name_or_path", "model_type", "auto_map")}
    out = Qwen2_5_VLTextConfig(**{**text, "vocab_size": vocab}).to_dict()
    out.update({"architectures": ["Qwen2_5_VLTextModel"], "torch_dtype": dtype_name})
    return out


# Qwen2.5-VL as the hub holds it (`model.layers.*`, `visual.*`, `lm_head`) or as transformers >= 4.52 saves it
# (`model.language_model.*`, `model.visual.*`).
QWEN_LM = LanguageModel(
    "a Qwen2.5-VL checkpoint folder", ("model.language_model.", "model."), _qwen_text_config, exclude=("model.visual.",)
)


def prepare_text_encoder(
    src: Path, dst: Path, *, dtype_name: str = "bfloat16", max_shard_size: str = "2GB", force: bool = False
) -> Path:
    """Qwen2.5-VL-7B-Instruct's language model and tokenizer: HunyuanVideo 1.5's text encoder."""
    return extract_language_model(src, dst, QWEN_LM, dtype_name=dtype_name, max_shard_size=max_shard_size, force=force)


def convert_original(src: ModelRef, out: Path, max_shard_size: str, family: Any) -> None:
    """Every component in the diffusers layout: the DiT and the VAE converted tensor by tensor, the language model
    extracted from Qwen2.5-VL (one shard in memory at a time), ByT5 with the Glyph tokens and weights merged, SigLIP
    copied (image-to-video), the variant's scheduler and guider, model_index.json."""
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel  # noqa: F401

    from render.model.weightfiles import weight_files

    variant = layout.variant_of(src)
    cfg, shift, _ = layout.VARIANTS.get(variant, (6.0, 5.0, 50))
    config = family.config(src, "transformer")
    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    d = src.component("transformer")
    dit = original.convert_dit(original.read_safetensors(weight_files(d)), hidden, str(d))
    save_component(dit, out / "transformer", config, "HunyuanVideo15Transformer3DModel", max_shard_size)
    del dit
    vae = original.convert_vae(original.read_safetensors(weight_files(src.component("vae"))))
    save_component(vae, out / "vae", family.config(src, "vae"), "AutoencoderKLHunyuanVideo15", max_shard_size)
    extract_language_model(src.component("text_encoder"), out / "text_encoder", QWEN_LM, dtype_name="float32")
    (out / "tokenizer").mkdir()
    for f in (out / "text_encoder").iterdir():  # the tokenizer's files go to their own folder
        if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens", "added_tokens", "chat_template")):
            shutil.move(str(f), out / "tokenizer" / f.name)
    import torch

    tok2, t5 = encoders.load_byt5(src, torch.float32)
    t5.save_pretrained(str(out / "text_encoder_2"))
    tok2.save_pretrained(str(out / "tokenizer_2"))
    scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": shift}
    write_json(out / "scheduler" / "scheduler_config.json", scheduler)
    write_json(out / "guider" / "guider_config.json", {"_class_name": "ClassifierFreeGuidance", "guidance_scale": cfg})
    index: dict[str, Any] = {
        "_class_name": src.pipeline,
        "transformer": ["diffusers", "HunyuanVideo15Transformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLHunyuanVideo15"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "guider": ["diffusers", "ClassifierFreeGuidance"],
        "text_encoder": ["transformers", "Qwen2_5_VLTextModel"],
        "tokenizer": ["transformers", _tokenizer_class(out / "tokenizer")],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer_2": ["transformers", "ByT5Tokenizer"],
    }
    if src.pipeline == layout.I2V:
        for name in ("image_encoder", "feature_extractor"):
            shutil.copytree(src.component(name), out / name)
        index["image_encoder"] = ["transformers", "SiglipVisionModel"]
        index["feature_extractor"] = ["transformers", "SiglipImageProcessor"]
    write_json(out / "model_index.json", index)


def _tokenizer_class(folder: Path) -> str:
    try:
        found = json.loads((folder / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        found = None
    return str(found or "Qwen2TokenizerFast")
