"""The real HunyuanVideo (13B) configs, without weights, in the diffusers layout: what `hyv plan` needs.

DiT and VAE: diffusers' defaults of HunyuanVideoTransformer3DModel / AutoencoderKLHunyuanVideo, which are the
released model (HYVideo-T/2-cfgdistill, 884-16c-hy). Text encoders: the Llama-3-8B language model of
xtuner/llava-llama-3-8b-v1_1-transformers (vocabulary 128320 as in hunyuanvideo-community/HunyuanVideo) and
CLIP ViT-L/14's text model.
"""

from __future__ import annotations

import json
from pathlib import Path

LLAMA_3_8B = {
    "architectures": ["LlamaModel"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128320,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "hidden_act": "silu",
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "torch_dtype": "float16",
}
CLIP_L_TEXT = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "torch_dtype": "float16",
}


def write_real_configs(root: Path) -> Path:
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel

    for name, cls in (("transformer", HunyuanVideoTransformer3DModel), ("vae", AutoencoderKLHunyuanVideo)):
        (root / name).mkdir(parents=True)
        with torch.device("meta"):
            defaults = dict(cls().config)  # diffusers' defaults: the released model
        cfg = {"_class_name": cls.__name__, **{k: v for k, v in defaults.items() if not k.startswith("_")}}
        (root / name / "config.json").write_text(json.dumps(cfg, indent=2, default=list))
    for name, cfg in (("text_encoder", LLAMA_3_8B), ("text_encoder_2", CLIP_L_TEXT)):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(cfg, indent=2))
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 7.0})
    )
    index = {
        "_class_name": "HunyuanVideoPipeline",
        "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLHunyuanVideo"],
        "text_encoder": ["transformers", "LlamaModel"],
        "tokenizer": ["transformers", "LlamaTokenizerFast"],
        "text_encoder_2": ["transformers", "CLIPTextModel"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    return root


def write_sparse_weights(root: Path) -> bool:
    """Full-size safetensors files for the real configs, holding headers only (sparse files: the 41 GB of tensor
    data take no disk). False, with nothing written, where the file system does not make sparse files."""
    import struct

    import torch

    from render.families.hunyuan_video import HUNYUAN_VIDEO
    from render.model.check import meta_module

    probe = root / "sparse-probe"
    with open(probe, "wb") as f:
        f.truncate(1 << 30)
    sparse = probe.stat().st_blocks * 512 < (1 << 20)
    probe.unlink()
    if not sparse:
        return False
    names = {"F16": torch.float16, "BF16": torch.bfloat16}
    for name, dt, stem in (
        ("transformer", "BF16", "diffusion_pytorch_model"),
        ("vae", "F16", "diffusion_pytorch_model"),
        ("text_encoder", "F16", "model"),
        ("text_encoder_2", "F16", "model"),
    ):
        cfg = json.loads((root / name / "config.json").read_text())
        module = meta_module(HUNYUAN_VIDEO.component_classes[name], cfg, root / name)
        header, offset = {}, 0
        for key, t in module.state_dict().items():
            n = t.numel() * names[dt].itemsize
            header[key] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(root / name / f"{stem}.safetensors", "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            f.truncate(8 + len(h) + offset)
    for tok in ("tokenizer", "tokenizer_2"):
        (root / tok).mkdir(exist_ok=True)
        (root / tok / "tokenizer_config.json").write_text("{}")
    return True
