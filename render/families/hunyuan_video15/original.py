"""Tencent's original HunyuanVideo 1.5 checkpoints -> diffusers' `HunyuanVideo15Transformer3DModel` and
`AutoencoderKLHunyuanVideo15`, module by module (the mapping of diffusers' convert_hunyuan_video1_5_to_diffusers.py
script, with the block counts read from the tensors instead of its fixed 54 and 2), and their configs translated.

The transformer's modules map one to one but for two: a refiner block's fused `self_attn_qkv` is split by rows into
`attn.to_q/k/v`, and the final layer's modulation rows are (shift, scale) where diffusers' are (scale, shift).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from render.core.errors import ModelNotFoundError
from render.families.hunyuan_video15.layout import TARGET_SIZES
from render.model.mapping import Rows, Target, split_key, take_rows

_FIXED = {  # original module -> diffusers module, outside the blocks
    "time_in.mlp.0": "time_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_embed.timestep_embedder.linear_2",
    "time_r_in.mlp.0": "time_embed.timestep_embedder_r.linear_1",  # step-distilled (MeanFlow) models
    "time_r_in.mlp.2": "time_embed.timestep_embedder_r.linear_2",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "txt_in.input_embedder": "context_embedder.proj_in",
    "byt5_in.layernorm": "context_embedder_2.norm",
    "byt5_in.fc1": "context_embedder_2.linear_1",
    "byt5_in.fc2": "context_embedder_2.linear_2",
    "byt5_in.fc3": "context_embedder_2.linear_3",
    "vision_in.proj.0": "image_embedder.norm_in",
    "vision_in.proj.1": "image_embedder.linear_1",
    "vision_in.proj.3": "image_embedder.linear_2",
    "vision_in.proj.4": "image_embedder.norm_out",
    "img_in.proj": "x_embedder.proj",
    "cond_type_embedding": "cond_type_embed",
    "final_layer.linear": "proj_out",
}
_REFINER = {"norm1": "norm1", "norm2": "norm2", "self_attn_proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj",
            "mlp.fc2": "ff.net.2", "adaLN_modulation.1": "norm_out.linear"}  # fmt: skip
_BLOCK = {
    "img_mod.linear": "norm1.linear", "txt_mod.linear": "norm1_context.linear",
    "img_attn_q": "attn.to_q", "img_attn_k": "attn.to_k", "img_attn_v": "attn.to_v",
    "img_attn_q_norm": "attn.norm_q", "img_attn_k_norm": "attn.norm_k", "img_attn_proj": "attn.to_out.0",
    "txt_attn_q": "attn.add_q_proj", "txt_attn_k": "attn.add_k_proj", "txt_attn_v": "attn.add_v_proj",
    "txt_attn_q_norm": "attn.norm_added_q", "txt_attn_k_norm": "attn.norm_added_k", "txt_attn_proj": "attn.to_add_out",
    "img_mlp.fc1": "ff.net.0.proj", "img_mlp.fc2": "ff.net.2", "txt_mlp.fc1": "ff_context.net.0.proj",
    "txt_mlp.fc2": "ff_context.net.2",
}  # fmt: skip
_REFINER_PREFIX = "txt_in.individual_token_refiner.blocks."
_VAE_RULES = (  # original -> diffusers, applied in order
    (r"^(encoder|decoder)\.down\.(\d+)\.block\.(\d+)\.", r"\1.down_blocks.\2.resnets.\3."),
    (r"^(encoder|decoder)\.up\.(\d+)\.block\.(\d+)\.", r"\1.up_blocks.\2.resnets.\3."),
    (r"^(encoder|decoder)\.down\.(\d+)\.downsample\.", r"\1.down_blocks.\2.downsamplers.0."),
    (r"^(encoder|decoder)\.up\.(\d+)\.upsample\.", r"\1.up_blocks.\2.upsamplers.0."),
    (r"^(encoder|decoder)\.mid\.block_1\.", r"\1.mid_block.resnets.0."),
    (r"^(encoder|decoder)\.mid\.block_2\.", r"\1.mid_block.resnets.1."),
    (r"^(encoder|decoder)\.mid\.attn_1\.([qkv])\.", r"\1.mid_block.attentions.0.to_\2."),
    (r"^(encoder|decoder)\.mid\.attn_1\.", r"\1.mid_block.attentions.0."),
    (r"\.nin_shortcut\.", r".conv_shortcut."),
)


def map_module(name: str, hidden: int) -> list[Target] | None:
    """The diffusers modules an original module becomes (None: not a module of the 1.5 DiT)."""
    if name in _FIXED:
        return [Target(_FIXED[name])]
    if name == "final_layer.adaLN_modulation.1":  # (shift, scale) -> (scale, shift)
        return [Target("norm_out.linear", ((hidden, 2 * hidden), (0, hidden)))]
    m = re.fullmatch(r"double_blocks\.(\d+)\.(.+)", name)
    if m and m.group(2) in _BLOCK:
        return [Target(f"transformer_blocks.{m.group(1)}.{_BLOCK[m.group(2)]}")]
    m = re.fullmatch(re.escape(_REFINER_PREFIX) + r"(\d+)\.(.+)", name)
    if m:
        prefix = f"context_embedder.token_refiner.refiner_blocks.{m.group(1)}"
        if m.group(2) == "self_attn_qkv":
            rows: list[Rows] = [((0, hidden),), ((hidden, 2 * hidden),), ((2 * hidden, 3 * hidden),)]
            return [Target(f"{prefix}.attn.to_{p}", r) for p, r in zip("qkv", rows, strict=True)]
        if m.group(2) in _REFINER:
            return [Target(f"{prefix}.{_REFINER[m.group(2)]}")]
    return None


def linear_modules(config: Mapping[str, Any]) -> list[str]:
    """Every linear layer of the DiT's blocks by its original name (LoRAs in Tencent's names are keyed by them)."""
    names = []
    for i in range(int(config["num_layers"])):
        names += [f"double_blocks.{i}.{k}" for k in _BLOCK if "norm" not in k]
    return names


def looks_original(keys: Any) -> bool:
    return any(str(k).startswith(("double_blocks.", "img_in.", "txt_in.")) for k in keys)


def convert_dit(sd: Mapping[str, Any], hidden: int, source: str) -> dict[str, Any]:
    """Original DiT tensors -> diffusers names (rows split or swapped where the layouts differ)."""
    out: dict[str, Any] = {}
    unknown = []
    for key, tensor in sd.items():
        module, param = split_key(key)
        targets = map_module(module, hidden)
        if targets is None:
            unknown.append(key)
            continue
        for t in targets:
            out[f"{t.name}.{param}"] = take_rows(tensor, t.rows)
    if unknown:
        raise ModelNotFoundError(
            f"{source}: {len(unknown)} tensor(s) are not part of HunyuanVideo 1.5's DiT, e.g. {', '.join(unknown[:3])}"
        )
    return out


def convert_vae(sd: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in sd.items():
        for pattern, repl in _VAE_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def dit_config(
    t: Mapping[str, Any], variant: str, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, Any]:
    """Tencent's transformer config.json -> HunyuanVideo15Transformer3DModel's config (the refiner's depth and the
    ByT5 width, which Tencent's class fixes at 2 and 1472, from the tensors when they are given)."""
    heads = int(t["heads_num"])
    pt, ph, pw = t.get("patch_size", [1, 1, 1])
    if ph != pw or int(t.get("mm_single_blocks_depth", 0)) != 0 or t.get("is_reshape_temporal_channels"):
        raise ModelNotFoundError(f"HunyuanVideo 1.5 DiT config of {variant} is not one diffusers' class can hold")
    refiner, glyph = 2, 1472  # Tencent's class fixes both: its refiner's depth and its ByT5 mapper's input
    if shapes:
        found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(_REFINER_PREFIX) + r"(\d+)\.", k))}
        refiner = max(found) + 1 if found else 2
        glyph = int(shapes.get("byt5_in.layernorm.weight", (glyph,))[0])
    latent = int(t["in_channels"])
    return {
        "in_channels": 2 * latent + 1,  # noisy latents + condition latents + mask
        "out_channels": int(t.get("out_channels") or latent),
        "num_attention_heads": heads,
        "attention_head_dim": int(t["hidden_size"]) // heads,
        "num_layers": int(t["mm_double_blocks_depth"]),
        "num_refiner_layers": refiner,
        "mlp_ratio": float(t["mlp_width_ratio"]),
        "patch_size": int(ph),
        "patch_size_t": int(pt),
        "qk_norm": {"rms": "rms_norm", "layer": "layer_norm"}[t.get("qk_norm_type", "rms")],
        "text_embed_dim": int(t["text_states_dim"]),
        "text_embed_2_dim": glyph,
        "image_embed_dim": int(t["vision_states_dim"]),
        "rope_theta": float(t.get("rope_theta", 256)),
        "rope_axes_dim": tuple(t["rope_dim_list"]),
        "target_size": TARGET_SIZES[t.get("ideal_resolution") or variant.split("_")[0]],
        "task_type": "i2v" if "_i2v" in variant else "t2v",
        "use_meanflow": bool(t.get("use_meanflow", False)),
    }


