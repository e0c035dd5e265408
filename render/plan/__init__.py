"""The memory plan (`hyv plan`, `hyv run --dry-run`, `--offload auto`): every stage's peak device memory under
each offload mode, from the real modules run on meta tensors (render.plan.planner)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.placement import GPU_DTYPES
from render.core.settings import latent_shape
from render.plan.planner import Plan, StagePlan

if TYPE_CHECKING:
    from render.core.settings import Settings
    from render.model.family import Family, Upscaler
    from render.model.ref import ModelRef
    from render.model.variant import DiTVariant

__all__ = ["Plan", "StagePlan", "free_memory", "make_plan", "plan_device"]


def plan_device(device: str) -> str:
    """"cuda" or "cpu" for a placement device ("auto": cuda when present, else cpu)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def _dtype(stage: str, device: str, name: str) -> object:
    import torch

    if name != "auto":
        return getattr(torch, name)
    return getattr(torch, GPU_DTYPES[stage]) if device == "cuda" else torch.float32


def make_plan(
    model: ModelRef,
    family: Family,
    settings: Settings,
    variant: DiTVariant,
    stages: tuple[str, ...] = ("encode", "render", "decode"),
    upscaler: Upscaler | None = None,
) -> Plan:
    """The plan for these settings (sizes, text length, tiling, each stage's device and dtype) and DiT variant.
    `upscaler`: super-resolution's model (settings.upscale.sr): the "upscale" stage runs it at the upscaled size,
    and the decode is planned at that size."""
    from render.plan.planner import plan_decode, plan_encode, plan_render, plan_upscale

    r = settings.render
    factors = family.vae_factors(model)
    latent = latent_shape(r.frames, r.height, r.width, factors)
    out = Plan(r.frames, r.height, r.width, [], variant.describe(family.fp8_kind(model, variant)))
    decoded = latent
    if upscaler is not None:
        height, width = family.upscaled_size(model, upscaler, r.height, r.width)
        decoded = latent_shape(r.frames, height, width, factors)
        out.upscaled = (upscaler.target, height, width)
    for stage in stages:
        placement = getattr(settings, "render" if stage == "upscale" else stage).placement
        device = plan_device(placement.device)
        dtype: Any = _dtype("render" if stage == "upscale" else stage, device, placement.dtype)
        if stage == "encode":
            size = (r.height, r.width)
            out.stages.append(plan_encode(model, family, device, dtype, settings.encode, r.frames, size))
        elif stage == "render":
            out.stages.append(plan_render(model, family, variant, device, dtype, latent, settings.encode.text_len))
        elif stage == "upscale":
            if upscaler is None:
                raise ValueError("an upscale stage is planned with its upscaler")
            out.stages.append(plan_upscale(family, upscaler, device, dtype, decoded, settings.encode.text_len))
        else:
            out.stages.append(plan_decode(model, family, device, dtype, decoded, settings.decode.tiling))
    return out


def free_memory(device: str) -> int | None:
    """Free bytes on a device: CUDA's free memory, or the CPU's MemAvailable; None when unknown."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def summary(plan: Plan, free: int | None) -> dict[str, object]:
    """The plan as JSON: per stage its device, dtype, weights, activations and peak per mode; the run's peak per
    mode (the largest stage: the engine frees each stage's models after it); every model resident at once
    (upstream's way); and, given the free memory, which modes fit and what --offload auto picks per stage."""
    from render.core.settings import CONCRETE_MODES

    stages = [
        {
            "stage": s.stage,
            "device": s.device,
            "dtype": s.dtype,
            "weights_bytes": s.weights,
            "activations_bytes": s.activations,
            "peak_bytes": dict(s.peaks),
            "components": [{"name": c.name, "weights_bytes": c.weights} for c in s.components],
        }
        for s in plan.stages
    ]
    run_peak = {m: max(s.peaks[m] for s in plan.stages) for m in CONCRETE_MODES}
    out: dict[str, object] = {
        "frames": plan.frames,
        "height": plan.height,
        "width": plan.width,
        **({"sr": dict(zip(("to", "height", "width"), plan.upscaled, strict=True))} if plan.upscaled else {}),
        "weights_variant": plan.variant,
        "stages": stages,
        "run_peak_bytes": run_peak,
        "all_resident_bytes": plan.all_resident,
        "free_bytes": free,
    }
    if free is not None:
        out["fits"] = {m: v * 1.1 <= free for m, v in run_peak.items()}
        out["auto"] = {s.stage: plan.cheapest_fitting(s.stage, free) for s in plan.stages}
    return out
