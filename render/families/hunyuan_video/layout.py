"""Tencent's original layout of HunyuanVideo (hub `tencent/HunyuanVideo`, its `ckpts/` folder, or the folder
holding `ckpts/`): `hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states.pt` (+ `_fp8.pt`, `_fp8_map.pt`),
`hunyuan-video-t2v-720p/vae/{config.json,pytorch_model.pt}`, `text_encoder/` and `text_encoder_2/` (each with its
tokenizer), no scheduler folder (flow matching with shift 7, the only one HunyuanVideo uses).
"""

from __future__ import annotations

from pathlib import Path

from render.model.ref import ORIGINAL, ModelRef

PIPELINE = "HunyuanVideoPipeline"
PIPELINE_I2V = "HunyuanVideoImageToVideoPipeline"
T2V = "hunyuan-video-t2v-720p"
I2V = "hunyuan-video-i2v-720p"  # tencent/HunyuanVideo-I2V's ckpts/ (its LLaVA whole in text_encoder_i2v/)
DIT_NAME = "mp_rank_00_model_states"
# Original-layout component folders, relative to the ckpts folder.
ORIGINAL_DIRS = {
    "transformer": f"{T2V}/transformers",
    "vae": f"{T2V}/vae",
    "text_encoder": "text_encoder",
    "tokenizer": "text_encoder",
    "text_encoder_2": "text_encoder_2",
    "tokenizer_2": "text_encoder_2",
    "scheduler": "scheduler",  # absent: the scheduler is built from DEFAULT_SCHEDULER
}
ORIGINAL_DIRS_I2V = {
    **ORIGINAL_DIRS,
    "transformer": f"{I2V}/transformers",
    "vae": f"{I2V}/vae",
    "text_encoder": "text_encoder_i2v",
    "tokenizer": "text_encoder_i2v",
    "image_processor": "text_encoder_i2v",
}
DEFAULT_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 7.0}


def find_original(path: Path, source: str) -> ModelRef | None:
    """The model when `path` (or its ckpts/) holds HunyuanVideo's original layout."""
    for root in (path, path / "ckpts"):
        if (root / T2V).is_dir():
            return ModelRef(root.resolve(), source, layout=ORIGINAL, pipeline=PIPELINE, dirs=ORIGINAL_DIRS)
    return None


def find_original_i2v(path: Path, source: str) -> ModelRef | None:
    """The model when `path` (or its ckpts/) holds HunyuanVideo-I2V's original layout."""
    for root in (path, path / "ckpts"):
        if (root / I2V).is_dir():
            return ModelRef(root.resolve(), source, layout=ORIGINAL, pipeline=PIPELINE_I2V, dirs=ORIGINAL_DIRS_I2V)
    return None


def original_dit(model: ModelRef, fp8: bool = False) -> Path:
    """The model's original DiT checkpoint (bf16, or Tencent's fp8 one)."""
    return model.component("transformer") / f"{DIT_NAME}{'_fp8' if fp8 else ''}.pt"


def fp8_map(dit_fp8: Path) -> Path:
    """Tencent's per-layer scales beside an fp8 checkpoint: `X_fp8.pt` -> `X_fp8_map.pt`."""
    return dit_fp8.with_name(dit_fp8.stem + "_map.pt")
