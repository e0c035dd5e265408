"""A batch over many devices: `Engine.run(..., gpus=N)` (local worker processes, render.scale.workers) or
`Engine.run(..., ray=ADDRESS)` (a Ray cluster, render.scale.raycluster). Each device renders whole videos of its own:
no communication but the shared work directory and embedding cache (docs/scaling.md compares this with context
parallel, which splits one video)."""

from __future__ import annotations

from render.core.errors import UsageError
from render.core.items import Report
from render.run.local import LocalEngine
from render.run.spec import RunRequest


def _check_upscale(engine: LocalEngine, req: RunRequest) -> None:
    """With --sr: the SR model and every item's size checked here, before any worker or node starts."""
    from render.core.errors import SettingsError
    from render.run.upscaling import check_upscale

    sizes = []
    for item in req.items:
        try:
            s = req.settings.render.with_overrides(item.overrides)
        except SettingsError:
            continue  # the item fails on its own, as in one process
        sizes.append((s.height, s.width))
    check_upscale(engine, sizes, req.settings)


def run_scaled(engine: LocalEngine, req: RunRequest, *, gpus: int | None, ray: str | None) -> Report:
    if engine.parallel is not None:
        raise UsageError(
            "--parallel splits one video over torchrun's ranks; --gpus and --ray give each device videos of its "
            "own: use one or the other"
        )
    if gpus is not None and ray is not None:
        raise UsageError("--gpus runs local worker processes, --ray a Ray cluster: use one or the other")
    _check_upscale(engine, req)
    if ray is not None:
        from render.scale.raycluster import run_on_ray

        return run_on_ray(engine, req, ray)
    assert gpus is not None
    if gpus < 1:
        raise UsageError(f"--gpus must be at least 1, got {gpus}")
    from render.scale.workers import run_workers

    return run_workers(engine, req, gpus)
