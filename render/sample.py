"""The sampling math as free functions: initial noise, the sigma schedule and the flow-matching Euler loop.

Each operation is the one diffusers' HunyuanVideoPipeline.__call__ performs, in the same order and dtypes, so the
same seed gives the same latents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Conditioning:
    prompt_embeds: torch.Tensor  # [B, L, D]
    prompt_attention_mask: torch.Tensor  # [B, L]
    pooled_prompt_embeds: torch.Tensor  # [B, P]

    def to(self, device: torch.device, dtype: torch.dtype) -> Conditioning:
        return Conditioning(
            *(
                t.to(device=device, dtype=dtype)
                for t in (self.prompt_embeds, self.prompt_attention_mask, self.pooled_prompt_embeds)
            )
        )


def initial_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Noise as diffusers draws it: a CPU generator seeded with `seed`, float32, then moved. [B, C, T, H, W]"""
    gen = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device)


def set_schedule(scheduler: Any, steps: int, device: torch.device) -> torch.Tensor:
    """sigmas = linspace(1, 0, steps + 1)[:-1], shifted by the scheduler; returns the timesteps [steps]."""
    if scheduler.config.get("stochastic_sampling", False):
        raise ValueError("stochastic flow-matching sampling is not supported")
    sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
    scheduler.set_timesteps(sigmas=sigmas, device=device)
    return scheduler.timesteps


def denoise(
    transformer: Any,
    scheduler: Any,
    latents: torch.Tensor,  # [B, C, T, H, W] at step `start`
    cond: Conditioning,
    uncond: Conditioning | None,  # true CFG when given
    *,
    guidance: float,
    cfg_scale: float,
    start: int,
    end: int,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run steps [start, end) of the schedule already set on `scheduler`. `on_step(i, latents, x0)` is called
    after step i with the new latents and the predicted clean latents x0 = x_t - sigma * v (for previews)."""
    tdtype = transformer.dtype
    device = latents.device
    cond = cond.to(device, tdtype)
    uncond = uncond.to(device, tdtype) if uncond is not None else None
    # Embedded guidance, as the distilled model was trained: guidance * 1000. [B]
    g = torch.tensor([guidance] * latents.shape[0], dtype=tdtype, device=device) * 1000.0
    scheduler.set_begin_index(start)
    timesteps = scheduler.timesteps
    with torch.inference_mode():
        for i in range(start, end):
            t = timesteps[i]
            x_in = latents.to(tdtype)
            timestep = t.expand(latents.shape[0]).to(latents.dtype)  # [B]
            v = _forward(transformer, x_in, timestep, cond, g)
            if uncond is not None:
                v_neg = _forward(transformer, x_in, timestep, uncond, g)
                v = v_neg + cfg_scale * (v - v_neg)
            sigma = scheduler.sigmas[i]
            x0 = latents.to(torch.float32) - sigma * v.to(torch.float32) if on_step is not None else latents
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step(i, latents, x0)
    return latents


def _forward(
    transformer: Any, x: torch.Tensor, timestep: torch.Tensor, c: Conditioning, g: torch.Tensor
) -> Any:
    return transformer(
        hidden_states=x,
        timestep=timestep,
        encoder_hidden_states=c.prompt_embeds,
        encoder_attention_mask=c.prompt_attention_mask,
        pooled_projections=c.pooled_prompt_embeds,
        guidance=g,
        return_dict=False,
    )[0]
