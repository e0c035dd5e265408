"""HunyuanVideo 1.5's prompt templates: the chat template of its Qwen2.5-VL text encoder with the video system
message, the crop of the template tokens computed from the tokenizer in use (as Tencent computes it; diffusers
hard-codes 108, right only for the real Qwen2.5-VL tokenizer), and the glyph text (quoted text in the prompt) that
goes to the ByT5 encoder."""

from __future__ import annotations

import re
from typing import Any

# Tencent's PROMPT_TEMPLATE_ENCODE_VIDEO_JSON system message, as diffusers' pipeline writes it (a backslash-continued
# literal: the runs of 8 spaces are part of it). Used for text-to-video and image-to-video.
SYSTEM_MESSAGE = (
    "You are a helpful assistant. Describe the video by detailing the following aspects:         "
    "1. The main content and theme of the video.         "
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects.         "
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects.         "
    "4. background environment, light, style and atmosphere.         "
    "5. camera angles, movements, and transitions used in the video."
)
USER_MARKER = "<|im_start|>user\n"
_GLYPH = re.compile(r"\"(.*?)\"|“(.*?)”")


def messages(prompt: str) -> list[dict[str, str]]:
    """The chat of one prompt (an empty prompt is sent as " ", as diffusers does)."""
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": prompt or " "}]


def crop_start(tokenizer: Any) -> int:
    """Tokens before the prompt: the position just after the tokens of "<|im_start|>user\\n" in a templated prompt
    (Tencent's `calculate_crop_start`); 0 when the marker is not found."""
    ids = tokenizer.apply_chat_template(messages("a photo of a cat"), add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    ids = list(ids)
    marker = tokenizer(USER_MARKER, add_special_tokens=False)["input_ids"]
    for i in range(len(ids) - len(marker) + 1):
        if ids[i : i + len(marker)] == marker:
            return i + len(marker)
    return 0


def glyph_text(prompt: str) -> str | None:
    """The prompt's quoted text as the ByT5 encoder reads it ('Text "A". Text "B". '), or None when it has none
    (duplicates dropped when there are several, as diffusers' `extract_glyph_texts` does)."""
    found = [m[0] or m[1] for m in _GLYPH.findall(prompt)]
    if len(found) > 1:
        found = list(dict.fromkeys(found))
    if not found:
        return None
    return ". ".join(f'Text "{t}"' for t in found) + ". "
