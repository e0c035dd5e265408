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
