"""Where a stage computes: a `Placement` ("auto", "cpu", "cuda:N"; a dtype or "auto") made concrete, checked
before anything loads, and the memory of dropped models given back."""

from __future__ import annotations

from typing import Any

from render.core.errors import SettingsError
from render.core.settings import Placement

# The stages' dtypes on a GPU (the text encoders fp16, the DiT bf16, the VAE fp16); a CPU computes in fp32 (half
# precision is hundreds of times slower there).
GPU_DTYPES = {"encode": "float16", "render": "bfloat16", "decode": "float16"}
DTYPES = ("float32", "float16", "bfloat16")


def resolve_placement(placement: Placement, stage: str) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for a stage."""
    import torch

    dev = placement.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(dev)
    except RuntimeError:
        raise SettingsError(f"unknown device {placement.device!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {dev} asked for but no CUDA GPU is available; use --device cpu")
    name = placement.dtype
    if name == "auto":
        name = GPU_DTYPES[stage] if device.type == "cuda" else "float32"
    if name not in DTYPES:
        raise SettingsError(f"unknown dtype {placement.dtype!r}; use auto, {', '.join(DTYPES)}")
    return device, getattr(torch, name)


def dtype_name(placement: Placement, stage: str) -> str:
    """The dtype a stage computes in under this placement, by name ("float32", "bfloat16", ...)."""
    _, dtype = resolve_placement(placement, stage)
    return str(dtype).removeprefix("torch.")


def check_devices(settings: Any, *stages: str) -> None:
    """Every stage's device and dtype are valid here, before the first stage runs (a --vae-device cuda on a
    machine without one fails now, not after hours of rendering)."""
    for stage in stages:
        resolve_placement(getattr(settings, stage).placement, stage)


def release_memory() -> None:
    """Give the memory of models the caller has dropped back before the next stage loads."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
