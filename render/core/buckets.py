"""Tencent's size buckets (`generate_crop_size_list` of HunyuanVideo and 1.5, copied into diffusers'
HunyuanVideo15ImageProcessor): every (a, b) of about target^2 pixels whose sides are multiples of a patch."""

from __future__ import annotations

import functools
from collections.abc import Sequence


@functools.lru_cache(maxsize=16)
def crop_sizes(target: int, patch: int, max_ratio: float = 4.0) -> tuple[tuple[int, int], ...]:
    """Every (a, b) of about target^2 pixels, sides multiples of `patch`, ratio at most `max_ratio` (computed once
    per target: thousands of steps)."""
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


def nearest(height: float, width: float, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (H, W) of `sizes` whose ratio H/W (rounded to 5 places) is nearest height/width (Tencent's
    `get_closest_ratio`: the first of equals)."""
    aspect = float(height) / float(width)
    return min(sizes, key=lambda hw: abs(round(hw[0] / hw[1], 5) - aspect))
