"""HunyuanVideo 1.5's sizes: the buckets of a target size (Tencent's `generate_crop_size_list`, copied into
diffusers' HunyuanVideo15ImageProcessor), the bucket nearest an aspect ratio (`get_closest_ratio`), and the --size
presets (480p: target 640, 720p: target 960) with their aspects, as Tencent's `--aspect_ratio W:H` picks them."""

from __future__ import annotations

import functools
from types import MappingProxyType

TARGETS = MappingProxyType({"480p": 640, "720p": 960})
ASPECTS = ("16:9", "9:16", "4:3", "3:4", "1:1")  # width:height, as Tencent's --aspect_ratio
PATCH = 16  # bucket sides are multiples of the VAE's 16x compression


@functools.lru_cache(maxsize=16)
def crop_sizes(target: int, patch: int = PATCH, max_ratio: float = 4.0) -> tuple[tuple[int, int], ...]:
    """Every (a, b) of about target^2 pixels, sides multiples of `patch`, ratio at most `max_ratio` (computed once
    per target: thousands of steps, at import time for the presets)."""
    num_patches = round((target / patch) ** 2)
    sizes: list[tuple[int, int]] = []
    wp, hp = num_patches, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= max_ratio:
            sizes.append((wp * patch, hp * patch))
        if (hp + 1) * wp <= num_patches:
            hp += 1
        else:
            wp -= 1
    return tuple(sizes)


def bucket(height: float, width: float, target: int, patch: int = PATCH) -> tuple[int, int]:
    """(H, W) of the bucket nearest the ratio height/width (as diffusers' `calculate_default_height_width`: for a
    landscape ratio only buckets at least as tall qualify, for portrait or square only those at most as tall)."""
    sizes = crop_sizes(target, patch)
    ratios = [round(h / w, 5) for h, w in sizes]
    aspect = float(height) / float(width)
    diffs = [(i, r - aspect) for i, r in enumerate(ratios)]
    eligible = [(i, d) for i, d in diffs if (d <= 0 if aspect >= 1 else d >= 0)]
    best = min(eligible, key=lambda pair: abs(pair[1]))[0]
    return sizes[best]


def presets() -> dict[str, dict[str, tuple[int, int]]]:
    """{"480p": {"16:9": (480, 848), ...}, "720p": {...}}: (height, width) per size and W:H aspect."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for name, target in TARGETS.items():
        out[name] = {}
        for aspect in ASPECTS:
            w, h = (int(x) for x in aspect.split(":"))
            out[name][aspect] = bucket(h, w, target)
    return out
