"""Writers of the weight formats users download, for tests: from a diffusers-layout model (init-tiny weights) to
Tencent's original layout (DiT under "module", VAE with "vae." prefixes and Tencent's config), Tencent's scaled fp8
+ scale map, city96-style GGUF, and LoRAs in the diffusers, original and musubi-tuner/kohya formats.

The diffusers -> original mapping here is written independently of hyv's reader (render.model.original), from
the documented key mapping (../shared/docs/hunyuanvideo-facts.md, "Weights layouts"), so a test that round-trips
through both checks one against the other.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

_DOUBLE = {  # diffusers suffix in transformer_blocks.N -> original suffix in double_blocks.N
    "norm1.linear": "img_mod.linear",
    "norm1_context.linear": "txt_mod.linear",
    "attn.norm_q": "img_attn_q_norm",
    "attn.norm_k": "img_attn_k_norm",
    "attn.norm_added_q": "txt_attn_q_norm",
    "attn.norm_added_k": "txt_attn_k_norm",
    "attn.to_out.0": "img_attn_proj",
    "attn.to_add_out": "txt_attn_proj",
    "ff.net.0.proj": "img_mlp.fc1",
    "ff.net.2": "img_mlp.fc2",
    "ff_context.net.0.proj": "txt_mlp.fc1",
    "ff_context.net.2": "txt_mlp.fc2",
}
_SINGLE = {"proj_out": "linear2", "attn.norm_q": "q_norm", "attn.norm_k": "k_norm", "norm.linear": "modulation.linear"}
_REFINER = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.to_out.0": "self_attn_proj",
    "ff.net.0.proj": "mlp.fc1",
    "ff.net.2": "mlp.fc2",
    "norm_out.linear": "adaLN_modulation.1",
}
_TOP = {
    "x_embedder.proj": "img_in.proj",
    "time_text_embed.timestep_embedder.linear_1": "time_in.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "time_in.mlp.2",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.mlp.0",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.mlp.2",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "context_embedder.proj_in": "txt_in.input_embedder",
    "context_embedder.time_text_embed.timestep_embedder.linear_1": "txt_in.t_embedder.mlp.0",
    "context_embedder.time_text_embed.timestep_embedder.linear_2": "txt_in.t_embedder.mlp.2",
    "context_embedder.time_text_embed.text_embedder.linear_1": "txt_in.c_embedder.linear_1",
    "context_embedder.time_text_embed.text_embedder.linear_2": "txt_in.c_embedder.linear_2",
    "proj_out": "final_layer.linear",
}
# fused original modules: (diffusers parts in row order) per block kind
_FUSED = {
    "double": {"img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
               "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")},
    "single": {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")},
    "refiner": {"self_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v")},
}
_BLOCKS = (
    (r"transformer_blocks\.(\d+)\.", "double_blocks.{}.", _DOUBLE, "double"),
    (r"single_transformer_blocks\.(\d+)\.", "single_blocks.{}.", _SINGLE, "single"),
    (r"context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.", "txt_in.individual_token_refiner.blocks.{}.",
     _REFINER, "refiner"),
)


def diffusers_to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers HunyuanVideoTransformer3DModel state dict -> Tencent's original names (fused q/k/v, fused
    linear1, (shift, scale) order of the final modulation)."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in sd.items():
        module, _, param = key.rpartition(".")
        if module == "norm_out.linear":  # diffusers (scale, shift) -> original (shift, scale)
            scale, shift = t.chunk(2, dim=0)
            out[f"final_layer.adaLN_modulation.1.{param}"] = torch.cat([shift, scale])
            continue
        if module in _TOP:
            out[f"{_TOP[module]}.{param}"] = t
            continue
        for pattern, orig, table, kind in _BLOCKS:
            m = re.match(pattern, module)
            if m:
                rest = module[m.end():]
                prefix = orig.format(m.group(1))
                if rest in table:
                    out[f"{prefix}{table[rest]}.{param}"] = t
                    break
                for name, parts in _FUSED[kind].items():
                    if rest in parts:
                        fused.setdefault(f"{prefix}{name}.{param}", {})[rest] = t
                        break
                else:
                    raise KeyError(key)
                break
        else:
            raise KeyError(key)
    for key, parts in fused.items():
        kind = "single" if key.startswith("single_blocks") else "refiner" if key.startswith("txt_in") else "double"
        name = key.rsplit(".", 2)[-2]
        out[key] = torch.cat([parts[p] for p in _FUSED[kind][name]])
    return out


def _vae_config_original(cfg: dict[str, Any]) -> dict[str, Any]:
    n = len(cfg["block_out_channels"])
    return {
        "_class_name": "AutoencoderKLCausal3D",
        "act_fn": cfg.get("act_fn", "silu"),
        "block_out_channels": cfg["block_out_channels"],
        "down_block_types": ["DownEncoderBlockCausal3D"] * n,
        "up_block_types": ["UpDecoderBlockCausal3D"] * n,
        "in_channels": cfg["in_channels"],
        "out_channels": cfg["out_channels"],
        "latent_channels": cfg["latent_channels"],
        "layers_per_block": cfg["layers_per_block"],
        "norm_num_groups": cfg["norm_num_groups"],
        "sample_size": 256,
        "sample_tsize": 64,
        "scaling_factor": cfg["scaling_factor"],
        "time_compression_ratio": cfg["temporal_compression_ratio"],
        "mid_block_add_attention": cfg["mid_block_add_attention"],
    }


def write_original_layout(src: Path, dst: Path, *, fp8: bool = False, full: bool = True) -> Path:
    """A diffusers-layout model -> Tencent's ckpts/ layout (DiT .pt under "module"; with fp8, the scaled fp8
    checkpoint and its map too; VAE .pt with "vae." prefixes and Tencent's config; text encoders with their
    tokenizers). The RoPE axes, which the weights do not hold, go in hyv.json."""
    from safetensors.torch import load_file

    t2v = dst / "hunyuan-video-t2v-720p"
    (t2v / "transformers").mkdir(parents=True)
    (t2v / "vae").mkdir(parents=True)
    dit = {}
    for f in sorted((src / "transformer").glob("*.safetensors")):
        dit.update(load_file(str(f)))
    orig = diffusers_to_original(dit)
    name = "mp_rank_00_model_states"
    if full:
        torch.save({"module": orig}, t2v / "transformers" / f"{name}.pt")
    if fp8:
        quantised, scales = to_scaled_fp8(orig)
        torch.save({"module": quantised}, t2v / "transformers" / f"{name}_fp8.pt")
        torch.save(scales, t2v / "transformers" / f"{name}_fp8_map.pt")
    vae_cfg = json.loads((src / "vae" / "config.json").read_text())
    vae = {}
    for f in sorted((src / "vae").glob("*.safetensors")):
        vae.update(load_file(str(f)))
    torch.save({f"vae.{k}": v for k, v in vae.items()}, t2v / "vae" / "pytorch_model.pt")
    (t2v / "vae" / "config.json").write_text(json.dumps(_vae_config_original(vae_cfg), indent=2))
    for enc, tok in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
        shutil.copytree(src / enc, dst / enc)
        for f in (src / tok).iterdir():
            shutil.copy2(f, dst / enc / f.name)
    tr_cfg = json.loads((src / "transformer" / "config.json").read_text())
    hyv = json.loads((src / "hyv.json").read_text()) if (src / "hyv.json").is_file() else {}
    hyv["transformer"] = {"rope_axes_dim": tr_cfg["rope_axes_dim"]}
    (dst / "hyv.json").write_text(json.dumps(hyv))
    return dst


FP8_MAX = 448.0  # largest float8_e4m3fn


def block_linears(orig: dict[str, torch.Tensor]) -> list[str]:
    """Original module names of the nn.Linear layers inside the double and single blocks (what fp8 covers)."""
    return sorted(
        k.removesuffix(".weight")
        for k, v in orig.items()
        if k.startswith(("double_blocks.", "single_blocks.")) and k.endswith(".weight") and v.ndim == 2
    )


def to_scaled_fp8(orig: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Tencent's scheme: each block linear's weight W -> W8 = fp8(W / s) with s = max|W| / 448; map[name] = s."""
    out = dict(orig)
    scales = {}
    for name in block_linears(orig):
        w = orig[f"{name}.weight"].float()
        s = w.abs().max() / FP8_MAX
        out[f"{name}.weight"] = (w / s).to(torch.float8_e4m3fn)
        scales[name] = s.reshape(())
    return out, scales


