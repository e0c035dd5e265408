"""A frame strip of a video (a few frames side by side, nearest-neighbour upscaled) for the docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def strip_image(frames: np.ndarray, n: int = 6, scale: int = 3, gap: int = 4) -> np.ndarray:
    """frames uint8 [F, H, W, 3] -> uint8 [H*scale, n*(W*scale+gap)-gap, 3] of n evenly spaced frames."""
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    big = [frames[i].repeat(scale, 0).repeat(scale, 1) for i in idx]  # each [H*s, W*s, 3]
    h, w = big[0].shape[:2]
    out = np.full((h, n * (w + gap) - gap, 3), 255, np.uint8)
    for k, b in enumerate(big):
        out[:, k * (w + gap) : k * (w + gap) + w] = b
    return out


def write_strip(video: Path, out: Path, caption: str = "", n: int = 6, scale: int = 3) -> Path:
    """Write a PNG strip of `video` (an mp4) to `out`."""
    from PIL import Image

    from render.files.video import read_mp4

    frames, _ = read_mp4(video)
    img = strip_image(frames, n, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = None
    if caption:
        from PIL.PngImagePlugin import PngInfo

        meta = PngInfo()
        meta.add_text("Description", caption)
    Image.fromarray(img).save(out, pnginfo=meta)
    return out
