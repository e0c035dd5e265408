"""HunyuanVideo's DiT as hyv runs it: its attention processor (what the mask-free path and the heads-first layout
change), the blocks it goes on, and its context-parallel plan (render.sampling.parallel)."""

from __future__ import annotations

import functools
from typing import Any

from render.sampling.attention import Padding


def attention_blocks(transformer: Any) -> list[Any]:
    """The double-stream blocks, then the single-stream blocks (the token refiner's attention is left alone)."""
    return [*transformer.transformer_blocks, *transformer.single_transformer_blocks]


def processor(padding: Padding) -> Any:
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

        def __init__(self, padding: Padding) -> None:
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


def cp_plan() -> dict[str, Any]:
    """The context-parallel plan of HunyuanVideoTransformer3DModel (render.sampling.parallel's docstring)."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    def out(dim: int, ndim: int) -> Any:  # split a module's output
        return ContextParallelInput(split_dim=dim, expected_dims=ndim, split_output=True)

    return {
        "rope": {0: out(0, 2), 1: out(0, 2)},  # cos, sin [N_v, D_head]
        "x_embedder": {0: out(1, 3)},  # video tokens [B, N_v, C]
        "context_embedder": {0: out(1, 3)},  # refined text tokens [B, L, C]
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),  # [B, N_v, p*p*C_out]
    }
