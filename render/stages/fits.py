"""Refusing impossible work before anything loads: a lower bound of the memory one video's render needs, from
the shapes alone (the latents and one block's activations; not the weights, which offloading can keep off the
device), against the memory of the device it would run on. A bound, not a plan: work that passes may still not
fit (`hyv plan` says what will).
"""

from __future__ import annotations

import os

from render.core.errors import SettingsError
from render.core.placement import dtype_name
from render.core.settings import RenderSettings
from render.stages.render import DiTInfo

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GB = 1e9


def render_floor_bytes(info: DiTInfo, s: RenderSettings, text_len: int) -> tuple[float, int]:
    """(bytes, video tokens): what rendering one video of `s` needs at least."""
    cfg = info.config
    _, c, t, h, w = info.latent_shape(s)
    p, pt = int(cfg.get("patch_size", 2)), int(cfg.get("patch_size_t", 1))
    tokens = (t // pt) * (h // p) * (w // p)
    width = int(cfg.get("num_attention_heads", 24)) * int(cfg.get("attention_head_dim", 128))
    elem = _BYTES[dtype_name(s.placement, "render")]
    latents = 3 * c * t * h * w * 4  # the latents, the step's output and the x0 preview, fp32
    activations = (tokens + text_len) * width * 10 * elem  # a block's q, k, v, attention out, MLP (4x): ~10 widths
    return latents + activations, tokens


def device_bytes(device: str) -> tuple[str, float]:
    """(the device's name, its memory in bytes): a GPU's total memory, or the machine's RAM for the CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index}", float(torch.cuda.get_device_properties(index).total_memory)
    return "cpu", float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_fits(info: DiTInfo, s: RenderSettings, text_len: int) -> None:
    """A SettingsError (exit 2, before anything loads) when one video of `s` cannot fit its device at all."""
    need, tokens = render_floor_bytes(info, s, text_len)
    name, have = device_bytes(s.placement.device)
    if need > have:
        raise SettingsError(
            f"{s.frames} frames of {s.height}x{s.width} are {tokens:,} video tokens: rendering needs at least "
            f"{need / GB:.1f} GB, more than the {have / GB:.1f} GB of {name}; use fewer frames or a smaller size"
        )
