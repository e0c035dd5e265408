"""Tencent's original DiT layout -> diffusers' `HunyuanVideoTransformer3DModel`, with every width and depth inferred
from the tensors (diffusers' own converter hard-codes width 3072 and so fails on any narrower checkpoint).

The mapping is module by module: an original module (e.g. `double_blocks.3.img_attn_qkv`) becomes one or more
diffusers modules, each taking some rows (output features) of the original weight and bias. The same mapping
converts checkpoints (every row of every tensor), FP8 scale maps (one scale per module) and LoRAs (lora_A shared,
lora_B split by rows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from render.core.errors import ModelNotFoundError
from render.model.mapping import Rows, Target, split_key, take_rows

# One-to-one renames: (original module regex, diffusers module template).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"img_in\.proj", "x_embedder.proj"),
    (r"time_in\.mlp\.0", "time_text_embed.timestep_embedder.linear_1"),
    (r"time_in\.mlp\.2", "time_text_embed.timestep_embedder.linear_2"),
    (r"guidance_in\.mlp\.0", "time_text_embed.guidance_embedder.linear_1"),
    (r"guidance_in\.mlp\.2", "time_text_embed.guidance_embedder.linear_2"),
    (r"vector_in\.in_layer", "time_text_embed.text_embedder.linear_1"),
    (r"vector_in\.out_layer", "time_text_embed.text_embedder.linear_2"),
    (r"txt_in\.input_embedder", "context_embedder.proj_in"),
    (r"txt_in\.t_embedder\.mlp\.0", "context_embedder.time_text_embed.timestep_embedder.linear_1"),
    (r"txt_in\.t_embedder\.mlp\.2", "context_embedder.time_text_embed.timestep_embedder.linear_2"),
    (r"txt_in\.c_embedder\.linear_1", "context_embedder.time_text_embed.text_embedder.linear_1"),
    (r"txt_in\.c_embedder\.linear_2", "context_embedder.time_text_embed.text_embedder.linear_2"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.(norm1|norm2)", r"{R}.\1.\2"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.self_attn_proj", r"{R}.\1.attn.to_out.0"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.mlp\.fc1", r"{R}.\1.ff.net.0.proj"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.mlp\.fc2", r"{R}.\1.ff.net.2"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.adaLN_modulation\.1", r"{R}.\1.norm_out.linear"),
    (r"double_blocks\.(\d+)\.img_mod\.linear", r"transformer_blocks.\1.norm1.linear"),
    (r"double_blocks\.(\d+)\.txt_mod\.linear", r"transformer_blocks.\1.norm1_context.linear"),
    (r"double_blocks\.(\d+)\.img_attn_q_norm", r"transformer_blocks.\1.attn.norm_q"),
    (r"double_blocks\.(\d+)\.img_attn_k_norm", r"transformer_blocks.\1.attn.norm_k"),
    (r"double_blocks\.(\d+)\.txt_attn_q_norm", r"transformer_blocks.\1.attn.norm_added_q"),
    (r"double_blocks\.(\d+)\.txt_attn_k_norm", r"transformer_blocks.\1.attn.norm_added_k"),
    (r"double_blocks\.(\d+)\.img_attn_proj", r"transformer_blocks.\1.attn.to_out.0"),
    (r"double_blocks\.(\d+)\.txt_attn_proj", r"transformer_blocks.\1.attn.to_add_out"),
    (r"double_blocks\.(\d+)\.img_mlp\.fc1", r"transformer_blocks.\1.ff.net.0.proj"),
    (r"double_blocks\.(\d+)\.img_mlp\.fc2", r"transformer_blocks.\1.ff.net.2"),
    (r"double_blocks\.(\d+)\.txt_mlp\.fc1", r"transformer_blocks.\1.ff_context.net.0.proj"),
    (r"double_blocks\.(\d+)\.txt_mlp\.fc2", r"transformer_blocks.\1.ff_context.net.2"),
    (r"single_blocks\.(\d+)\.linear2", r"single_transformer_blocks.\1.proj_out"),
    (r"single_blocks\.(\d+)\.q_norm", r"single_transformer_blocks.\1.attn.norm_q"),
    (r"single_blocks\.(\d+)\.k_norm", r"single_transformer_blocks.\1.attn.norm_k"),
    (r"single_blocks\.(\d+)\.modulation\.linear", r"single_transformer_blocks.\1.norm.linear"),
    (r"final_layer\.linear", "proj_out"),
)
_REFINER = "context_embedder.token_refiner.refiner_blocks"
# Fused projections split by rows into several diffusers modules: (regex, targets, split kind).
_SPLITS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (r"double_blocks\.(\d+)\.img_attn_qkv", ("attn.to_q", "attn.to_k", "attn.to_v"), "qkv"),
    (r"double_blocks\.(\d+)\.txt_attn_qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), "qkv"),
    (r"single_blocks\.(\d+)\.linear1", ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), "linear1"),
    (r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.self_attn_qkv", ("attn.to_q", "attn.to_k", "attn.to_v"), "qkv"),
)
_SPLIT_PREFIX = {"double_blocks": "transformer_blocks", "single_blocks": "single_transformer_blocks"}


def map_module(name: str, hidden: int) -> list[Target] | None:
    """The diffusers modules an original module becomes (None: not a module of the original DiT).
    `hidden` is the model width (the rows of one of q, k, v)."""
    for pattern, template in _RENAMES:
        m = re.fullmatch(pattern, name)
        if m:
            return [Target(m.expand(template.replace("{R}", _REFINER)))]
    for pattern, parts, kind in _SPLITS:
        m = re.fullmatch(pattern, name)
        if m:
            if name.startswith("txt_in"):
                prefix = f"{_REFINER}.{m.group(1)}"
            else:
                prefix = f"{_SPLIT_PREFIX[name.split('.')[0]]}.{m.group(1)}"
            h = hidden
            rows: list[Rows] = [((0, h),), ((h, 2 * h),), ((2 * h, 3 * h),)]
            if kind == "linear1":
                rows.append(((3 * h, None),))
            return [Target(f"{prefix}.{p}", r) for p, r in zip(parts, rows, strict=True)]
    if name == "final_layer.adaLN_modulation.1":  # (shift, scale) -> (scale, shift)
        return [Target("norm_out.linear", ((hidden, 2 * hidden), (0, hidden)))]
    return None


def convert_dit_state_dict(sd: Mapping[str, Any], hidden: int, source: str) -> dict[str, Any]:
    """Original-layout DiT tensors -> diffusers names (rows split or swapped where the layouts differ)."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
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
            f"{source}: {len(unknown)} tensor(s) are not part of HunyuanVideo's original DiT, e.g. "
            f"{', '.join(unknown[:3])}"
        )
    return out


