"""HunyuanVideo's component configs in diffusers' terms, in either layout: the original layout has no scheduler
folder (flow matching, shift 7), its DiT's config is inferred from the checkpoint's tensor shapes (with the RoPE
axes from the model's hyv.json when they are not HunyuanVideo's), its VAE's translated from Tencent's config."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from render.core import hyvjson
from render.core.errors import ModelNotFoundError
from render.families.hunyuan_video.layout import DEFAULT_SCHEDULER, PIPELINE_I2V, original_dit
from render.model.ref import DIFFUSERS, ModelRef


def config(model: ModelRef, name: str) -> dict[str, Any]:
    """A component's config (no weights are read)."""
    if model.layout == DIFFUSERS:
        return model.config(name)
    if name == "scheduler":
        return dict(DEFAULT_SCHEDULER)
    if name == "transformer":
        dit = original_dit(model)
        if not dit.is_file():
            dit = original_dit(model, fp8=True)
        overrides = hyvjson.section(model.path, "transformer")
        cfg = dict(original_dit_config(dit, json.dumps(overrides, sort_keys=True)))
        if model.pipeline == PIPELINE_I2V:  # the mode is the DiT's input width: 2C + 1 concatenates, C replaces
            concat = cfg["in_channels"] == 2 * cfg["out_channels"] + 1
            cfg.setdefault("image_condition_type", "latent_concat" if concat else "token_replace")
        return cfg
    cfg = model.config(name)
    if name == "vae":
        from render.families.hunyuan_video.original import vae_config_from_original

        return vae_config_from_original(cfg)
    return cfg


@functools.lru_cache(maxsize=8)
def original_dit_config(path: Path, overrides_json: str) -> dict[str, Any]:
    """The diffusers config of an original-layout DiT file, from its tensor shapes (mmap: no data read)."""
    from render.families.hunyuan_video.original import infer_dit_config
    from render.model.weightfiles import file_shapes

    if not path.is_file():
        raise ModelNotFoundError(f"the original-layout model has no DiT checkpoint {path}")
    return infer_dit_config(file_shapes(path), json.loads(overrides_json), str(path))
