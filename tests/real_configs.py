"""The real HunyuanVideo (13B) configs, without weights, in the diffusers layout: what `hyv plan` needs. They ship
with hyv (render/families/hunyuan_video/released/: `hyv plan --model hunyuanvideo` reads them offline); this helper
copies them into a folder for the tests that need one (a model folder with configs and, for some, sparse weights).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def write_real_configs(root: Path) -> Path:
    from render.families import find_released

    released = find_released("hunyuanvideo-community/HunyuanVideo")
    assert released is not None
    shutil.copytree(released.configs, root)
    return root


def write_sparse_weights(root: Path) -> bool:
    """Full-size safetensors files for the real configs, holding headers only (sparse files: the 41 GB of tensor
    data take no disk). False, with nothing written, where the file system does not make sparse files."""
    import struct

    import torch

    from render.families.hunyuan_video import HUNYUAN_VIDEO
    from render.model.check import meta_module

    probe = root / "sparse-probe"
    with open(probe, "wb") as f:
        f.truncate(1 << 30)
    sparse = probe.stat().st_blocks * 512 < (1 << 20)
    probe.unlink()
    if not sparse:
        return False
    names = {"F16": torch.float16, "BF16": torch.bfloat16}
    for name, dt, stem in (
        ("transformer", "BF16", "diffusion_pytorch_model"),
        ("vae", "F16", "diffusion_pytorch_model"),
        ("text_encoder", "F16", "model"),
        ("text_encoder_2", "F16", "model"),
    ):
        cfg = json.loads((root / name / "config.json").read_text())
        module = meta_module(HUNYUAN_VIDEO.component_classes[name], cfg, root / name)
        header, offset = {}, 0
        for key, t in module.state_dict().items():
            n = t.numel() * names[dt].itemsize
            header[key] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(root / name / f"{stem}.safetensors", "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            f.truncate(8 + len(h) + offset)
    for tok in ("tokenizer", "tokenizer_2"):
        (root / tok).mkdir(exist_ok=True)
        (root / tok / "tokenizer_config.json").write_text("{}")
    return True


# HunyuanVideo 1.5: the DiT and VAE are diffusers' defaults of HunyuanVideo15Transformer3DModel /
# AutoencoderKLHunyuanVideo15 (the released 8.3B DiT, 54 blocks x 2048, and the 16x/4x VAE with 32 channels);
# the text encoders are Qwen2.5-VL-7B-Instruct's language model and google/byt5-small's encoder.
QWEN25_VL_7B_TEXT = {
    "model_type": "qwen2_5_vl_text",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
    "torch_dtype": "bfloat16",
}
BYT5_SMALL = {
    "model_type": "t5",
    "d_model": 1472,
    "d_ff": 3584,
    "d_kv": 64,
    "num_layers": 12,
    "num_decoder_layers": 4,
    "num_heads": 6,
    "vocab_size": 384,
    "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": True,
    "torch_dtype": "float32",
}
# The SR models (Tencent's 720p_sr_distilled / 1080p_sr_distilled, in hyv's layout): the same DiT with 98 input
# channels and MeanFlow's timestep_r embedder (what ComfyUI, LightX2V, FastVideo and Wan2GP load them as); the
# upsamplers' widths are not published: Tencent's class defaults for 720p (64 wide, 6 blocks) and an assumed
# (64, 64) x 2 residual blocks for 1080p (a few MB of weights either way).
SR_UPSAMPLERS = {
    "720p": {"_class_name": "SRTo720pUpsampler", "in_channels": 32, "out_channels": 32, "hidden_channels": 64,
             "num_blocks": 6, "global_residual": False},
    "1080p": {"_class_name": "SRTo1080pUpsampler", "z_channels": 32, "out_channels": 32,
              "block_out_channels": [64, 64], "num_res_blocks": 2, "is_residual": False},
}  # fmt: skip


def write_real_configs_15(root: Path, resolution: str = "480p", sr: bool = True) -> Path:
    """The released HunyuanVideo 1.5 T2V model of `resolution` (480p: target 640, shift 5; 720p: 960, shift 9)
    as configs only, with its SR models' configs (sr-720p/, sr-1080p/) when `sr`."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel

    target, shift = {"480p": (640, 5.0), "720p": (960, 9.0)}[resolution]

    def defaults(cls: type, **over: object) -> dict[str, object]:
        with torch.device("meta"):
            cfg = dict(cls().config)  # type: ignore[attr-defined]
        return {"_class_name": cls.__name__, **{k: v for k, v in cfg.items() if not k.startswith("_")}, **over}

    def put(path: Path, obj: dict[str, object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, default=list))

    put(root / "transformer" / "config.json",
        defaults(HunyuanVideo15Transformer3DModel, target_size=target, task_type="t2v"))  # fmt: skip
    put(root / "vae" / "config.json", defaults(AutoencoderKLHunyuanVideo15))
    put(root / "text_encoder" / "config.json", QWEN25_VL_7B_TEXT)
    put(root / "text_encoder_2" / "config.json", BYT5_SMALL)
    put(root / "scheduler" / "scheduler_config.json", {"_class_name": "FlowMatchEulerDiscreteScheduler",
                                                       "shift": shift})  # fmt: skip
    put(root / "guider" / "guider_config.json", {"_class_name": "ClassifierFreeGuidance", "guidance_scale": 6.0})
    put(root / "model_index.json", {"_class_name": "HunyuanVideo15Pipeline"})
    if sr:
        for name, (lr, hr, steps) in {"720p": (640, 960, 6), "1080p": (960, 1440, 8)}.items():
            d = root / f"sr-{name}"
            dit = defaults(HunyuanVideo15Transformer3DModel, in_channels=98, use_meanflow=True, target_size=hr,
                           task_type="t2v")  # fmt: skip
            put(d / "transformer" / "config.json", dit)
            put(d / "upsampler" / "config.json", SR_UPSAMPLERS[name])
            put(d / "sr.json", {"target": name, "lr_target": lr, "hr_target": hr, "steps": steps, "shift": 2.0,
                                "noise": 0.7, "from": f"{name}_sr_distilled"})  # fmt: skip
    return root
