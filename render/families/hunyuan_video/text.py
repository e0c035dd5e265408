"""HunyuanVideo's text encoding, as diffusers' HunyuanVideoPipeline.encode_prompt does it: template -> tokenizer
(text_len + crop_start, padded to max length, truncated) -> LlamaModel hidden state -(skip+1) -> crop the template
tokens; CLIP: clip_len tokens -> pooler_output. Embeddings artifact: prompt_embeds [1, L, D],
prompt_attention_mask [1, L] (int64), pooled_prompt_embeds [1, P]."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from render.core.errors import NonFiniteError, RuntimeFailure
from render.core.settings import EncodeSettings
from render.families.hunyuan_video.templates import compute_crop_start, prefix_ids, template_for
from render.model.family import Template, TextEncoders, TextEncoding
from render.model.ref import ModelRef


class HunyuanVideoText(TextEncoding):
    def __init__(self, model: ModelRef) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        self.tokenizer.padding_side = "right"
        self._templates: dict[str, Template] = {}

    def template(self, frames: int) -> Template:
        name, text = template_for(frames)
        if name not in self._templates:
            self._templates[name] = Template(name, text, compute_crop_start(self.tokenizer, text))
        return self._templates[name]

    def encode(
        self,
        encoders: TextEncoders,
        prompts: list[str],
        template: Template,
        settings: EncodeSettings,
        images: list[Path | None] | None = None,
    ) -> tuple[dict[str, Any], list[bool]]:
        """prompt_embeds [B, L, D], prompt_attention_mask [B, L], pooled [B, P]; and whether each prompt was
        truncated to text_len tokens."""
        import torch

        s, crop = settings, template.crop_start
        tokenizer, tokenizer_2 = encoders["tokenizer"], encoders["tokenizer_2"]
        texts = [template.text.format(p) for p in prompts]
        tok = tokenizer(
            texts,
            max_length=s.text_len + crop,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
            return_attention_mask=True,
        )
        ids, mask = tok.input_ids, tok.attention_mask  # [B, crop + L]
        want = torch.tensor(prefix_ids(tokenizer, template.text, crop))
        if not bool((ids[:, :crop] == want).all()):
            raise RuntimeFailure(
                "the prompt template does not tokenise to the same prefix with and without a prompt; "
                "crop_start would cut inside the template with this tokenizer"
            )
        full_len = [len(tokenizer(t)["input_ids"]) for t in texts]
        truncated = [n > s.text_len + crop for n in full_len]
        with torch.inference_mode():
            hidden = encoders["text_encoder"](
                input_ids=ids.to(encoders.device), attention_mask=mask.to(encoders.device), output_hidden_states=True
            ).hidden_states[-(s.skip_layers + 1)]  # [B, crop + L, D]
            embeds = hidden.to(encoders.dtype)[:, crop:]  # [B, L, D]
            mask = mask[:, crop:]  # [B, L]
            tok2 = tokenizer_2(
                prompts, padding="max_length", max_length=s.clip_len, truncation=True, return_tensors="pt"
            )
            pooled = encoders["text_encoder_2"](
                tok2.input_ids.to(encoders.device), output_hidden_states=False
            ).pooler_output  # [B, P]
        if not bool(torch.isfinite(embeds).all()) or not bool(torch.isfinite(pooled).all()):
            raise NonFiniteError("the text encoder produced NaN or Inf; try --dtype float32")
        return {
            "prompt_embeds": embeds,
            "prompt_attention_mask": mask,
            "pooled_prompt_embeds": pooled,
        }, truncated

    def encoder_record(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "text_dim": int(tensors["prompt_embeds"].shape[-1]),
            "pooled_dim": int(tensors["pooled_prompt_embeds"].shape[-1]),
        }
