"""The memory plan as `hyv plan` and `hyv run --dry-run` show it: one entry point, one default target, one answer.

    memory_plan("hunyuanvideo", Flags(size="720p"), memory="24GB")   # offline: the configs ship with hyv
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from render.core.resolve import Flags
from render.core.sizes import parse_size
from render.model.ref import ModelRef
from render.model.variant import DiTVariant
from render.run.local import LocalEngine

PLAN_DEVICE = "cuda"  # no --device: a plan for a CUDA GPU (its dtypes), whether or not one is here


def memory_plan(
    model: ModelRef | str | Path | None,
    flags: Flags | None = None,
    *,
    variant: DiTVariant | None = None,
    memory: str | None = None,
    sr_model: str | Path | None = None,
) -> dict[str, Any]:
    """Each stage's peak device memory under each offload mode, and which modes fit `memory` ("24GB", "24GiB";
    default: the planned device's free memory, unknown for a GPU that is not here), as JSON (render.plan.summary).
    `model`: a folder, or a released model's name or hub id (its configs shipped with hyv: no download). No device
    in `flags`: PLAN_DEVICE. `sr_model`: the super-resolution models of --sr (default: the model's own)."""
    from render.families import resolve_model
    from render.plan import free_memory, summary

    free = parse_size(memory, "--memory") if memory is not None else None  # a bad size before any work
    ref = model if isinstance(model, ModelRef) else resolve_model(model, configs_only=True)
    engine = LocalEngine(ref, variant=variant, sr_model=sr_model)
    flags = flags or Flags()
    if flags.device is None:
        flags = replace(flags, device=PLAN_DEVICE)
    plan = engine.plan(engine.settings(flags))
    if free is None:
        free = free_memory("cuda" if any(s.device == "cuda" for s in plan.stages) else "cpu")
    return {"model": ref.source, **summary(plan, free)}