def looks_original(keys: Any) -> bool:
    """Whether a DiT state dict uses the original names (double_blocks...) rather than diffusers'."""
    return any(str(k).startswith(("double_blocks.", "single_blocks.", "img_in.")) for k in keys)


# 13B: HYVideo-T/2-cfgdistill. The RoPE axes cannot be recovered from the weights.
DEFAULT_ROPE_AXES = (16, 56, 56)


def infer_dit_config(
    shapes: Mapping[str, tuple[int, ...]], overrides: Mapping[str, Any], source: str
) -> dict[str, Any]:
    """diffusers config of an original-layout DiT from its tensors' shapes: widths, depths, heads, patch, text
    dims and guidance. `overrides` (a model's hyv.json "transformer" entry) supplies what tensors cannot say
    (rope_axes_dim, rope_theta) and wins over everything."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise ModelNotFoundError(f"{source} is not an original-layout HunyuanVideo DiT (no {key})")
        return tuple(shapes[key])

    def depth(prefix: str) -> int:
        found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return max(found) + 1 if found else 0

    img_in = shape("img_in.proj.weight")  # [hidden, C, pt, ph, pw]
    hidden, channels = img_in[0], img_in[1]
    head_dim = shape("double_blocks.0.img_attn_q_norm.weight")[0]
    pt, ph = img_in[2], img_in[3]
    final = shape("final_layer.linear.weight")  # [pt * ph * pw * C_out, hidden]
    cfg: dict[str, Any] = {
        "in_channels": channels,
        "out_channels": final[0] // (pt * ph * img_in[4]),
        "num_attention_heads": hidden // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": depth("double_blocks."),
        "num_single_layers": depth("single_blocks."),
        "num_refiner_layers": depth("txt_in.individual_token_refiner.blocks."),
        "mlp_ratio": shape("double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": ph,
        "patch_size_t": pt,
        "qk_norm": "rms_norm",
        "guidance_embeds": "guidance_in.mlp.0.weight" in shapes,
        "text_embed_dim": shape("txt_in.input_embedder.weight")[1],
        "pooled_projection_dim": shape("vector_in.in_layer.weight")[1],
        "rope_theta": 256.0,
    }
    if head_dim == sum(DEFAULT_ROPE_AXES):
        cfg["rope_axes_dim"] = DEFAULT_ROPE_AXES
    cfg.update(overrides)
    axes = cfg.get("rope_axes_dim")
    if axes is None or sum(axes) != head_dim:
        raise ModelNotFoundError(
            f"{source}: the RoPE axes of a DiT with head size {head_dim} cannot be read from its weights; put "
            '{"transformer": {"rope_axes_dim": [t, h, w]}} (summing to the head size) in the model\'s hyv.json'
        )
    cfg["rope_axes_dim"] = tuple(axes)
    return cfg


def original_linear_modules(config: Mapping[str, Any]) -> list[str]:
    """Every nn.Linear of an original-layout DiT with this (diffusers) config, by its original name: what
    LoRAs and FP8 scale maps are keyed by."""
    names: list[str] = []
    for i in range(int(config["num_layers"])):
        for side in ("img", "txt"):
            names += [f"double_blocks.{i}.{side}_{m}" for m in ("mod.linear", "attn_qkv", "attn_proj")]
            names += [f"double_blocks.{i}.{side}_mlp.fc1", f"double_blocks.{i}.{side}_mlp.fc2"]
    for i in range(int(config["num_single_layers"])):
        names += [f"single_blocks.{i}.{m}" for m in ("linear1", "linear2", "modulation.linear")]
    return names


# ---------------------------------------------------------------------------------------------- the VAE


def vae_config_from_original(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Tencent's `AutoencoderKLCausal3D` config.json -> diffusers' `AutoencoderKLHunyuanVideo` config."""
    blocks = list(cfg.get("block_out_channels", (128, 256, 512, 512)))
    return {
        "in_channels": int(cfg.get("in_channels", 3)),
        "out_channels": int(cfg.get("out_channels", 3)),
        "latent_channels": int(cfg.get("latent_channels", 16)),
        "down_block_types": ["HunyuanVideoDownBlock3D"] * len(blocks),
        "up_block_types": ["HunyuanVideoUpBlock3D"] * len(blocks),
        "block_out_channels": blocks,
        "layers_per_block": int(cfg.get("layers_per_block", 2)),
        "act_fn": cfg.get("act_fn", "silu"),
        "norm_num_groups": int(cfg.get("norm_num_groups", 32)),
        "scaling_factor": float(cfg.get("scaling_factor", 0.476986)),
        "spatial_compression_ratio": int(cfg.get("spatial_compression_ratio", 8)),
        "temporal_compression_ratio": int(cfg.get("time_compression_ratio", 4)),
        "mid_block_add_attention": bool(cfg.get("mid_block_add_attention", True)),
    }


def vae_state_dict(sd: Mapping[str, Any]) -> dict[str, Any]:
    """The VAE's tensors without Tencent's "vae." prefixes (the module names are diffusers' already)."""
    if any(k.startswith("vae.") for k in sd):
        return {k.removeprefix("vae."): v for k, v in sd.items() if k.startswith("vae.")}
    return dict(sd)
