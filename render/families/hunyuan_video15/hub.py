"""HunyuanVideo 1.5's released models by name: the community diffusers repos (hunyuanvideo-community/
HunyuanVideo-1.5-Diffusers-<variant>) whose configs ship with hyv in released/ (no weights), for the offline plan."""

from __future__ import annotations

from pathlib import Path

from render.model.family import Released

# The released variants (community repos hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-<variant>), their configs
# shipped in released/ (no weights): the DiT and VAE are diffusers' defaults of their classes (target_size 640 for
# 480p, 960 for 720p; use_meanflow for the step-distilled model), Qwen2.5-VL-7B-Instruct's language model, ByT5-small's
# encoder with the Glyph-SDXL-v2 tokens (vocabulary 1510), SigLIP from FLUX.1-Redux (image-to-video); the guider's CFG
# scale 6 (1 when distilled) and the scheduler's shift 5 (480p), 9 (720p T2V), 7 (720p I2V, step-distilled).
VARIANTS = ("480p_t2v", "480p_i2v", "720p_t2v", "720p_i2v", "480p_t2v_distilled", "480p_i2v_distilled",
            "720p_i2v_distilled", "480p_i2v_step_distilled")  # fmt: skip
RELEASED = tuple(
    Released(
        f"hunyuanvideo-1.5-{v}",
        f"hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-{v}",
        Path(__file__).parent / "released" / f"hunyuanvideo-1.5-{v}",
    )
    for v in VARIANTS
)
