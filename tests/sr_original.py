"""A tiny HunyuanVideo 1.5 super-resolution model in Tencent's layout, written without Tencent's code (for the tests
that need no checkout of it): a random diffusers SR DiT whose tensors are renamed back to Tencent's names (the
inverse of render.families.hunyuan_video15.keys: the refiner's q, k, v fused, the final AdaLN halves swapped back)
with Tencent's config keys, and an upsampler (its layout is Tencent's). The oracle test (tests/test_sr.py) checks
the forward mapping against Tencent's own classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _tencent_name(name: str) -> str | None:
    """Tencent's name of a diffusers tensor; None for the refiner's q, k, v (fused separately)."""
    from render.families.hunyuan_video15 import keys

    module, _, param = name.rpartition(".")
    if module == "norm_out.linear":
        return f"{keys.SWAPPED}.{param}"
    for src, dst in keys.RENAMES:
        if module == dst:
            return f"{src}.{param}"
    parts = module.split(".")
    if module.startswith("context_embedder.token_refiner.refiner_blocks."):
        i, rest = parts[3], ".".join(parts[4:])
        if rest in ("attn.to_q", "attn.to_k", "attn.to_v"):
            return None
        src = next(s for s, d in keys.REFINER if d == rest)
        return f"txt_in.individual_token_refiner.blocks.{i}.{src}.{param}"
    if module.startswith("transformer_blocks."):
        i, rest = parts[1], ".".join(parts[2:])
        src = next(s for s, d in keys.BLOCK if d == rest)
        return f"double_blocks.{i}.{src}.{param}"
    raise KeyError(name)


def write(root: Path, target: str = "720p", seed: int = 0) -> Path:
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel
    from safetensors.torch import save_file

    from render.families.hunyuan_video15 import upsampler
    from render.families.hunyuan_video15.sr_models import VERSIONS, _randomize

    folder = VERSIONS[target].folder
    torch.manual_seed(seed)
    dit: Any = HunyuanVideo15Transformer3DModel(
        in_channels=98, out_channels=32, num_attention_heads=2, attention_head_dim=8, num_layers=2,
        num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=16, text_embed_2_dim=8, image_embed_dim=12,
        rope_axes_dim=(2, 2, 4), target_size=960, task_type="t2v", use_meanflow=True,
    )  # fmt: skip
    _randomize(dit, seed + 1)
    sd = dit.state_dict()
    out: dict[str, Any] = {}
    for k, v in sd.items():
        name = _tencent_name(k)
        if name is None:
            continue
        if name.startswith("final_layer.adaLN_modulation.1"):
            scale, shift = v.chunk(2, dim=0)
            v = torch.cat([shift, scale])
        out[name] = v.contiguous()
    for i in range(1):
        for p in ("weight", "bias"):
            qkv = [sd[f"context_embedder.token_refiner.refiner_blocks.{i}.attn.to_{x}.{p}"] for x in "qkv"]
            out[f"txt_in.individual_token_refiner.blocks.{i}.self_attn_qkv.{p}"] = torch.cat(qkv).contiguous()
    t = root / "transformer" / folder
    t.mkdir(parents=True)
    save_file(out, str(t / "diffusion_pytorch_model.safetensors"))
    config = {"_class_name": "HunyuanVideo_1_5_DiffusionTransformer", "patch_size": [1, 1, 1], "in_channels": 98,
              "concat_condition": False, "out_channels": 32, "hidden_size": 16, "heads_num": 2,
              "mlp_width_ratio": 2.0, "mm_double_blocks_depth": 2, "rope_dim_list": [2, 2, 4], "rope_theta": 256,
              "text_states_dim": 16, "vision_states_dim": 12, "use_meanflow": True, "glyph_byT5_v2": True,
              "ideal_resolution": target}  # fmt: skip
    (t / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed + 2)
    ups = upsampler.Upsampler720p(32, 32, hidden_channels=8, num_blocks=1)
    _randomize(ups, seed + 3)
    upsampler.save(ups, root / "upsampler" / folder)
    return root