_GGUF_FULL = ("time_in.", "txt_in.", "vector_in.", "img_in.", "guidance_in.", "final_layer.")


def write_gguf(orig: dict[str, torch.Tensor], path: Path, qtype_name: str) -> Path:
    """city96's way: original names, arch "hyvid", 1-D tensors and the embedders/final layer in F32, the rest
    quantised (F32 where a row does not split into whole quantisation blocks)."""
    import gguf
    import numpy as np

    qtype = getattr(gguf.GGMLQuantizationType, qtype_name)
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path), arch="hyvid")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, t in orig.items():
        data = t.float().numpy().astype(np.float32)
        keep = data.ndim == 1 or key.startswith(_GGUF_FULL) or data.shape[-1] % block != 0
        if keep:
            writer.add_tensor(key, data, raw_dtype=gguf.GGMLQuantizationType.F32)
        else:
            writer.add_tensor(key, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ---------------------------------------------------------------------------------------------- LoRAs


def make_original_lora(orig: dict[str, torch.Tensor], rank: int, seed: int) -> dict[str, torch.Tensor]:
    """A random LoRA on every block linear, in the original format (`diffusion_model.<module>.lora_A/B`)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in block_linears(orig):
        w = orig[f"{name}.weight"]
        out[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(rank, w.shape[1], generator=g) * 0.3
        out[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.3
    return out


def to_musubi(lora: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """musubi-tuner / kohya: `lora_unet_<module with _>.lora_down/up.weight` + `.alpha`; the update is scaled by
    alpha / rank, so lora_up is divided by it to keep the same update."""
    out = {}
    for key, t in lora.items():
        module = key.removeprefix("diffusion_model.").rsplit(".lora_", 1)[0]
        name = "lora_unet_" + module.replace(".", "_")
        if ".lora_A." in key:
            out[f"{name}.lora_down.weight"] = t
            out[f"{name}.alpha"] = torch.tensor(alpha)
        else:
            out[f"{name}.lora_up.weight"] = t / (alpha / t.shape[1])
    return out


def merged_weights(sd: dict[str, torch.Tensor], lora: dict[str, torch.Tensor], scale: float) -> dict[str, Any]:
    """The oracle: diffusers weights with the original-format LoRA merged in, W += scale * B @ A, computed on the
    original layout (fused modules whole) and converted back, so no LoRA conversion code is shared with hyv."""
    orig = diffusers_to_original(sd)
    for key in lora:
        if ".lora_A." in key:
            module = key.removeprefix("diffusion_model.").removesuffix(".lora_A.weight")
            b = lora[key.replace(".lora_A.", ".lora_B.")]
            orig[f"{module}.weight"] = orig[f"{module}.weight"] + scale * (b @ lora[key])
    from render.families.hunyuan_video.original import convert_dit_state_dict

    hidden = sd["x_embedder.proj.weight"].shape[0]
    return convert_dit_state_dict(orig, hidden, "oracle")


def to_diffusers_lora(lora: dict[str, torch.Tensor], hidden: int) -> dict[str, torch.Tensor]:
    """The diffusers format of an original-format LoRA: fused modules split (lora_A shared, lora_B by rows)."""
    out = {}
    for key, t in lora.items():
        if ".lora_B." not in key:
            continue
        a = lora[key.replace(".lora_B.", ".lora_A.")]
        module = key.removeprefix("diffusion_model.").removesuffix(".lora_B.weight")
        fake = {f"{module}.weight": t}
        parts = {}
        # split lora_B like a weight of the same module, through the test's own inverse table
        for kind, table in _FUSED.items():
            for name, names in table.items():
                if module.endswith("." + name):
                    h = hidden
                    sizes = [h] * len(names) if kind != "single" else [h, h, h, t.shape[0] - 3 * h]
                    parts = dict(zip(names, t.split(sizes), strict=True))
        diff = _to_diffusers_module(module)
        if parts:
            for n, b in parts.items():
                out[f"transformer.{diff}.{n}.lora_A.weight"] = a.clone()
                out[f"transformer.{diff}.{n}.lora_B.weight"] = b.contiguous()
        else:
            out[f"transformer.{diff}.lora_A.weight"] = a
            out[f"transformer.{diff}.lora_B.weight"] = fake[f"{module}.weight"]
    return out


def _to_diffusers_module(module: str) -> str:
    """Original block module -> diffusers name (for a fused module: the diffusers block prefix)."""
    m = re.match(r"(double_blocks|single_blocks)\.(\d+)\.(.+)", module)
    assert m, module
    kind, i, rest = m.groups()
    if kind == "double_blocks":
        prefix, table = f"transformer_blocks.{i}", _DOUBLE
    else:
        prefix, table = f"single_transformer_blocks.{i}", _SINGLE
    inverse = {v: k for k, v in table.items()}
    return f"{prefix}.{inverse[rest]}" if rest in inverse else prefix
