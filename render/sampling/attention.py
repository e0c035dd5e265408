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

import functools
from typing import Any

from render.core.errors import SettingsError

CHOICES = ("auto", "masked", "native", "flash", "flash_varlen", "sage", "sage_varlen", "flex", "_native_cudnn")
# `auto` tries these in order where they are installed (they all take inputs without a mask).
_AUTO_CUDA = ("sage", "flash", "_native_cudnn", "native")


_NEEDS = {"flash": "flash_attn", "flash_varlen": "flash_attn", "sage": "sageattention", "sage_varlen": "sageattention"}
_CUDA_ONLY = ("flash", "flash_varlen", "sage", "sage_varlen", "_native_cudnn")


def resolve(choice: str, device: str) -> str:
    """The kernel `choice` means on `device` ("auto": the fastest installed one), checked before anything loads:
    an unavailable choice is a one-line SettingsError."""
    import importlib.util

    from render.core.settings import Placement
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


def trim_padding(cond: dict[str, Any], mask_key: str, tokens_key: str) -> dict[str, Any]:
    """Conditioning of one video [1, L, D] / mask [1, L] cut to the tokens the mask keeps (padding is at the end:
    the tokenizer pads on the right)."""
    mask = cond[mask_key]
    if mask.shape[0] != 1:
        return cond
    n = max(1, int(mask.sum()))
    return {**cond, tokens_key: cond[tokens_key][:, :n], mask_key: mask[:, :n]}


class _Padding:
    """Whether the DiT's current forward has padded text tokens; set once per forward, outside the blocks (a
    compiled block then reads a Python flag instead of a tensor: no graph break, one guard)."""

    def __init__(self) -> None:
        self.none = False

    def see(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("encoder_attention_mask")
        self.none = mask is not None and bool(mask.all())


def hyv_processor(padding: _Padding) -> Any:
    """hyv's attention processor for one of the DiT's blocks (all of them share `padding`)."""
    return _processor_class()(padding)


@functools.cache
def _processor_class() -> Any:
    """HunyuanVideo's attention processor, with two changes to how it feeds the kernel (the arithmetic is
    diffusers'; tests/test_speed.py checks the result against its processor):
    - no mask when no text token is padding (the mask the DiT builds is then all True);
    - with `heads_first` (PyTorch's own kernel on a CPU, no context parallel): q, k and v are laid out [B, H, S, D] in
      memory while they are concatenated (a copy diffusers makes anyway), so the kernel reads each head's rows
      contiguously; diffusers hands it [B, S, H, D] views (on one CPU the kernel ran 15% slower on those, on
      another 1% of a forward is gained: docs/speed.md).
    """
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.embeddings import apply_rotary_emb
    from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoAttnProcessor2_0

    class HyvProcessor(HunyuanVideoAttnProcessor2_0):  # type: ignore[misc]
        heads_first = False

        def __init__(self, padding: _Padding) -> None:
            super().__init__()
            self.padding = padding

        def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                     attention_mask: Any = None, image_rotary_emb: Any = None) -> Any:  # fmt: skip
            if self.padding.none:
                attention_mask = None
            on_cpu = hidden_states.device.type == "cpu"
            if not (self.heads_first and on_cpu) or self._parallel_config is not None or image_rotary_emb is None:
                return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
            return self._heads_first(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)

        def _heads_first(self, attn: Any, x: Any, ctx: Any, mask: Any, rope: Any) -> Any:
            # x: [B, Si, W] image tokens (a single block: image and text, [B, Si + St, W]); ctx: [B, St, W]
            joint = attn.add_q_proj is None and ctx is not None  # a single-stream block
            if joint:
                x = torch.cat([x, ctx], 1)
            n_txt = ctx.shape[1] if joint else 0

            def heads(t: Any, norm: Any) -> Any:  # [B, S, W] -> [B, S, H, D], normed
                t = t.unflatten(2, (attn.heads, -1))
                return norm(t) if norm is not None else t

            def rotated(t: Any) -> Any:  # RoPE on the image tokens only
                img = apply_rotary_emb(t[:, : t.shape[1] - n_txt], rope, sequence_dim=1)
                return [img, t[:, t.shape[1] - n_txt :]] if n_txt else [img]

            qs = rotated(heads(attn.to_q(x), attn.norm_q))
            ks = rotated(heads(attn.to_k(x), attn.norm_k))
            vs = [heads(attn.to_v(x), None)]
            if not joint and ctx is not None:  # a double-stream block: the text's own projections
                qs.append(heads(attn.add_q_proj(ctx), attn.norm_added_q))
                ks.append(heads(attn.add_k_proj(ctx), attn.norm_added_k))
                vs.append(heads(attn.add_v_proj(ctx), None))
            # [B, S, H, D] parts -> one [B, H, S, D] tensor, handed on as its [B, S, H, D] view
            q, k, v = (torch.cat([t.transpose(1, 2) for t in p], 2).transpose(1, 2) for p in (qs, ks, vs))
            out = dispatch_attention_fn(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                        backend=self._attention_backend, parallel_config=None)  # fmt: skip
            out = out.flatten(2, 3).to(q.dtype)  # [B, S, H * D]
            if ctx is None:
                return out, None
            n = ctx.shape[1]
            img, txt = out[:, : out.shape[1] - n], out[:, out.shape[1] - n :]
            if getattr(attn, "to_out", None) is not None:
                img = attn.to_out[1](attn.to_out[0](img))
            if getattr(attn, "to_add_out", None) is not None:
                txt = attn.to_add_out(txt)
            return img, txt

    return HyvProcessor


def install_processors(transformer: Any) -> None:
    """Give the DiT's attention hyv's processor (done once, when the DiT loads: until `set_backend` says
    otherwise it computes what diffusers' does, and the mask-free path only starts once the padding is dropped)."""
    padding = _Padding()
    transformer.register_forward_pre_hook(padding.see, with_kwargs=True)
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        block.attn.set_processor(hyv_processor(padding))


def set_backend(transformer: Any, name: str) -> None:
    """Route the DiT's attention to a resolved kernel (`resolve`); "masked" is diffusers' native one, computed
    as diffusers does."""
    try:
        _set_backend(transformer, "native" if name == "masked" else name)
    except (RuntimeError, ValueError, ImportError) as exc:
        raise SettingsError(f"attention {name} is not available here ({' '.join(str(exc).split())[:160]})") from None
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
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
