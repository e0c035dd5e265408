"""Step caches by name: the `--cache KIND[:VALUE]` spec, parsed and checked, and its threshold filled in from
a model's calibration (`hyv calibrate`) for a chosen quality, else the published default. The hooks themselves are
applied by `render.sampling.caches`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from render.core.errors import SettingsError

CACHE_KINDS = ("none", "fbcache", "teacache", "magcache", "taylorseer", "fastercache", "pab")
DEFAULT_QUALITY = "30db"  # the calibrated threshold used when no --cache-quality is given
DEFAULT_THRESHOLDS = {"fbcache": 0.05, "teacache": 0.15, "magcache": 0.06, "taylorseer": 5.0}


@dataclass(frozen=True)
class CacheSpec:
    kind: str = "none"
    value: float | None = None  # a threshold (taylorseer: the cache interval, in steps)

    @classmethod
    def parse(cls, text: str) -> CacheSpec:
        kind, _, value = text.strip().lower().partition(":")
        if kind not in CACHE_KINDS:
            raise SettingsError(f"unknown cache {kind!r}; use one of {', '.join(CACHE_KINDS)} (e.g. teacache:0.15)")
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
