"""HunyuanVideo 1.5's DiT: Tencent's tensor names (`HunyuanVideo_1_5_DiffusionTransformer`) -> diffusers'
(`HunyuanVideo15Transformer3DModel`), as diffusers' `scripts/convert_hunyuan_video1_5_to_diffusers.py` maps them,
plus the MeanFlow embedder of the step-distilled and super-resolution models (`time_r_in` ->
`time_embed.timestep_embedder_r`, which the converter maps only in its newer versions).

Three kinds of entries: a rename, the final layer's AdaLN linear with its (shift, scale) halves swapped to diffusers'
(scale, shift), and the token refiner's fused qkv split in three along the rows. `rules` gives them for a set of
names so that the same map serves tensors (conversion, loading) and shapes (checks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

RENAMES = (
    ("time_in.mlp.0", "time_embed.timestep_embedder.linear_1"),
    ("time_in.mlp.2", "time_embed.timestep_embedder.linear_2"),
    ("time_r_in.mlp.0", "time_embed.timestep_embedder_r.linear_1"),
    ("time_r_in.mlp.2", "time_embed.timestep_embedder_r.linear_2"),
    ("txt_in.t_embedder.mlp.0", "context_embedder.time_text_embed.timestep_embedder.linear_1"),
    ("txt_in.t_embedder.mlp.2", "context_embedder.time_text_embed.timestep_embedder.linear_2"),
    ("txt_in.c_embedder.linear_1", "context_embedder.time_text_embed.text_embedder.linear_1"),
    ("txt_in.c_embedder.linear_2", "context_embedder.time_text_embed.text_embedder.linear_2"),
    ("txt_in.input_embedder", "context_embedder.proj_in"),
    ("byt5_in.layernorm", "context_embedder_2.norm"),
    ("byt5_in.fc1", "context_embedder_2.linear_1"),
    ("byt5_in.fc2", "context_embedder_2.linear_2"),
    ("byt5_in.fc3", "context_embedder_2.linear_3"),
    ("vision_in.proj.0", "image_embedder.norm_in"),
    ("vision_in.proj.1", "image_embedder.linear_1"),
    ("vision_in.proj.3", "image_embedder.linear_2"),
    ("vision_in.proj.4", "image_embedder.norm_out"),
    ("img_in.proj", "x_embedder.proj"),
    ("final_layer.linear", "proj_out"),
    ("cond_type_embedding", "cond_type_embed"),
)
REFINER = (
    ("norm1", "norm1"),
    ("norm2", "norm2"),
    ("self_attn_proj", "attn.to_out.0"),
    ("mlp.fc1", "ff.net.0.proj"),
    ("mlp.fc2", "ff.net.2"),
    ("adaLN_modulation.1", "norm_out.linear"),
)
BLOCK = (
    ("img_mod.linear", "norm1.linear"),
    ("txt_mod.linear", "norm1_context.linear"),
    ("img_attn_q", "attn.to_q"),
    ("img_attn_k", "attn.to_k"),
    ("img_attn_v", "attn.to_v"),
    ("img_attn_proj", "attn.to_out.0"),
    ("txt_attn_q", "attn.add_q_proj"),
    ("txt_attn_k", "attn.add_k_proj"),
    ("txt_attn_v", "attn.add_v_proj"),
    ("txt_attn_proj", "attn.to_add_out"),
    ("img_mlp.fc1", "ff.net.0.proj"),
    ("img_mlp.fc2", "ff.net.2"),
    ("txt_mlp.fc1", "ff_context.net.0.proj"),
    ("txt_mlp.fc2", "ff_context.net.2"),
    ("img_attn_q_norm", "attn.norm_q"),
    ("img_attn_k_norm", "attn.norm_k"),
    ("txt_attn_q_norm", "attn.norm_added_q"),
    ("txt_attn_k_norm", "attn.norm_added_k"),
)
SWAPPED = "final_layer.adaLN_modulation.1"  # Tencent (shift, scale) -> diffusers (scale, shift)
_REFINER = re.compile(r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.(.+)")
_BLOCK = re.compile(r"double_blocks\.(\d+)\.(.+)")

# One entry: (diffusers name, Tencent name, how: "" | "swap" | "q" | "k" | "v")
Rule = tuple[str, str, str]


def _split(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def _rename(module: str, table: Iterable[tuple[str, str]]) -> str | None:
    return next((dst for src, dst in table if module == src), None)


def rules(names: Iterable[str]) -> tuple[list[Rule], list[str]]:
    """The diffusers entries made from Tencent's tensor `names`, and the names no rule takes."""
    out: list[Rule] = []
    unmapped: list[str] = []
    for name in names:
        module, param = _split(name)
        if module == SWAPPED:
            out.append((f"norm_out.linear.{param}", name, "swap"))
            continue
        if (m := _REFINER.fullmatch(module)) is not None:
            i, rest = m.groups()
            prefix = f"context_embedder.token_refiner.refiner_blocks.{i}."
            if rest == "self_attn_qkv":
                out += [(f"{prefix}attn.to_{x}.{param}", name, x) for x in "qkv"]
                continue
            dst = _rename(rest, REFINER)
            if dst is not None:
                out.append((f"{prefix}{dst}.{param}", name, ""))
                continue
        elif (m := _BLOCK.fullmatch(module)) is not None:
            i, rest = m.groups()
            dst = _rename(rest, BLOCK)
            if dst is not None:
                out.append((f"transformer_blocks.{i}.{dst}.{param}", name, ""))
                continue
        elif (dst := _rename(module, RENAMES)) is not None:
            out.append((f"{dst}.{param}", name, ""))
            continue
        unmapped.append(name)
    return out, unmapped


def apply(rule: Rule, get: Callable[[str], Any]) -> Any:
    """The diffusers tensor of one rule, `get` reading Tencent's tensor by name."""
    _, src, how = rule
    t = get(src)
    if how == "swap":
        shift, scale = t.chunk(2, dim=0)
        return _cat(scale, shift)
    if how:
        return t.chunk(3, dim=0)["qkv".index(how)]
    return t


def shape(rule: Rule, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The diffusers shape of one rule from Tencent's shapes (a split takes a third of the rows)."""
    _, src, how = rule
    s = tuple(shapes[src])
    return (s[0] // 3, *s[1:]) if how in ("q", "k", "v") else s


def _cat(a: Any, b: Any) -> Any:
    import torch

    return torch.cat([a, b], dim=0)


def count(names: Iterable[str], pattern: str) -> int:
    """How many numbered blocks a checkpoint has (`double_blocks.{i}.`, `...refiner.blocks.{i}.`)."""
    found = {int(m.group(1)) for n in names if (m := re.match(pattern, n)) is not None}
    return max(found) + 1 if found else 0
