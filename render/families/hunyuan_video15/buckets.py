"""HunyuanVideo 1.5's sizes: the buckets of a target size (Tencent's `generate_crop_size_list`, copied into
diffusers' HunyuanVideo15ImageProcessor), the bucket nearest an aspect ratio (`get_closest_ratio`), and the --size
presets (480p: target 640, 720p: target 960) with their aspects, as Tencent's `--aspect_ratio W:H` picks them."""

from __future__ import annotations

from types import MappingProxyType

from render.core.buckets import crop_sizes

TARGETS = MappingProxyType({"480p": 640, "720p": 960})
ASPECTS = ("16:9", "9:16", "4:3", "3:4", "1:1")  # width:height, as Tencent's --aspect_ratio
PATCH = 16  # bucket sides are multiples of the VAE's 16x compression


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


def sr_bucket(height: int, width: int, lr_target: int, hr_target: int, patch: int = PATCH) -> tuple[int, int] | None:
    """(H, W) of the high-resolution bucket a base video of height x width goes to (Tencent's SR `BucketMap`): the
    base size must be one of the buckets of `lr_target`; its bucket at `hr_target` is the one whose W/H ratio is
    nearest (the first of equals, as numpy's argmin). None when the base size is no bucket."""
    if (width, height) not in crop_sizes(lr_target, patch):
        return None
    hr = crop_sizes(hr_target, patch)
    ratio = float(width) / float(height)
    ratios = [float(w) / float(h) for w, h in hr]
    best = min(range(len(hr)), key=lambda i: abs(ratios[i] - ratio))
    w, h = hr[best]
    return h, w
