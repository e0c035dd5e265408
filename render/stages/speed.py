"""Getting the DiT ready for a render's speed settings: the attention kernel (and the padding it is spared), the
step cache, regional compilation. Applied to the loaded DiT before each render, changed only when a render asks
for something else, so a warm engine serves renders with different settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from render.core.errors import SettingsError
from render.sampling.caches import CacheSpec

if TYPE_CHECKING:
    from render.core.settings import RenderSettings
    from render.engine import Engine
    from render.run.models import Loaded


@dataclass
class DiTState:
    """What was last applied to a loaded DiT."""

    attention: str | None = None
    cache: tuple[str, int] | None = None  # (spec, steps)
    cache_config: Any = None
    compiled: bool = False


def calibration(engine: Engine) -> dict[str, Any]:
    """The model's calibration from its hyv.json (`hyv calibrate`), or {}."""
    import json

    p = engine.model.path / "hyv.json"
    try:
        found = json.loads(p.read_text()).get("calibration", {}) if p.is_file() else {}
    except (OSError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def concrete(engine: Engine, s: RenderSettings) -> RenderSettings:
    """`s` with its cache threshold filled in (given, calibrated for its quality, or the default) and its
    attention resolved to the kernel that will run, so that the render key names what is computed."""
    from render.sampling.attention import resolve
    from render.sampling.caches import resolve as resolve_cache

    spec = CacheSpec.parse(s.cache)
    if spec.kind != "none" and (engine.cache is not None or engine.parallel is not None):
        why = "--parallel (ranks would skip apart)" if engine.cache is None else "a cache given to Engine(cache=)"
        raise SettingsError(f"--cache {s.cache} does not go with {why}")
    spec = resolve_cache(spec, calibration(engine), s.cache_quality)
    if spec.kind == "magcache" and not calibration(engine).get("magcache_ratios"):
        raise SettingsError("magcache needs the model's magnitude ratios: run `hyv calibrate --model DIR` first")
    return replace(s, cache=str(spec), cache_quality=None, attention=resolve(s.attention, s.placement.device))


def prepare(engine: Engine, dit: Loaded, s: RenderSettings, state: DiTState) -> None:
    """Apply `s`'s attention, step cache and compilation to the loaded DiT (concrete settings)."""
    from render.sampling import attention, caches

    module = dit.module
    if state.attention != s.attention:
        attention.set_backend(module, s.attention)
        state.attention = s.attention
    wanted = (s.cache, s.steps)
    if state.cache != wanted:
        if state.cache_config is not None:
            caches.remove(module, state.cache_config)
        config = caches.config_for(CacheSpec.parse(s.cache), s.steps, calibration(engine), lambda: int(engine.clock))
        if config is not None:
            caches.apply(module, config)
        state.cache, state.cache_config = wanted, config
    if s.compile and not state.compiled:
        module.compile_repeated_blocks(fullgraph=True, dynamic=True)  # dynamic: prompts differ in length
        state.compiled = True


def trim(engine: Engine, cond: dict[str, Any], s: RenderSettings) -> dict[str, Any]:
    """The conditioning cut to the text tokens in use (render.sampling.attention), unless diffusers' masked path is
    asked
    for."""
    from render.sampling.attention import trim_padding

    if s.attention == "masked" or engine.family.mask_key is None or engine.family.tokens_key is None:
        return cond
    return trim_padding(cond, engine.family.mask_key, engine.family.tokens_key)
