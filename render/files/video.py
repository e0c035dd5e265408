"""Writing frames: H.264 mp4 through the ffmpeg binary imageio-ffmpeg ships, or a folder of PNG frames.

The writers write where they are told; the caller makes it atomic (render.stages.decode writes to a temporary name, then
the manifest, then renames the video).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 17) -> Path:
    """frames: uint8 [F, H, W, 3]. H.264, yuv420p (plays everywhere)."""
    import imageio_ffmpeg

    n, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path


def write_png_folder(path: Path, frames: np.ndarray) -> Path:
    """frames: uint8 [F, H, W, 3] -> path/00000.png ... (lossless)."""
    from PIL import Image

    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"{i:05d}.png")
    return path


def read_mp4(path: Path) -> tuple[np.ndarray, float]:
    """(frames uint8 [F, H, W, 3], fps) — for checks and evaluators."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames), float(meta["fps"])
