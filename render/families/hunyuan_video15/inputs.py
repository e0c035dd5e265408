"""What HunyuanVideo 1.5's DiT is fed, built from the embeddings artifacts' tensors:
- the text streams (MLLM and ByT5 with their masks) and the image tokens (SigLIP, image-to-video; zeros otherwise);
- with the padding dropped (every kernel but diffusers' masked one): each text stream cut to its valid tokens and the
  masked zero image tokens of text-to-video left out, so no token is padding and no mask is built;
- each step's 65-channel input: the noisy latents [B, 32, T, h, w], the condition latents [B, 32, T, h, w] (zeros
  for text-to-video; the first frame's latent for image-to-video) and the mask [B, 1, T, h, w];
- a step-distilled model's `timestep_r`: the next timestep, 0 at the last step (as diffusers' image-to-video
  pipeline passes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from render.model.family import Family, StepInputs
from render.sampling.attention import trim_padding

VISION_TOKENS = 729  # SigLIP's tokens (27 x 27): the zeros of text-to-video, as diffusers' pipeline makes them


def step_inputs(
    family: Family,
    cond: Mapping[str, Any],
    uncond: Mapping[str, Any] | None,
    trim: bool,
    config: Mapping[str, Any],
) -> StepInputs:
    import torch

    image_dim = int(config["image_embed_dim"])

    def kwargs(tensors: Mapping[str, Any]) -> dict[str, Any]:
        c = family.conditioning(tensors)
        image = tensors.get("image_embeds")  # [1, 729, D_img]: image-to-video
        if image is None:
            image = torch.zeros((1, 0 if trim else VISION_TOKENS, image_dim), dtype=c["encoder_hidden_states"].dtype)
        c["image_embeds"] = image
        if trim:
            c = trim_padding(c, "encoder_hidden_states", "encoder_attention_mask", keep=1)
            c = trim_padding(c, "encoder_hidden_states_2", "encoder_attention_mask_2", keep=0)
        return c

    condition = cond.get("cond_latents")  # [1, 32, T, h, w] with the first frame's latent, image-to-video
    mask = cond.get("cond_mask")  # [1, 1, T, h, w]

    def hidden(x: Any) -> Any:  # [B, 32, T, h, w] -> [B, 65, T, h, w]
        b, _, t, h, w = x.shape
        if condition is None or mask is None:
            return torch.cat([x, torch.zeros_like(x), x.new_zeros((b, 1, t, h, w))], dim=1)
        return torch.cat([x, condition.to(x).expand(b, -1, -1, -1, -1), mask.to(x).expand(b, -1, -1, -1, -1)], 1)

    per_step = None
    if config.get("use_meanflow"):

        def per_step(i: int, x: Any, timesteps: Any) -> dict[str, Any]:
            nxt = timesteps[i + 1] if i + 1 < len(timesteps) else torch.zeros((), device=timesteps.device)
            return {"timestep_r": nxt.expand(x.shape[0]).to(x.dtype)}  # [B]

    return StepInputs(kwargs(cond), kwargs(uncond) if uncond is not None else None, hidden, per_step)


def plan_inputs(config: Mapping[str, Any], latent: tuple[int, ...], text_len: int, dtype: Any) -> dict[str, Any]:
    """The DiT's inputs on meta tensors, as hyv gives them (no padding): the text streams at their full length (a
    prompt that uses them all), the image tokens of image-to-video, the 65-channel latents."""
    import torch

    def meta(shape: tuple[int, ...], dt: Any = dtype) -> Any:
        return torch.empty(shape, device="meta", dtype=dt)

    b, _, t, h, w = latent
    return {
        "hidden_states": meta((b, int(config["in_channels"]), t, h, w)),
        "timestep": meta((1,)),
        "encoder_hidden_states": meta((1, text_len, int(config["text_embed_dim"]))),
        "encoder_attention_mask": meta((1, text_len)),
        "encoder_hidden_states_2": meta((1, 256, int(config["text_embed_2_dim"]))),
        "encoder_attention_mask_2": meta((1, 256)),
        "image_embeds": meta((1, VISION_TOKENS, int(config["image_embed_dim"]))),
    }


def plan_forward(m: Any, kw: dict[str, Any]) -> Any:
    """The DiT's forward on meta tensors: diffusers' forward picks the valid tokens with boolean masks (no shape on
    the meta device), so the same modules run here on what hyv feeds them (every token valid, no mask built)."""
    import torch

    from render.families.hunyuan_video15.attention import processor
    from render.sampling.attention import Padding

    none = Padding(())
    none.none = True  # every token valid: hyv's processors build no mask
    for block in m.transformer_blocks:
        block.attn.set_processor(processor(none))
    x = kw["hidden_states"]
    rope = m.rope(x)
    temb = m.time_embed(kw["timestep"], timestep_r=None)
    hidden = m.x_embedder(x)
    text = m.context_embedder(kw["encoder_hidden_states"], kw["timestep"], kw["encoder_attention_mask"])
    text_2 = m.context_embedder_2(kw["encoder_hidden_states_2"])
    image = m.image_embedder(kw["image_embeds"])
    tokens = torch.cat([image, text_2, text], dim=1)  # [B, 729 + 256 + L, W]
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    for block in m.transformer_blocks:
        hidden, tokens = block(hidden, tokens, temb, mask, rope)
    return m.proj_out(m.norm_out(hidden, temb))
