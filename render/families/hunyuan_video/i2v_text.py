"""HunyuanVideo-I2V's text encoding, as diffusers' HunyuanVideoImageToVideoPipeline.encode_prompt does it: the LLaVA
(Llama-3 + CLIP-L vision tower) reads the templated prompt with the first frame in place of its <image> token.

    ids [1, crop + L] (the tokenizer's, right padded)  ->  <image> expanded to N image tokens  [1, crop + L + N - 1]
    LLaVA hidden state -(skip + 1)  [1, crop + L + N - 1, D]
    -> every k-th image token's state [N / k, D] + the prompt's states (the 4 tokens of the assistant header that
       follow it dropped) [L - 4, D]: prompt_embeds [1, N / k + L - 4, D], its mask a prefix of ones
    CLIP: pooled_prompt_embeds [1, P] of the bare prompt (as text-to-video)

k (image_embed_interleave) is 2 for a latent_concat model, 4 for token_replace; a negative prompt is encoded with
a black image and k = 2 whatever the model (as the pipeline does). Prompts are encoded one at a time (the
pipeline's crop fails on a batch whose prompts are truncated unevenly).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError, NonFiniteError, RuntimeFailure
from render.core.settings import EncodeSettings
from render.families.hunyuan_video.templates import I2V_TEMPLATE, compute_crop_start
from render.model.family import Template, TextEncoders, TextEncoding
from render.model.ref import ModelRef

HEADER_TOKENS = 4  # <|eot_id|><|start_header_id|>assistant<|end_header_id|>: dropped after the prompt
NEGATIVE_INTERLEAVE = 2  # the pipeline encodes a negative prompt with encode_prompt's default


def interleave(condition: str) -> int:
    """Every k-th image token kept, by the DiT's image_condition_type (the pipeline's defaults)."""
    return {"latent_concat": 2, "token_replace": 4}.get(condition, 1)


class HunyuanVideoI2VText(TextEncoding):
    sees_image = True

    def __init__(self, model: ModelRef, condition: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        self.tokenizer.padding_side = "right"
        self.k = interleave(condition)
        llava = model.config("text_encoder")
        self.image_token = int(llava["image_token_index"])
        self.image_tokens = image_tokens(llava)  # N: the vision tower's patches
        self.processor_class = model.config("image_processor").get("image_processor_type", "")
        self._template: Template | None = None

    def template(self, frames: int) -> Template:
        if self._template is None:
            self._template = Template("i2v", I2V_TEMPLATE, compute_crop_start(self.tokenizer, I2V_TEMPLATE))
        return self._template

    def key_record(self, template: Template) -> dict[str, Any]:
        return {
            "template": template.text,
            "crop_start": template.crop_start,
            "interleave": [self.k, NEGATIVE_INTERLEAVE],
            "image_tokens": self.image_tokens,
            "image_processor": self.processor_class,
        }

    def encode(
        self,
        encoders: TextEncoders,
        prompts: list[str],
        template: Template,
        settings: EncodeSettings,
        images: list[Path | None] | None = None,
    ) -> tuple[dict[str, Any], list[bool]]:
        """prompt_embeds [B, N/k + L - 4, D], prompt_attention_mask [B, same], pooled [B, P] (B = 1 per call of
        the LLaVA); and whether each prompt was truncated to text_len tokens."""
        import torch

        from render.files.images import load_rgb

        rows, pooled, truncated = [], [], []
        for b, prompt in enumerate(prompts):
            path = images[b] if images is not None else None
            image = load_rgb(path) if path is not None else None
            embeds, mask, cut = self._one(encoders, prompt, image, template, settings)
            rows.append((embeds, mask))
            truncated.append(cut)
        width = max(e.shape[1] for e, _ in rows)
        if any(e.shape[1] != width for e, _ in rows):
            raise RuntimeFailure("prompts of one micro-batch gave embeddings of different lengths")
        with torch.inference_mode():
            tok2 = encoders["tokenizer_2"](
                prompts, padding="max_length", max_length=settings.clip_len, truncation=True, return_tensors="pt"
            )
            pooled = encoders["text_encoder_2"](
                tok2.input_ids.to(encoders.device), output_hidden_states=False
            ).pooler_output  # [B, P]
        embeds = torch.cat([e for e, _ in rows])
        if not bool(torch.isfinite(embeds).all()) or not bool(torch.isfinite(pooled).all()):
            raise NonFiniteError("the text encoder produced NaN or Inf; try --dtype float32")
        return {
            "prompt_embeds": embeds,
            "prompt_attention_mask": torch.cat([m for _, m in rows]),
            "pooled_prompt_embeds": pooled,
        }, truncated

    def _one(
        self, encoders: TextEncoders, prompt: str, image: Any, template: Template, s: EncodeSettings
    ) -> tuple[Any, Any, bool]:
        """One prompt with its image (None: a negative prompt, which sees a black image) -> embeds [1, M, D],
        mask [1, M] (int64), truncated."""
        import PIL.Image
        import torch

        tokenizer, crop, n = encoders["tokenizer"], template.crop_start, self.image_tokens
        text = template.text.format(prompt)
        tok = tokenizer(
            text, max_length=s.text_len + crop, padding="max_length", truncation=True, return_tensors="pt"
        )
        ids, mask = tok.input_ids, tok.attention_mask  # [1, crop + L]
        row = ids[0].tolist()
        if row.count(self.image_token) != 1:
            raise RuntimeFailure(
                f"the I2V template tokenises to {row.count(self.image_token)} image tokens with this tokenizer "
                "(one expected): the tokenizer does not go with the LLaVA text encoder"
            )
        start = row.index(self.image_token)
        k = self.k if image is not None else NEGATIVE_INTERLEAVE
        if image is None:
            image = PIL.Image.new("RGB", (64, 64), 0)  # a constant image: its size does not matter
        pixels = encoders["image_processor"](image, return_tensors="pt").pixel_values  # [1, 3, S, S]
        expanded = torch.tensor([row[:start] + [self.image_token] * n + row[start + 1 :]])  # [1, crop + L + N - 1]
        attend = (expanded != self._pad(encoders)).to(mask.dtype)
        position = (attend.cumsum(-1) - 1).masked_fill_(attend == 0, 1)
        te, device = encoders["text_encoder"], encoders.device
        with torch.inference_mode():
            hidden = te.model(
                input_ids=expanded.to(device),
                attention_mask=attend.to(device),
                position_ids=position.to(device),
                pixel_values=pixels.to(device=device, dtype=encoders.dtype),
                output_hidden_states=True,
            ).hidden_states[-(s.skip_layers + 1)]
        hidden = hidden.to(encoders.dtype)[0]  # [crop + L + N - 1, D]
        # The prompt ends at the assistant header: the token after its <|end_header_id|> (the last of three), or
        # the end when the prompt was truncated before it.
        header = tokenizer.convert_tokens_to_ids("<|end_header_id|>")
        where = [i for i, t in enumerate(row) if t == header]
        after = (where[-1] if len(where) >= 3 else len(row) - 1) + 1
        h = HEADER_TOKENS
        embeds = torch.cat([hidden[crop - 1 + n : after - 1 + n - h], hidden[after - 1 + n :]])  # [L - 4, D]
        text_mask = torch.cat([mask[0, crop : after - h], mask[0, after:]])
        image_states = hidden[start : start + n][::k]  # [N / k, D]
        image_mask = torch.ones(image_states.shape[0], dtype=mask.dtype)
        full = len(tokenizer(text)["input_ids"])
        return (
            torch.cat([image_states, embeds])[None],
            torch.cat([image_mask, text_mask])[None],
            full > s.text_len + crop,
        )

    @staticmethod
    def _pad(encoders: TextEncoders) -> int:
        """The pad id the LLaVA's input is masked by (the pipeline's: its config's, not the tokenizer's)."""
        config = encoders["text_encoder"].config
        for found in (getattr(config, "pad_token_id", None), getattr(config.text_config, "pad_token_id", None)):
            if found is not None:
                return int(found)
        return int(encoders["tokenizer"].pad_token_id)

    def encoder_record(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "text_dim": int(tensors["prompt_embeds"].shape[-1]),
            "pooled_dim": int(tensors["pooled_prompt_embeds"].shape[-1]),
        }


def image_tokens(llava: Mapping[str, Any]) -> int:
    """The LLaVA's image features per image: (image_size / patch_size)^2 (its "default" strategy drops CLS)."""
    vision = llava.get("vision_config") or {}
    if llava.get("vision_feature_select_strategy", "default") != "default":
        raise ModelNotFoundError("the LLaVA text encoder's vision_feature_select_strategy is not 'default'")
    return (int(vision.get("image_size", 336)) // int(vision.get("patch_size", 14))) ** 2
