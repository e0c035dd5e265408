"""What a family's computation hands the sampling loop (`StepInputs`, `UpscaleInputs`) and what it knows of a
super-resolution model before loading it (`Upscaler`); part of the family interface (render.model.family)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StepInputs:
    """What one render feeds the DiT besides the noisy latents and the timestep: the conditioning of the prompt
    (and of the negative prompt, with true CFG) as keyword arguments, how the latents become the DiT's input
    (`hidden`: e.g. condition channels appended), and keyword arguments that depend on the step (`per_step`)."""

    cond: dict[str, Any]
    uncond: dict[str, Any] | None = None
    hidden: Any = None  # Callable[[Tensor [B, C, T, H, W]], Tensor [B, C_in, T, H, W]] or None (the latents)
    per_step: Any = None  # Callable[[int, Tensor x_in [B, C, T, H, W], Tensor timesteps [N]], dict] or None
    start: Any = None  # Callable[[noise [B, C, T, H, W]], latents at step 0] or None (the noise itself)
    after_step: Any = None  # Callable[[latents after a step], latents] or None (e.g. a clean first frame put back)
    # `hidden` when it depends on the step: Callable[[int, Tensor x_in, Tensor timesteps [N]], Tensor [B, C_in, ...]]
    # (super-resolution drops its low-resolution condition below a timestep); used instead of `hidden` when set
    hidden_at: Any = None


@dataclass(frozen=True)
class Upscaler:
    """A family's super-resolution model for one target, as found in a folder (nothing loaded): what the upscale
    stage and the plan need to know before any weight loads."""

    target: str  # "720p", "1080p": what `--sr` / `--to` names
    source: str  # the folder it was found in, for messages and manifests
    layout: str  # "diffusers" (hyv's converted layout) or "original" (the family's release layout, loaded in place)
    components: tuple[Path, ...]  # the folders holding its weights (their identity goes into every upscale key)
    config: Mapping[str, Any]  # its DiT's config in diffusers' terms
    steps: int
    shift: float
    facts: Mapping[str, Any] = field(default_factory=dict)  # what else the family records (buckets, noise, ...)


@dataclass
class UpscaleInputs:
    """What one upscale's sampling loop starts from: its initial latents [1, C, T, H, W], the DiT's inputs, the
    schedule (an object with `timesteps`, `sigmas`, `set_begin_index` and `step`, as diffusers' schedulers have),
    and what the manifest records of how they were made (seeds, noise)."""

    latents: Any
    inputs: StepInputs
    scheduler: Any
    record: dict[str, Any] = field(default_factory=dict)
