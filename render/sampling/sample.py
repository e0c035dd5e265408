"""The sampling math as free functions: initial noise, the sigma schedule and the flow-matching Euler loop.

Each operation is the one diffusers' HunyuanVideoPipeline.__call__ performs, in the same order and dtypes, and
the transformer is called the way the pipeline calls it (inside `cache_context("cond")` / `("uncond")`, with
`attention_kwargs`), so the same seed gives the same latents and every diffusers hook (caches, offloading)
works on this loop unchanged. Bookkeeping (checkpoints, previews, progress) lives in the caller's `on_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from render.model.family import StepInputs

# A step callback: on_step(i, latents after step i, predicted clean latents x0 at step i).
OnStep = Callable[[int, torch.Tensor, torch.Tensor], None]


def initial_noise(
    shape: tuple[int, ...], seed: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Noise as diffusers draws it: a CPU generator seeded with `seed`, in `dtype` (HunyuanVideo: float32; 1.5:
    the DiT's dtype), then moved. [B, C, T, H, W]"""
    gen = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)


def set_schedule(scheduler: Any, steps: int, device: torch.device) -> torch.Tensor:
    """sigmas = linspace(1, 0, steps + 1)[:-1], shifted by the scheduler; returns the timesteps [steps]."""
    if scheduler.config.get("stochastic_sampling", False):
        raise ValueError("stochastic flow-matching sampling is not supported")
    sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
    scheduler.set_timesteps(sigmas=sigmas, device=device)
    return scheduler.timesteps


@contextmanager
def fresh_hook_state(transformer: Any) -> Iterator[None]:
    """Stateful diffusers hooks (step caches) start and end each render empty, as after the pipeline's
    `maybe_free_model_hooks`."""
    from diffusers.hooks import HookRegistry

    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.reset_stateful_hooks()
    try:
        yield
    finally:
        registry.reset_stateful_hooks()


def denoise(
    transformer: Any,
    scheduler: Any,
    latents: torch.Tensor,  # [B, C, T, H, W] at step `start`
    inputs: StepInputs,  # the DiT's conditioning (true CFG when `inputs.uncond` is given): render.model.family
    *,
    cfg_scale: float,
    start: int,
    end: int,
    attention_kwargs: dict[str, Any] | None = None,
    on_step: OnStep | None = None,
    before_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run steps [start, end) of the schedule already set on `scheduler`. `on_step(i, latents, x0)` is called
    after step i with the new latents and the predicted clean latents x0 = x_t - sigma * v (for previews);
    `before_step(i, t)` before it (hooks that follow the timestep, such as FasterCache's, read it from there)."""
    tdtype = transformer.dtype
    device = latents.device
    cond = {k: v.to(device=device, dtype=tdtype) for k, v in inputs.cond.items()}
    uncond = None
    if inputs.uncond is not None:
        uncond = {k: v.to(device=device, dtype=tdtype) for k, v in inputs.uncond.items()}
    scheduler.set_begin_index(start)
    timesteps = scheduler.timesteps
    with torch.inference_mode(), fresh_hook_state(transformer):
        for i in range(start, end):
            t = timesteps[i]
            if before_step is not None:
                before_step(i, t)
            x_in = latents.to(tdtype)
            if inputs.hidden_at is not None:  # the DiT's input depends on the step (super-resolution)
                hidden = inputs.hidden_at(i, x_in, timesteps)  # [B, C_in, T, H, W]
            else:
                hidden = inputs.hidden(x_in) if inputs.hidden is not None else x_in  # [B, C_in, T, H, W]
            extra = inputs.per_step(i, x_in, timesteps) if inputs.per_step is not None else {}
            timestep = t.expand(latents.shape[0]).to(latents.dtype)  # [B]
            where = {"step_index": i, "num_inference_steps": len(timesteps)}  # for hooks that need it (TeaCache)
            v = _velocity(transformer, ("cond", where), hidden, timestep, {**cond, **extra}, attention_kwargs)
            if uncond is not None:
                neg = {**uncond, **extra}
                v_neg = _velocity(transformer, ("uncond", where), hidden, timestep, neg, attention_kwargs)
                v = v_neg + cfg_scale * (v - v_neg)
            sigma = scheduler.sigmas[i]
            x0 = latents.to(torch.float32) - sigma * v.to(torch.float32) if on_step is not None else latents
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
            if inputs.after_step is not None:
                latents = inputs.after_step(latents)
                x0 = inputs.after_step(x0) if on_step is not None else latents
            if on_step is not None:
                on_step(i, latents, x0)
    return latents


def _velocity(
    transformer: Any,
    context: tuple[str, dict[str, int]],
    x: torch.Tensor,  # [B, C, T, H, W] in the transformer's dtype
    timestep: torch.Tensor,  # [B]
    inputs: Mapping[str, torch.Tensor],
    attention_kwargs: dict[str, Any] | None,
) -> torch.Tensor:
    """One DiT forward, as the pipeline makes it: its cache context named "cond" or "uncond" (and where in the
    schedule it is, a field diffusers' CacheContext has for hooks that need it). [B, C, T, H, W]"""
    name, where = context
    with transformer.cache_context(name, **where):
        return transformer(
            hidden_states=x, timestep=timestep, **inputs, attention_kwargs=attention_kwargs, return_dict=False
        )[0]
