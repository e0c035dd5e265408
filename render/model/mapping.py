"""Mapping a checkpoint's modules onto diffusers' modules: an original module becomes one or more diffusers modules,
each taking some rows (output features) of its weight and bias. The same mapping converts checkpoints, FP8 scale
maps (one scale per module) and LoRAs (lora_A shared, lora_B split by rows); each family gives its own table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Rows of the original weight a target takes: concatenated slices (start, stop); stop None = to the end.
Rows = tuple[tuple[int, int | None], ...]
ALL_ROWS: Rows = ((0, None),)


@dataclass(frozen=True)
class Target:
    name: str  # diffusers module name
    rows: Rows = ALL_ROWS


def take_rows(t: Any, rows: Rows) -> Any:
    """The rows of a tensor a target takes (a view when one slice; works on fp8 and GGUF tensors too)."""
    import torch

    parts = [t[a:b] for a, b in rows]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def split_key(key: str) -> tuple[str, str]:
    """'double_blocks.0.img_attn_qkv.weight' -> ('double_blocks.0.img_attn_qkv', 'weight')."""
    module, _, param = key.rpartition(".")
    return module, param


@dataclass(frozen=True)
class ModuleMap:
    """A family's original module names -> diffusers modules (`map_module(name, width)`, None: not one of its
    modules), and every linear layer of its original DiT by name (what LoRAs and fp8 scale maps are keyed by)."""

    map_module: Callable[[str, int], list[Target] | None]
    linear_modules: Callable[[Mapping[str, Any]], list[str]]
