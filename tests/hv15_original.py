"""A HunyuanVideo 1.5 model in Tencent's original layout, written from a diffusers-layout folder (tests/hv15_models.py)
with the same weights: the DiT and the VAE under Tencent's tensor names and config keys (the names written here by
an inverse of diffusers' converter's mapping, independently of hyv's reader), Qwen2.5-VL whole under
text_encoder/llm, byt5-small and Glyph-SDXL-v2 (its colour/font tables and byt5_model.pt) under text_encoder/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_FIXED = {
    "time_embed.timestep_embedder.linear_1": "time_in.mlp.0",
    "time_embed.timestep_embedder.linear_2": "time_in.mlp.2",
    "time_embed.timestep_embedder_r.linear_1": "time_r_in.mlp.0",
    "time_embed.timestep_embedder_r.linear_2": "time_r_in.mlp.2",
    "context_embedder.time_text_embed.timestep_embedder.linear_1": "txt_in.t_embedder.mlp.0",
    "context_embedder.time_text_embed.timestep_embedder.linear_2": "txt_in.t_embedder.mlp.2",
    "context_embedder.time_text_embed.text_embedder.linear_1": "txt_in.c_embedder.linear_1",
    "context_embedder.time_text_embed.text_embedder.linear_2": "txt_in.c_embedder.linear_2",
    "context_embedder.proj_in": "txt_in.input_embedder",
    "context_embedder_2.norm": "byt5_in.layernorm",
    "context_embedder_2.linear_1": "byt5_in.fc1",
    "context_embedder_2.linear_2": "byt5_in.fc2",
    "context_embedder_2.linear_3": "byt5_in.fc3",
    "image_embedder.norm_in": "vision_in.proj.0",
    "image_embedder.linear_1": "vision_in.proj.1",
    "image_embedder.linear_2": "vision_in.proj.3",
    "image_embedder.norm_out": "vision_in.proj.4",
    "x_embedder.proj": "img_in.proj",
    "cond_type_embed": "cond_type_embedding",
    "norm_out.linear": "final_layer.adaLN_modulation.1",
    "proj_out": "final_layer.linear",
}
_REFINER = {"norm1": "norm1", "norm2": "norm2", "attn.to_out.0": "self_attn_proj", "ff.net.0.proj": "mlp.fc1",
            "ff.net.2": "mlp.fc2", "norm_out.linear": "adaLN_modulation.1"}  # fmt: skip
_BLOCK = {
    "norm1.linear": "img_mod.linear", "norm1_context.linear": "txt_mod.linear",
    "attn.to_q": "img_attn_q", "attn.to_k": "img_attn_k", "attn.to_v": "img_attn_v",
    "attn.norm_q": "img_attn_q_norm", "attn.norm_k": "img_attn_k_norm", "attn.to_out.0": "img_attn_proj",
    "attn.add_q_proj": "txt_attn_q", "attn.add_k_proj": "txt_attn_k", "attn.add_v_proj": "txt_attn_v",
    "attn.norm_added_q": "txt_attn_q_norm", "attn.norm_added_k": "txt_attn_k_norm", "attn.to_add_out": "txt_attn_proj",
    "ff.net.0.proj": "img_mlp.fc1", "ff.net.2": "img_mlp.fc2",
    "ff_context.net.0.proj": "txt_mlp.fc1", "ff_context.net.2": "txt_mlp.fc2",
}  # fmt: skip
_VAE = (
    (r"^(encoder|decoder)\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"\1.down.\2.block.\3."),
    (r"^(encoder|decoder)\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r"\1.up.\2.block.\3."),
    (r"^(encoder|decoder)\.down_blocks\.(\d+)\.downsamplers\.0\.", r"\1.down.\2.downsample."),
    (r"^(encoder|decoder)\.up_blocks\.(\d+)\.upsamplers\.0\.", r"\1.up.\2.upsample."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.mid.block_1."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.mid.block_2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_([qkv])\.", r"\1.mid.attn_1.\2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.", r"\1.mid.attn_1."),
)
COLOURS = {"white": 0, "black": 1, "red": 2}
FONTS = {"en-Montserrat-Regular": 0, "zh-SourceHanSansCN-Regular": 0}


def dit_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in sd.items():
        module, param = key.rsplit(".", 1)
        if module.startswith("transformer_blocks."):
            _, i, rest = module.split(".", 2)
            out[f"double_blocks.{i}.{_BLOCK[rest]}.{param}"] = value
        elif module.startswith("context_embedder.token_refiner.refiner_blocks."):
            i, rest = module.removeprefix("context_embedder.token_refiner.refiner_blocks.").split(".", 1)
            prefix = f"txt_in.individual_token_refiner.blocks.{i}."
            if rest in ("attn.to_q", "attn.to_k", "attn.to_v"):
                qkv.setdefault((prefix, param), {})[rest[-1]] = value
            else:
                out[f"{prefix}{_REFINER[rest]}.{param}"] = value
        else:
            if module == "norm_out.linear":  # diffusers (scale, shift) -> Tencent (shift, scale)
                scale, shift = value.chunk(2, dim=0)
                value = torch.cat([shift, scale], dim=0)
            out[f"{_FIXED[module]}.{param}"] = value
    for (prefix, param), parts in qkv.items():
        out[f"{prefix}self_attn_qkv.{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def vae_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in sd.items():
        for pattern, repl in _VAE:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def write(src: Path, root: Path, variant: str = "480p_t2v") -> Path:
    """`src` (a diffusers-layout 1.5 folder) in Tencent's layout under `root` (returned: the ckpts folder)."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    d = json.loads((src / "transformer" / "config.json").read_text())
    heads, head_dim = d["num_attention_heads"], d["attention_head_dim"]
    t_cfg = {
        "_class_name": "HunyuanVideo_1_5_DiffusionTransformer", "patch_size": [1, 1, 1],
        "in_channels": (d["in_channels"] - 1) // 2, "concat_condition": True, "out_channels": d["out_channels"],
        "hidden_size": heads * head_dim, "heads_num": heads, "mlp_width_ratio": d["mlp_ratio"],
        "mm_double_blocks_depth": d["num_layers"], "mm_single_blocks_depth": 0, "rope_dim_list": d["rope_axes_dim"],
        "qk_norm": True, "qk_norm_type": "rms", "guidance_embed": False, "use_meanflow": d["use_meanflow"],
        "text_states_dim": d["text_embed_dim"], "rope_theta": d["rope_theta"],
        "vision_states_dim": d["image_embed_dim"],
        "ideal_resolution": "480p", "ideal_task": "i2v" if "_i2v" in variant else "t2v",
    }  # fmt: skip
    dit = root / "transformer" / variant
    _json(dit / "config.json", t_cfg)
    sd = load_file(str(src / "transformer" / "diffusion_pytorch_model.safetensors"))
    tensors = {k: v.contiguous() for k, v in dit_to_original(sd).items()}
    save_file(tensors, str(dit / "diffusion_pytorch_model.safetensors"))
    v = json.loads((src / "vae" / "config.json").read_text())
    _json(root / "vae" / "config.json", {
        "_class_name": "AutoencoderKLConv3D", "in_channels": v["in_channels"], "out_channels": v["out_channels"],
        "latent_channels": v["latent_channels"], "block_out_channels": v["block_out_channels"],
        "layers_per_block": v["layers_per_block"], "ffactor_spatial": v["spatial_compression_ratio"],
        "ffactor_temporal": v["temporal_compression_ratio"], "sample_size": 256, "sample_tsize": 64,
        "scaling_factor": v["scaling_factor"], "shift_factor": None,
        "downsample_match_channel": v["downsample_match_channel"],
        "upsample_match_channel": v["upsample_match_channel"],
    })  # fmt: skip
    vae = load_file(str(src / "vae" / "diffusion_pytorch_model.safetensors"))
    save_file(vae_to_original(vae), str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    _json(root / "scheduler" / "scheduler_config.json", {"_class_name": "FlowMatchDiscreteScheduler", "shift": 7.0})
    # Qwen2.5-VL whole: a vision tower beside the language model, whose weights are the diffusers folder's
    text = json.loads((src / "text_encoder" / "config.json").read_text())
    vl_cfg = Qwen2_5_VLConfig(
        text_config={k: v for k, v in text.items() if not k.startswith("_")},
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": text["hidden_size"], "fullatt_block_indexes": [0]},  # fmt: skip
    )
    vl: Any = Qwen2_5_VLForConditionalGeneration(vl_cfg)
    lm = load_file(str(src / "text_encoder" / "model.safetensors"))
    vl.model.language_model.load_state_dict(lm, strict=True)
    llm = root / "text_encoder" / "llm"
    vl.save_pretrained(str(llm))
    AutoTokenizer.from_pretrained(src / "tokenizer").save_pretrained(str(llm))
    # byt5-small (its base vocabulary) + Glyph-SDXL-v2 (the tokens it adds and the encoder's weights)
    from transformers import T5EncoderModel

    t5: Any = T5EncoderModel.from_pretrained(src / "text_encoder_2")
    byt5 = root / "text_encoder" / "byt5-small"
    t5.save_pretrained(str(byt5))
    AutoTokenizer.from_pretrained(src / "tokenizer_2").save_pretrained(str(byt5))
    glyph = root / "text_encoder" / "Glyph-SDXL-v2"
    _json(glyph / "assets" / "color_idx.json", COLOURS)
    _json(glyph / "assets" / "multilingual_10-lang_idx.json", FONTS)
    extra = len(COLOURS) + len(FONTS)
    t5.resize_token_embeddings(t5.config.vocab_size + extra, mean_resizing=False)
    encoder = {k.removeprefix("encoder."): v for k, v in t5.state_dict().items() if k.startswith("encoder.")}
    (glyph / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {f"module.text_tower.encoder.{k}": v for k, v in encoder.items()}},
               glyph / "checkpoints" / "byt5_model.pt")  # fmt: skip
    return root
