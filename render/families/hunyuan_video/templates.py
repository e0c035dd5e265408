"""HunyuanVideo's prompt templates for its Llama text encoder, and the crop_start computed from the tokenizer in use."""

from __future__ import annotations

from typing import Any

# The video template (frames > 1): identical to diffusers' DEFAULT_PROMPT_TEMPLATE["template"].
VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)

# The image template (frames = 1), upstream's "dit-llm-encode".
IMAGE_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the image by detailing the color, shape, size, texture, "
    "quantity, text, spatial relationship of the objects and background:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)

# The image-to-video template (diffusers' HunyuanVideoImageToVideoPipeline DEFAULT_PROMPT_TEMPLATE, Tencent's
# "dit-llm-encode-video-i2v"): the <image> token the LLaVA replaces by the first frame's features, and the assistant
# header after the prompt.
I2V_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n<image>\nDescribe the video by detailing the following aspects "
    "according to the reference image: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>\n\n"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def template_for(frames: int) -> tuple[str, str]:
    """(name, text) of the template for a number of frames."""
    return ("video", VIDEO_TEMPLATE) if frames > 1 else ("image", IMAGE_TEMPLATE)


def compute_crop_start(tokenizer: Any, template_text: str) -> int:
    """Number of tokens the template puts before the prompt (leading special tokens included), for this tokenizer.

    It is the common prefix of the tokenised template prefix and a tokenised filled-in template: a special token
    that a post-processor appends to the prefix alone (an eos) is not counted, and a BPE merge across the boundary
    would show up as a shorter prefix (then `check_crop` fails loudly instead of keeping template tokens).
    """
    prefix = template_text.split("{}")[0]
    ids_prefix = tokenizer(prefix)["input_ids"]
    ids_full = tokenizer(template_text.format("a"))["input_ids"]
    n = 0
    while n < min(len(ids_prefix), len(ids_full)) and ids_prefix[n] == ids_full[n]:
        n += 1
    return n


def prefix_ids(tokenizer: Any, template_text: str, crop_start: int) -> list[int]:
    """The token ids every encoded prompt must start with."""
    return list(tokenizer(template_text.split("{}")[0])["input_ids"][:crop_start])
