"""`hyv models convert SRC DST`: an original-layout model (Tencent's ckpts/) -> the diffusers layout, so that later
runs load fast (sharded safetensors, no conversion at load time). The DiT and the VAE are converted tensor by tensor
from memory-mapped checkpoints (views and row splits: no second copy of the model in memory); the text encoders and
tokenizers are copied (hard-linked when on the same file system)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.core.fsutil import tmp_path_for
from render.model.layout import DEFAULT_SCHEDULER, ORIGINAL
from render.model.ref import ModelRef

SHARD = "5GB"
MODEL_INDEX = {
    "_class_name": "HunyuanVideoPipeline",
    "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLHunyuanVideo"],
    "text_encoder": ["transformers", "LlamaModel"],
    "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    "text_encoder_2": ["transformers", "CLIPTextModel"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
}
_TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "vocab", "merges", "added_tokens", "chat_template")


def convert_model(src: ModelRef, dst: Path, *, force: bool = False, max_shard_size: str = SHARD) -> Path:
    """Write `src` (original layout) to `dst` in the diffusers layout; atomic (a temporary folder renamed)."""
    if src.layout != ORIGINAL:
        raise UsageError(f"{src.source} is already in the diffusers layout; nothing to convert")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise UsageError(f"{dst} exists and is not empty; choose another directory or pass --force")
    from render.model.check import check_stage
    from render.model.variant import DiTVariant

    for stage in ("encode", "render", "decode"):
        check_stage(src, stage, DiTVariant())  # a truncated source fails before anything is written
    tmp = tmp_path_for(dst)
    try:
        tmp.mkdir(parents=True)
        _write_dit(src, tmp / "transformer", max_shard_size)
        _write_vae(src, tmp / "vae", max_shard_size)
        for enc, tok in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
            _copy_component(src.component(enc), tmp / enc, tmp / tok)
        (tmp / "scheduler").mkdir()
        (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(DEFAULT_SCHEDULER, indent=2))
        (tmp / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
        hyv = src.hyv_json()
        hyv.pop("transformer", None)  # the converted config holds what the original layout could not
        if hyv:
            (tmp / "hyv.json").write_text(json.dumps(hyv, indent=2))
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _save(sd: dict[str, Any], out: Path, config: dict[str, Any], class_name: str, max_shard_size: str) -> None:
    from render.model.shards import write_shards

    out.mkdir(parents=True)
    write_shards(sd.items(), out, "diffusion_pytorch_model", max_shard_size)
    (out / "config.json").write_text(json.dumps({"_class_name": class_name, **config}, indent=2, default=list))


def _write_dit(src: ModelRef, out: Path, max_shard_size: str) -> None:
    from render.model.dit import dit_config, dit_source
    from render.model.original import convert_dit_state_dict
    from render.model.variant import DiTVariant
    from render.model.weightfiles import load_pt, unwrap_state_dict

    s = dit_source(src, DiTVariant())
    sd = unwrap_state_dict(load_pt(s.path), s.path)
    config = dit_config(src, DiTVariant())
    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    converted = convert_dit_state_dict(sd, hidden, str(s.path))
    _save(converted, out, config, "HunyuanVideoTransformer3DModel", max_shard_size)


def _write_vae(src: ModelRef, out: Path, max_shard_size: str) -> None:
    from render.model.original import vae_state_dict
    from render.model.weightfiles import load_pt, unwrap_state_dict

    path = src.component("vae") / "pytorch_model.pt"
    sd = vae_state_dict(unwrap_state_dict(load_pt(path), path))
    _save(sd, out, src.config("vae"), "AutoencoderKLHunyuanVideo", max_shard_size)


def _copy_component(src: Path, model_dir: Path, tokenizer_dir: Path) -> None:
    """A text encoder folder holds its tokenizer in the original layout; the diffusers layout splits them."""
    model_dir.mkdir()
    tokenizer_dir.mkdir()
    for f in sorted(src.iterdir()):
        if not f.is_file():
            continue
        to = tokenizer_dir if f.name.startswith(_TOKENIZER_FILES) else model_dir
        _link_or_copy(f, to / f.name)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
