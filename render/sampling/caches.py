"""Step caches by name: `--cache none | fbcache[:T] | teacache[:T] | magcache[:T] | taylorseer[:N] | fastercache |
pab` becomes the diffusers hook config (TeaCache: hyv's own, render/teacache.py) applied to the DiT.

A threshold left out comes from the model's calibration (`hyv calibrate` writes it into hyv.json for a chosen
quality, e.g. `--cache-quality 30db`), else the published default. MagCache needs the per-step magnitude ratios
of the model, which only a calibration gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from render.core.errors import SettingsError

KINDS = ("none", "fbcache", "teacache", "magcache", "taylorseer", "fastercache", "pab")
DEFAULT_QUALITY = "30db"  # the calibrated threshold used when no --cache-quality is given
DEFAULT_THRESHOLDS = {"fbcache": 0.05, "teacache": 0.15, "magcache": 0.06, "taylorseer": 5.0}


@dataclass(frozen=True)
class CacheSpec:
    kind: str = "none"
    value: float | None = None  # a threshold (taylorseer: the cache interval, in steps)

    @classmethod
    def parse(cls, text: str) -> CacheSpec:
        kind, _, value = text.strip().lower().partition(":")
        if kind not in KINDS:
            raise SettingsError(f"unknown cache {kind!r}; use one of {', '.join(KINDS)} (e.g. teacache:0.15)")
        if not value:
            return cls(kind)
        if kind in ("none", "fastercache", "pab"):
            raise SettingsError(f"cache {kind} takes no value, got {text!r}")
        try:
            v = float(value)
        except ValueError:
            raise SettingsError(f"cache {text!r}: the value after ':' must be a number") from None
        if not v >= 0 or v != v or v == float("inf"):
            raise SettingsError(f"cache {text!r}: the value must be a finite number >= 0")
        if kind == "taylorseer" and (v < 1 or v != int(v)):
            raise SettingsError(f"cache {text!r}: taylorseer takes a whole number of steps >= 1")
        return cls(kind, v)

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def resolve(spec: CacheSpec, calibration: Mapping[str, Any], quality: str | None) -> CacheSpec:
    """The spec with its value filled in: given, else calibrated for `quality` (e.g. "30db"), else default."""
    if spec.kind == "none" or spec.value is not None or spec.kind in ("fastercache", "pab"):
        return spec
    chosen = calibration.get("choices", {}).get(spec.kind, {})
    if quality is not None:
        quality = f"{float(quality.strip().lower().removesuffix('db')):g}db"
        if quality not in chosen:
            have = ", ".join(sorted(chosen)) or "none: run `hyv calibrate`"
            raise SettingsError(f"no {spec.kind} threshold calibrated for quality {quality} (calibrated: {have})")
        return CacheSpec(spec.kind, float(chosen[quality]))
    if chosen:  # 30 dB when calibrated, else the best quality that was reached
        best = DEFAULT_QUALITY if DEFAULT_QUALITY in chosen else max(chosen, key=lambda q: float(q[:-2]))
        return CacheSpec(spec.kind, float(chosen[best]))
    return CacheSpec(spec.kind, DEFAULT_THRESHOLDS.get(spec.kind))


def config_for(
    spec: CacheSpec, steps: int, calibration: Mapping[str, Any], clock: Callable[[], int]
) -> Any | None:
    """The hook config of a resolved spec (None for "none"). `clock` returns the timestep being computed."""
    import diffusers

    from render.sampling.teacache import HUNYUAN_VIDEO_COEFFICIENTS, TeaCacheConfig

    if spec.kind == "none":
        return None
    value = spec.value if spec.value is not None else DEFAULT_THRESHOLDS.get(spec.kind, 0.0)
    if spec.kind == "fbcache":
        return diffusers.FirstBlockCacheConfig(threshold=value)
    if spec.kind == "teacache":
        coefficients = tuple(calibration.get("teacache_coefficients", HUNYUAN_VIDEO_COEFFICIENTS))
        return TeaCacheConfig(threshold=value, coefficients=coefficients)
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
            current_timestep_callback=clock, is_guidance_distilled=True, tensor_format="BCFHW"
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


def apply(transformer: Any, config: Any) -> None:
    from render.sampling.teacache import TeaCacheConfig, apply_teacache

    if isinstance(config, TeaCacheConfig):
        apply_teacache(transformer, config)
    else:
        transformer.enable_cache(config)


def remove(transformer: Any, config: Any) -> None:
    from render.sampling.teacache import TeaCacheConfig, remove_teacache

    if isinstance(config, TeaCacheConfig):
        remove_teacache(transformer)
    else:
        transformer.disable_cache()