def vae_config(v: Mapping[str, Any]) -> dict[str, Any]:
    """Tencent's vae/config.json (AutoencoderKLConv3D) -> AutoencoderKLHunyuanVideo15's config."""
    if v.get("shift_factor") is not None:
        raise ModelNotFoundError("a HunyuanVideo 1.5 VAE with a shift_factor is not one diffusers' class can hold")
    return {
        "in_channels": int(v["in_channels"]),
        "out_channels": int(v["out_channels"]),
        "latent_channels": int(v["latent_channels"]),
        "block_out_channels": tuple(v["block_out_channels"]),
        "layers_per_block": int(v["layers_per_block"]),
        "spatial_compression_ratio": int(v["ffactor_spatial"]),
        "temporal_compression_ratio": int(v["ffactor_temporal"]),
        "downsample_match_channel": bool(v.get("downsample_match_channel", True)),
        "upsample_match_channel": bool(v.get("upsample_match_channel", True)),
        "scaling_factor": float(v["scaling_factor"]),
    }


def assemble(cls: Any, config: Mapping[str, Any], sd: dict[str, Any], dtype: Any) -> Any:
    """`cls` built on the meta device from `config`, the tensors assigned (no second copy of the weights)."""
    import torch

    with torch.device("meta"):
        model: Any = cls.from_config(dict(config))
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    return model.eval()


def read_safetensors(files: list[Any]) -> dict[str, Any]:
    from safetensors.torch import load_file

    from render.model.weightfiles import safetensors_header

    sd: dict[str, Any] = {}
    for f in files:
        safetensors_header(f)  # a truncated file: one line naming it
        sd.update(load_file(str(f)))
    return sd


def load_dit_file(path: Any, config: Mapping[str, Any], dtype: Any) -> Any:
    """A DiT file given with --dit (.safetensors, Tencent's names or diffusers')."""
    from diffusers import HunyuanVideo15Transformer3DModel

    if path.suffix != ".safetensors":
        raise ModelNotFoundError(f"--dit {path}: HunyuanVideo 1.5 DiT files are read as .safetensors")
    sd = read_safetensors([path])
    if looks_original(sd):
        hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
        sd = convert_dit(sd, hidden, str(path))
    return assemble(HunyuanVideo15Transformer3DModel, config, sd, dtype)
