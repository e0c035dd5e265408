"""Tencent's original layout of HunyuanVideo 1.5 (hub `tencent/HunyuanVideo-1.5`, its `ckpts/` folder, or the folder
holding `ckpts/`), with the encoders downloaded beside it as Tencent's checkpoints-download.md says:

    transformer/<variant>/{config.json, diffusion_pytorch_model*.safetensors}   one folder per variant (480p_t2v, ...)
    vae/{config.json, diffusion_pytorch_model.safetensors}                      AutoencoderKLConv3D
    scheduler/scheduler_config.json                                             (Tencent replaces it per variant)
    text_encoder/llm/                     Qwen/Qwen2.5-VL-7B-Instruct (its language model is the text encoder)
    text_encoder/byt5-small/              google/byt5-small
    text_encoder/Glyph-SDXL-v2/{assets/color_idx.json, assets/multilingual_10-lang_idx.json, checkpoints/byt5_model.pt}
    vision_encoder/siglip/{image_encoder, feature_extractor}/   SigLIP of FLUX.1-Redux-dev (image-to-video)

`--model ckpts` takes the one base variant there is; with several, `--model ckpts/transformer/<variant>` picks one.
Each variant's defaults (CFG, shift, steps) are Tencent's table (`hyvideo/commons` PIPELINE_CONFIGS)."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

from render.core.errors import ModelNotFoundError
from render.model.ref import ORIGINAL, ModelRef

T2V, I2V = "HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"
DIT_CLASS, VAE_CLASS = "HunyuanVideo_1_5_DiffusionTransformer", "AutoencoderKLConv3D"
# variant -> (CFG scale, shift, steps): Tencent's PIPELINE_CONFIGS (steps 8 for the step-distilled model: its table
# says 8 or 12, its CLI's default is 12)
VARIANTS = MappingProxyType(
    {
        "480p_t2v": (6.0, 5.0, 50),
        "480p_i2v": (6.0, 5.0, 50),
        "720p_t2v": (6.0, 9.0, 50),
        "720p_i2v": (6.0, 7.0, 50),
        "480p_t2v_distilled": (1.0, 5.0, 50),
        "480p_i2v_distilled": (1.0, 5.0, 50),
        "720p_t2v_distilled": (1.0, 9.0, 50),
        "720p_i2v_distilled": (1.0, 7.0, 50),
        "480p_i2v_step_distilled": (1.0, 7.0, 8),
    }
)
TARGET_SIZES = MappingProxyType({"360p": 480, "480p": 640, "720p": 960, "1080p": 1440})
GLYPH = "text_encoder/Glyph-SDXL-v2"
GLYPH_FILES = ("assets/color_idx.json", "assets/multilingual_10-lang_idx.json", "checkpoints/byt5_model.pt")


def dirs(variant: str) -> dict[str, str]:
    """Component -> folder, relative to the ckpts folder."""
    return {
        "transformer": f"transformer/{variant}",
        "vae": "vae",
        "scheduler": "scheduler",
        "text_encoder": "text_encoder/llm",
        "tokenizer": "text_encoder/llm",
        "text_encoder_2": "text_encoder/byt5-small",
        "tokenizer_2": "text_encoder/byt5-small",
        "glyph": GLYPH,
        "image_encoder": "vision_encoder/siglip/image_encoder",
        "feature_extractor": "vision_encoder/siglip/feature_extractor",
    }


def _class_name(config: Path) -> str | None:
    try:
        found = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    return found.get("_class_name") if isinstance(found, dict) else None


def variants(root: Path) -> list[str]:
    """The base (not super-resolution) variants in a ckpts folder."""
    t = root / "transformer"
    if not t.is_dir():
        return []
    return sorted(
        d.name
        for d in t.iterdir()
        if d.is_dir() and not d.name.endswith("_sr_distilled") and _class_name(d / "config.json") == DIT_CLASS
    )


def find_original(path: Path, source: str) -> ModelRef | None:
    """The model when `path` is a ckpts folder (or holds one) in this layout, or one of its variant folders."""
    chosen = None
    if path.parent.name == "transformer" and _class_name(path / "config.json") == DIT_CLASS:
        chosen, path = path.name, path.parent.parent
    for root in (path, path / "ckpts"):
        if _class_name(root / "vae" / "config.json") != VAE_CLASS:
            continue
        found = variants(root)
        if not found:
            continue
        if chosen is None:
            if len(found) > 1:
                raise ModelNotFoundError(
                    f"{source} holds several HunyuanVideo 1.5 variants ({', '.join(found)}); pick one with "
                    f"--model {root / 'transformer' / found[0]}"
                )
            chosen = found[0]
        pipeline = I2V if "_i2v" in chosen else T2V
        return ModelRef(root.resolve(), source, layout=ORIGINAL, pipeline=pipeline, dirs=dirs(chosen))
    return None


def variant_of(model: ModelRef) -> str:
    """The variant an original-layout model runs ("480p_t2v", ...)."""
    return Path(model.dirs["transformer"]).name
