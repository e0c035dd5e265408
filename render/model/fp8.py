"""FP8 DiT weights, two ways.

- Tencent's scaled FP8 (`mp_rank_00_model_states_fp8.pt` + `_fp8_map.pt`): every nn.Linear inside the double and
  single blocks holds a float8_e4m3fn weight W8 and a per-layer scale s; the layer computes
  F.linear(x, W8.to(x.dtype) * s, b), as upstream's `fp8_linear_forward` does. Only the fp8 weights are kept: one
  byte per weight.
- `--fp8` on a bf16/fp32 checkpoint: diffusers' layerwise casting (weights stored in float8_e4m3fn, unscaled, each
  layer cast to the compute dtype for its forward), skipping the layers diffusers keeps in full precision
  (embedders, norms) and LoRA layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn


class ScaledFP8Linear(torch.nn.Linear):
    """An nn.Linear whose weight is float8_e4m3fn with one scale: y = x (W8 * s)^T + b, in x's dtype."""

    scale: torch.Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool, device: Any = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=FP8)
        self.register_buffer("scale", torch.ones((), device=device, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.scale.to(x.dtype)  # [out, in], dequantised for this call only
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, w, bias)


def swap_in_scaled_linears(model: torch.nn.Module, names: set[str]) -> None:
    """Replace the named nn.Linear modules (on the meta device, before weights are assigned) by ScaledFP8Linear."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        new = ScaledFP8Linear(old.in_features, old.out_features, old.bias is not None, device="meta")
        setattr(parent, child, new)


def enable_fp8_storage(model: Any, compute_dtype: torch.dtype) -> None:
    """--fp8 on a full-precision DiT: store the weights in float8_e4m3fn, compute in `compute_dtype`."""
    skip = tuple(getattr(model, "_skip_layerwise_casting_patterns", None) or ()) + ("lora",)
    model.enable_layerwise_casting(storage_dtype=FP8, compute_dtype=compute_dtype, skip_modules_pattern=skip)
