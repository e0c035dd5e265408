"""Getting the DiT ready for a render's speed settings: the attention kernel (and the padding it is spared), the
step cache, regional compilation. Applied to the loaded DiT before each render, changed only when a render asks
for something else, so a warm engine serves renders with different settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from render.core.cachespec import CacheSpec
from render.core.cachespec import resolve as resolve_cache
from render.core.errors import SettingsError
from render.core.settings import RenderSettings
from render.model.family import Family
from render.model.loading import Loaded


@dataclass
class DiTState:
    """What was last applied to a loaded DiT."""

    attention: str | None = None
    cache: tuple[str, int] | None = None  # (spec, steps)
    cache_config: Any = None
    compiled: bool = False


def concrete(
    s: RenderSettings, calibration: Mapping[str, Any], family: Family, *, engine_cache: bool, parallel: bool
) -> RenderSettings:
    """`s` with its cache threshold filled in (given, calibrated for its quality, or the default) and its
    attention resolved to the kernel that will run, so that the render key names what is computed.
    `engine_cache`: a cache config was given to the engine itself; `parallel`: a context-parallel job."""
    from render.sampling.attention import resolve

    spec = CacheSpec.parse(s.cache)
    kinds = family.cache_kinds
    if kinds is not None and spec.kind not in kinds:
        raise SettingsError(
            f"--cache {spec.kind} is not available for {family.name} (diffusers' hook does not fit its DiT); "
            f"use one of {', '.join(kinds)}"
        )
    if spec.kind != "none" and (engine_cache or parallel):
        why = "a cache given to Engine(cache=)" if engine_cache else "--parallel (ranks would skip apart)"
        raise SettingsError(f"--cache {s.cache} does not go with {why}")
    spec = resolve_cache(spec, calibration, s.cache_quality)
    if spec.kind == "magcache" and not calibration.get("magcache_ratios"):
        raise SettingsError("magcache needs the model's magnitude ratios: run `hyv calibrate --model DIR` first")
    return replace(s, cache=str(spec), cache_quality=None, attention=resolve(s.attention, s.placement.device))


def prepare(
    dit: Loaded, s: RenderSettings, family: Family, calibration: Mapping[str, Any], clock: Callable[[], int]
) -> None:
    """Apply `s`'s attention, step cache and compilation to the loaded DiT (concrete settings)."""
    from render.sampling import attention, caches

    module, state = dit.module, dit.state
    if state.attention != s.attention:
        attention.set_backend(module, s.attention, family)
        state.attention = s.attention
    wanted = (s.cache, s.steps)
    if state.cache != wanted:
        if state.cache_config is not None:
            caches.remove(module, state.cache_config)
        config = caches.config_for(CacheSpec.parse(s.cache), s.steps, calibration, clock, family)
        if config is not None:
            caches.apply(module, config, family)
        state.cache, state.cache_config = wanted, config
    if s.compile and not state.compiled:
        module.compile_repeated_blocks(fullgraph=True, dynamic=True)  # dynamic: prompts differ in length
        state.compiled = True
