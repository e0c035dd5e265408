"""Step caches by name: `--cache none | fbcache[:T] | teacache[:T] | magcache[:T] | taylorseer[:N] | fastercache |
pab` (render.core.cachespec) becomes the diffusers hook config (TeaCache: hyv's own, render.sampling.teacache)
applied to the DiT.

A threshold left out comes from the model's calibration (`hyv calibrate` writes it into hyv.json for a chosen
quality, e.g. `--cache-quality 30db`), else the published default. MagCache needs the per-step magnitude ratios
of the model, which only a calibration gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from render.core.cachespec import DEFAULT_THRESHOLDS, CacheSpec
from render.core.errors import SettingsError
from render.model.family import Family


def config_for(
    spec: CacheSpec, steps: int, calibration: Mapping[str, Any], clock: Callable[[], int], family: Family
) -> Any | None:
    """The hook config of a resolved spec (None for "none"). `clock` returns the timestep being computed."""
    import diffusers

    from render.sampling.teacache import TeaCacheConfig

    if spec.kind == "none":
        return None
    value = spec.value if spec.value is not None else DEFAULT_THRESHOLDS.get(spec.kind, 0.0)
    if spec.kind == "fbcache":
        return diffusers.FirstBlockCacheConfig(threshold=value)
    if spec.kind == "teacache":
        coefficients = calibration.get("teacache_coefficients") or family.teacache().coefficients
        return TeaCacheConfig(tuple(coefficients), threshold=value)
    if spec.kind == "magcache":
        ratios = calibration.get("magcache_ratios")
        if not ratios:
            raise SettingsError("magcache needs the model's magnitude ratios: run `hyv calibrate --model DIR` first")
        ratios = _resample(ratios, steps)
        return diffusers.MagCacheConfig(threshold=value, num_inference_steps=steps, mag_ratios=ratios)
    if spec.kind == "taylorseer":
        import torch

        return diffusers.TaylorSeerCacheConfig(cache_interval=int(value), taylor_factors_dtype=torch.float32)
    if spec.kind == "fastercache":
        return diffusers.FasterCacheConfig(
            current_timestep_callback=clock, is_guidance_distilled=family.embedded_guidance, tensor_format="BCFHW"
        )
    return diffusers.PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, current_timestep_callback=clock
    )


def _resample(ratios: list[float], steps: int) -> list[float]:
    """Magnitude ratios calibrated for another number of steps, linearly resampled to `steps`."""
    import numpy as np

    if len(ratios) == steps:
        return list(ratios)
    x = np.linspace(0.0, 1.0, len(ratios))
    return [float(v) for v in np.interp(np.linspace(0.0, 1.0, steps), x, ratios)]


def apply(transformer: Any, config: Any, family: Family) -> None:
    from render.sampling.teacache import TeaCacheConfig, apply_teacache

    if isinstance(config, TeaCacheConfig):
        apply_teacache(transformer, config, family.teacache())
    else:
        transformer.enable_cache(config)


def remove(transformer: Any, config: Any) -> None:
    from render.sampling.teacache import TeaCacheConfig, remove_teacache

    if isinstance(config, TeaCacheConfig):
        remove_teacache(transformer)
    else:
        transformer.disable_cache()
