"""Attention without the padding: the DiT sees only the text tokens a prompt uses, and no mask.

diffusers' HunyuanVideo DiT always builds a padding mask over its 256 text tokens (a prompt uses ~20-100), which
rules out the mask-free kernels (flash, sage, cuDNN, PyTorch's CPU flash path) and costs on every step. For one
video at a time, hyv cuts the padded tokens off the conditioning before the DiT (`trim_padding`: what the mask
would have hidden anyway) and gives its attention processors a mask that is all True, which hyv's processor
drops. The result equals the masked computation up to float rounding (tests/test_speed.py checks it against
diffusers' pipeline).

`--attention` chooses the kernel through diffusers' attention dispatch; `auto` takes the fastest one installed
that the inputs allow.
"""

from __future__ import annotations

from typing import Any

from render.core.errors import SettingsError
from render.core.settings import ATTENTION_CHOICES as CHOICES
from render.core.settings import Placement
from render.model.family import Family

# `auto` tries these in order where they are installed (they all take inputs without a mask).
_AUTO_CUDA = ("sage", "flash", "_native_cudnn", "native")


_NEEDS = {"flash": "flash_attn", "flash_varlen": "flash_attn", "sage": "sageattention", "sage_varlen": "sageattention"}
_CUDA_ONLY = ("flash", "flash_varlen", "sage", "sage_varlen", "_native_cudnn")


def resolve(choice: str, device: str) -> str:
    """The kernel `choice` means on `device` ("auto": the fastest installed one), checked before anything loads:
    an unavailable choice is a one-line SettingsError."""
    import importlib.util

    from render.model.loading import resolve_placement

    if choice not in CHOICES:
        raise SettingsError(f"unknown attention {choice!r}; use one of {', '.join(CHOICES)}")
    dev, _ = resolve_placement(Placement(device=device), "render")
    installed = [n for n in _AUTO_CUDA if n not in _NEEDS or importlib.util.find_spec(_NEEDS[n]) is not None]
    if choice == "auto":
        return installed[0] if dev.type == "cuda" else "native"
    if choice in _CUDA_ONLY and dev.type != "cuda":
        raise SettingsError(f"attention {choice} needs a CUDA GPU; on {dev.type} use --attention native")
    if choice in _NEEDS and importlib.util.find_spec(_NEEDS[choice]) is None:
        raise SettingsError(f"attention {choice} needs the {_NEEDS[choice]} package; try --attention native")
    return choice


def trim_padding(cond: dict[str, Any], tokens_key: str, mask_key: str, keep: int = 1) -> dict[str, Any]:
    """Conditioning of one video [1, L, D] / mask [1, L] cut to the tokens the mask keeps (padding is at the end:
    the tokenizer pads on the right), at least `keep` of them."""
    mask = cond[mask_key]
    if mask.shape[0] != 1:
        return cond
    n = max(keep, int(mask.sum()))
    return {**cond, tokens_key: cond[tokens_key][:, :n], mask_key: mask[:, :n]}


class Padding:
    """Whether the DiT's current forward has padded text tokens; set once per forward, outside the blocks (a
    compiled block then reads a Python flag instead of a tensor: no graph break, one guard). `mask_keys`: the
    forward's keyword arguments holding the text masks (a family's `text_streams`)."""

    def __init__(self, mask_keys: tuple[str, ...]) -> None:
        self.mask_keys = mask_keys
        self.none = False

    def see(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        masks = [kwargs.get(k) for k in self.mask_keys]
        self.none = all(m is not None and bool(m.all()) for m in masks)


def install_processors(transformer: Any, family: Family) -> None:
    """Give the DiT's attention blocks the family's processor (done once, when the DiT loads: until `set_backend`
    says otherwise it computes what diffusers' does, and the mask-free path only starts once the padding is
    dropped)."""
    padding = Padding(tuple(mask for _, mask in family.text_streams))
    transformer.register_forward_pre_hook(padding.see, with_kwargs=True)
    for block in family.attention_blocks(transformer):
        block.attn.set_processor(family.processor(padding))


def set_backend(transformer: Any, name: str, family: Family) -> None:
    """Route the DiT's attention to a resolved kernel (`resolve`); "masked" is diffusers' native one, computed
    as diffusers does."""
    try:
        _set_backend(transformer, "native" if name == "masked" else name)
    except (RuntimeError, ValueError, ImportError) as exc:
        raise SettingsError(f"attention {name} is not available here ({' '.join(str(exc).split())[:160]})") from None
    for block in family.attention_blocks(transformer):
        block.attn.processor.heads_first = name == "native"


def _set_backend(transformer: Any, name: str) -> None:
    import logging

    quiet = logging.getLogger("diffusers.models.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "Attention backends are an experimental feature": said on every call
    try:
        transformer.set_attention_backend(name)
    finally:
        quiet.setLevel(level)
