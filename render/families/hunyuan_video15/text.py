"""HunyuanVideo 1.5's text encoding, as diffusers' HunyuanVideo15Pipeline.encode_prompt does it, with the crop
computed as Tencent computes it:
- MLLM: [system, user] chat -> apply_chat_template (generation prompt, padded to text_len + crop_start, truncated)
  -> Qwen2.5-VL's language model, hidden_states[-(skip + 1)] (no final norm) -> the template tokens cropped;
- glyph: the prompt's quoted text ('Text "A". ') -> ByT5 (clip_len tokens, padded) -> last hidden state; no quoted
  text: zeros and an all-zero mask.
Embeddings artifact: prompt_embeds [1, L, D], prompt_embeds_mask [1, L] (int64), prompt_embeds_2 [1, L2, D2],
prompt_embeds_mask_2 [1, L2] (int64): the names diffusers' pipeline takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import NonFiniteError
from render.core.settings import EncodeSettings
from render.families.hunyuan_video15.prompts import SYSTEM_MESSAGE, crop_start, glyph_text, messages
from render.model.family import Template, TextEncoders, TextEncoding
from render.model.ref import ModelRef

TEMPLATE = "video"  # T2V and I2V both use the video system message


class HunyuanVideo15Text(TextEncoding):
    def __init__(self, model: ModelRef) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        self.tokenizer.padding_side = "right"  # the crop keeps a prefix of valid tokens
        self._template: Template | None = None

    def template(self, frames: int) -> Template:
        if self._template is None:
            self._template = Template(TEMPLATE, SYSTEM_MESSAGE, crop_start(self.tokenizer))
        return self._template

    def key_record(self, template: Template) -> dict[str, Any]:
        return {"system": template.text, "crop_start": template.crop_start, "glyph": "quoted text -> byt5"}

    def encode(
        self,
        encoders: TextEncoders,
        prompts: list[str],
        template: Template,
        settings: EncodeSettings,
        images: list[Path | None] | None = None,
    ) -> tuple[dict[str, Any], list[bool]]:
        import torch

        s, crop, tok = settings, template.crop_start, encoders["tokenizer"]
        chats = [messages(p) for p in prompts]
        enc = tok.apply_chat_template(
            chats,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            padding="max_length",
            max_length=s.text_len + crop,
            truncation=True,
            return_tensors="pt",
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]  # [B, crop + L]
        full = [len(tok.apply_chat_template(c, add_generation_prompt=True, tokenize=True)) for c in chats]
        truncated = [n > s.text_len + crop for n in full]
        device = encoders.device
        with torch.inference_mode():
            hidden = encoders["text_encoder"](
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True
            ).hidden_states[-(s.skip_layers + 1)]  # [B, crop + L, D]
            embeds = hidden.to(encoders.dtype)[:, crop:]  # [B, L, D]
            mask = mask[:, crop:]  # [B, L]
            glyph = [self._glyph(encoders, p, s.clip_len) for p in prompts]
        embeds_2 = torch.cat([g[0] for g in glyph])  # [B, L2, D2]
        mask_2 = torch.cat([g[1] for g in glyph])  # [B, L2]
        if not bool(torch.isfinite(embeds).all()) or not bool(torch.isfinite(embeds_2).all()):
            raise NonFiniteError("the text encoder produced NaN or Inf; try --dtype float32")
        return {
            "prompt_embeds": embeds,
            "prompt_embeds_mask": mask.to(torch.int64),
            "prompt_embeds_2": embeds_2,
            "prompt_embeds_mask_2": mask_2.to(torch.int64),
        }, truncated

    @staticmethod
    def _glyph(encoders: TextEncoders, prompt: str, length: int) -> tuple[Any, Any]:
        """([1, L2, D2], [1, L2]) of a prompt's quoted text; zeros and an all-zero mask when it has none."""
        import torch

        te = encoders["text_encoder_2"]
        text = glyph_text(prompt)
        if text is None:
            width = int(te.config.d_model)
            return (
                torch.zeros((1, length, width), device=encoders.device, dtype=encoders.dtype),
                torch.zeros((1, length), dtype=torch.int64),
            )
        tok = encoders["tokenizer_2"](
            text, padding="max_length", max_length=length, truncation=True, add_special_tokens=True, return_tensors="pt"
        )
        out = te(
            input_ids=tok.input_ids.to(encoders.device), attention_mask=tok.attention_mask.float().to(encoders.device)
        )[0]
        return out.to(encoders.dtype), tok.attention_mask

    def encoder_record(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "text_dim": int(tensors["prompt_embeds"].shape[-1]),
            "text_2_dim": int(tensors["prompt_embeds_2"].shape[-1]),
        }
