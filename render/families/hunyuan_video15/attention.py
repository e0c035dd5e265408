"""HunyuanVideo 1.5's DiT as hyv runs it: the attention processor of its 54 blocks and its context-parallel plan.

diffusers' `HunyuanVideo15AttnProcessor2_0` builds a dense [B, 1, S, S] boolean mask in every block call (S = video
tokens + 729 + 256 + 1000 text tokens: 2 x 12.9 GB at 720p x 121 frames) even when no token is padding. hyv drops
the padding of both text streams (and the zero image tokens of text-to-video) before the DiT, so the mask would be
all True: hyv's processor then builds none and calls the kernel without one (which also lets the mask-free kernels
run: flash, sage, cuDNN, PyTorch's CPU flash path). With padding (`--attention masked`) it is diffusers' processor.
"""

from __future__ import annotations

import functools
from typing import Any

from render.sampling.attention import Padding


def attention_blocks(transformer: Any) -> list[Any]:
    """The dual-stream blocks (the token refiner's attention is left alone: 2 layers over the text tokens)."""
    return list(transformer.transformer_blocks)


def processor(padding: Padding) -> Any:
    return _processor_class()(padding)


@functools.cache
def _processor_class() -> Any:
    """HunyuanVideo 1.5's attention processor without the dense mask when no text token is padding (the arithmetic
    is diffusers'; tests compare the DiT's output with its processor's)."""
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.embeddings import apply_rotary_emb
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15AttnProcessor2_0

    class HyvProcessor15(HunyuanVideo15AttnProcessor2_0):  # type: ignore[misc]
        heads_first = False  # (the v1 layout trick; not used here)

        def __init__(self, padding: Padding) -> None:
            super().__init__()
            self.padding = padding

        def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                     attention_mask: Any = None, image_rotary_emb: Any = None) -> Any:  # fmt: skip
            if not self.padding.none:
                return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
            # x: [B, Sv, W] video tokens; ctx: [B, St, W] text (and image) tokens, none of them padding
            q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (attn.to_q(hidden_states),
                       attn.to_k(hidden_states), attn.to_v(hidden_states)))  # fmt: skip
            q, k = attn.norm_q(q), attn.norm_k(k)
            if image_rotary_emb is not None:
                q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
                k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
            if encoder_hidden_states is not None:
                ctx = encoder_hidden_states
                eq, ek, ev = (t.unflatten(2, (attn.heads, -1))
                              for t in (attn.add_q_proj(ctx), attn.add_k_proj(ctx), attn.add_v_proj(ctx)))  # fmt: skip
                if attn.norm_added_q is not None:
                    eq = attn.norm_added_q(eq)
                if attn.norm_added_k is not None:
                    ek = attn.norm_added_k(ek)
                q, k, v = torch.cat([q, eq], 1), torch.cat([k, ek], 1), torch.cat([v, ev], 1)  # [B, S, H, D]
            out = dispatch_attention_fn(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                        backend=self._attention_backend, parallel_config=self._parallel_config)
            out = out.flatten(2, 3).to(q.dtype)  # [B, S, H * D]
            if encoder_hidden_states is None:
                return out, None
            n = encoder_hidden_states.shape[1]
            img, txt = out[:, : out.shape[1] - n], out[:, out.shape[1] - n :]
            if getattr(attn, "to_out", None) is not None:
                img = attn.to_out[1](attn.to_out[0](img))
            if getattr(attn, "to_add_out", None) is not None:
                txt = attn.to_add_out(txt)
            return img, txt

    return HyvProcessor15


def register_cache_blocks() -> None:
    """diffusers' cache hooks (FirstBlockCache, MagCache, TaylorSeer, hyv's TeaCache) find a block's inputs and
    outputs through its registry, which lacks HunyuanVideo 1.5's block: registered here, as diffusers registers v1's
    (the block returns (hidden_states, encoder_hidden_states))."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15TransformerBlock

    try:
        TransformerBlockRegistry.get(HunyuanVideo15TransformerBlock)
    except ValueError:
        TransformerBlockRegistry.register(
            model_class=HunyuanVideo15TransformerBlock,
            metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=1),
        )


def cp_plan() -> dict[str, Any]:
    """The context-parallel plan of HunyuanVideo15Transformer3DModel (render.sampling.parallel): the RoPE of the
    video tokens and the video tokens split on the token dim; the text (and image) tokens split at the input of the
    first block, after the forward has refined and ordered them (the refiner runs whole on every rank: its pooled
    mean needs every text token; it is 2 layers over ~100 tokens); the output gathered at `proj_out`."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    def out(dim: int, ndim: int) -> Any:  # split a module's output
        return ContextParallelInput(split_dim=dim, expected_dims=ndim, split_output=True)

    return {
        "rope": {0: out(0, 2), 1: out(0, 2)},  # cos, sin [N_v, D_head]
        "x_embedder": {0: out(1, 3)},  # video tokens [B, N_v, C]
        "transformer_blocks.0": {
            "encoder_hidden_states": ContextParallelInput(split_dim=1, expected_dims=3),  # [B, L, C]
            "attention_mask": ContextParallelInput(split_dim=1, expected_dims=2),  # [B, L]
        },
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),  # [B, N_v, p*p*C_out]
    }
