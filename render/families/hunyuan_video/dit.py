"""The DiT in every form it comes in: a diffusers folder, Tencent's original checkpoint (bf16 or scaled fp8), a
separate file given with --dit (GGUF, original .pt, .safetensors in either naming). Each becomes diffusers'
`HunyuanVideoTransformer3DModel` on the CPU; placement and offloading are the engine's (render.model.offload)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core import hyvjson
from render.core.errors import ModelNotFoundError
from render.families.hunyuan_video.configs import config
from render.families.hunyuan_video.layout import fp8_map, original_dit
from render.model.ref import DIFFUSERS

if TYPE_CHECKING:
    import torch

    from render.model.ref import ModelRef
    from render.model.variant import DiTVariant


@dataclass(frozen=True)
class DiTSource:
    kind: str  # "diffusers" (a folder), "original" (.pt), "tencent-fp8" (.pt + map), "safetensors", "gguf"
    path: Path


def dit_source(model: ModelRef, variant: DiTVariant) -> DiTSource:
    if variant.dit_file is not None:
        f = variant.dit_file
        kind = "gguf" if f.suffix == ".gguf" else "safetensors" if f.suffix == ".safetensors" else "original"
        return DiTSource(kind, f)
    if model.layout == DIFFUSERS:
        return DiTSource("diffusers", model.component("transformer"))
    if fp8_kind(model, variant) == "tencent-scaled":
        return DiTSource("tencent-fp8", original_dit(model, fp8=True))
    full = original_dit(model)
    if not full.is_file() and original_dit(model, fp8=True).is_file():
        raise ModelNotFoundError(
            f"{model.source} holds only Tencent's fp8 DiT ({original_dit(model, fp8=True).name}); pass --fp8"
        )
    return DiTSource("original", full)


def fp8_kind(model: ModelRef, variant: DiTVariant) -> str | None:
    """"tencent-scaled" (the model's fp8 checkpoint and scale map), "layerwise" (fp8 storage), or None."""
    if not variant.fp8:
        return None
    if variant.dit_file is None and model.layout != DIFFUSERS:
        f = original_dit(model, fp8=True)
        if f.is_file() and fp8_map(f).is_file():
            return "tencent-scaled"
    return "layerwise"


def source_shapes(src: DiTSource) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a DiT source file (headers only where the format allows)."""
    from render.model.weightfiles import file_shapes

    return file_shapes(src.path)


def dit_config(model: ModelRef, variant: DiTVariant) -> dict[str, Any]:
    """The diffusers config of the DiT that will load: the model's, or inferred from a --dit file's tensors (with
    the model's RoPE settings, which tensors do not hold)."""
    src = dit_source(model, variant)
    if src.kind in ("diffusers", "original", "tencent-fp8"):
        return config(model, "transformer")
    from render.families.hunyuan_video.original import infer_dit_config, looks_original

    shapes = source_shapes(src)
    if not looks_original(shapes):
        return config(model, "transformer")
    base = config(model, "transformer")
    keep = ("rope_axes_dim", "rope_theta", "image_condition_type")  # what the tensors do not say
    rope: dict[str, Any] = {k: base[k] for k in keep if k in base}
    rope.update(hyvjson.section(model.path, "transformer"))
    return infer_dit_config(shapes, rope, str(src.path))


def diffusers_shapes(model: ModelRef, variant: DiTVariant) -> dict[str, tuple[int, ...]]:
    """The DiT file's tensor shapes under diffusers' names (converted on the meta device: no data read)."""
    import torch

    from render.families.hunyuan_video.original import convert_dit_state_dict, looks_original

    src = dit_source(model, variant)
    if src.kind == "diffusers":
        from render.model.weightfiles import folder_shapes

        return folder_shapes(src.path)
    shapes = source_shapes(src)
    if not looks_original(shapes):
        return shapes
    hidden = shapes.get("img_in.proj.weight", (0,))[0]
    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: tuple(v.shape) for k, v in convert_dit_state_dict(meta, hidden, str(src.path)).items()}


def load_dit(model: ModelRef, variant: DiTVariant, dtype: torch.dtype) -> Any:
    """The DiT on the CPU in `dtype` (fp8 weights stay fp8; GGUF weights stay quantised)."""
    from diffusers import HunyuanVideoTransformer3DModel

    from render.families.hunyuan_video.original import convert_dit_state_dict, looks_original

    src = dit_source(model, variant)
    if src.kind == "diffusers":
        return HunyuanVideoTransformer3DModel.from_pretrained(src.path, dtype=dtype)
    config = dit_config(model, variant)
    if src.kind == "gguf":
        from render.model.gguf import logical_shape, quantised_model, read_gguf

        sd = read_gguf(src.path)
        if looks_original(sd):
            sd = convert_dit_state_dict(sd, logical_shape(sd["img_in.proj.weight"])[0], str(src.path))
        return quantised_model(HunyuanVideoTransformer3DModel, sd, config, dtype)
    sd = _read_state_dict(src)
    if src.kind == "tencent-fp8":
        return _assemble_scaled_fp8(src.path, sd, config, dtype)
    return _assemble(sd, config, dtype, set())


def _read_state_dict(src: DiTSource) -> dict[str, Any]:
    from render.families.hunyuan_video.original import convert_dit_state_dict, looks_original
    from render.model.weightfiles import load_pt, unwrap_state_dict

    if src.kind == "safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(src.path))
    else:
        sd = unwrap_state_dict(load_pt(src.path), src.path)
    if looks_original(sd):
        sd = convert_dit_state_dict(sd, sd["img_in.proj.weight"].shape[0], str(src.path))
    return sd


def _assemble(sd: dict[str, Any], config: dict[str, Any], dtype: Any, fp8_modules: set[str]) -> Any:
    """Build the DiT on the meta device from its config and assign the tensors (no second copy of the weights)."""
    import torch
    from diffusers import HunyuanVideoTransformer3DModel

    from render.model.fp8 import FP8, swap_in_scaled_linears

    with torch.device("meta"):
        model: Any = HunyuanVideoTransformer3DModel.from_config(config)
    swap_in_scaled_linears(model, fp8_modules)
    keep = {f"{m}.weight" for m in fp8_modules}
    cast = {k: v if k in keep else v.to(dtype) for k, v in sd.items()}
    for k in keep:
        if cast[k].dtype != FP8:
            cast[k] = cast[k].to(FP8)
    model.load_state_dict(cast, strict=True, assign=True)
    return model.eval()


def _assemble_scaled_fp8(path: Path, sd: dict[str, Any], config: dict[str, Any], dtype: Any) -> Any:
    """Tencent's fp8 checkpoint: its block linears keep their fp8 weights; each gets its layer's scale."""
    import torch

    from render.families.hunyuan_video.original import map_module
    from render.model.weightfiles import load_pt

    scales = load_pt(fp8_map(path))
    if not isinstance(scales, dict):
        raise ModelNotFoundError(f"{fp8_map(path)} is not a map of layer names to scales")
    hidden = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    fp8_modules: set[str] = set()
    for name, scale in scales.items():
        for target in map_module(str(name), hidden) or []:
            sd[f"{target.name}.scale"] = torch.as_tensor(scale, dtype=torch.float32).reshape(())
            fp8_modules.add(target.name)
    return _assemble(sd, config, dtype, fp8_modules)
