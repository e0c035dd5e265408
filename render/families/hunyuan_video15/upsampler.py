"""HunyuanVideo 1.5's super-resolution upsampler, as hyv's own small module: a causal 3-D convolution net that
refines the bilinearly resized low-resolution latents at the high resolution (it does not change the size).

Tencent's two classes (`hyvideo/models/transformers/modules/upsample.py`), with their config keys and tensor names
so that Tencent's `upsampler/<version>/` folders load as they are:
- `SRTo720pUpsampler(in_channels, out_channels, hidden_channels=64, num_blocks=6, global_residual=False)`: a conv in,
  `num_blocks` residual blocks of three convolutions (SiLU between), a conv out (+ the input when
  `global_residual`).
- `SRTo1080pUpsampler(z_channels, out_channels, block_out_channels, num_res_blocks=2, is_residual=False)`: a conv in
  plus the input repeated over the channels, levels of `num_res_blocks + 1` VAE-style residual blocks (RMS norm,
  SiLU, conv, twice; a 1x1x1 shortcut where the width changes), RMS norm, SiLU, a conv out (`is_residual` is
  stored, unused, as in Tencent's).
Every convolution is Tencent's `CausalConv3d`: kernel 3, replicate padding (spatially too), causal in time (two
copies of the first frame in front). The upsampler runs in float32, as Tencent's does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from render.core.errors import WeightsError

CLASS_720P, CLASS_1080P = "SRTo720pUpsampler", "SRTo1080pUpsampler"
WEIGHTS = "diffusion_pytorch_model.safetensors"


class CausalConv3d(nn.Module):
    """Tensor names `<name>.conv.{weight,bias}`."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.pad = (k // 2, k // 2, k // 2, k // 2, k - 1, 0)  # W, H, then T: k - 1 frames in front only
        self.conv = nn.Conv3d(cin, cout, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W]
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class RMSNorm3d(nn.Module):
    """Tencent's VAE `RMS_norm(images=False)`: over the channels, gamma [C, 1, 1, 1], no bias."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c, 1, 1, 1))
        self.scale = c**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class _Block(nn.Module):
    """`blocks.{i}.block.{0,2,4}`: conv, SiLU, conv, SiLU, conv (the residual is added by the caller)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.block = nn.Sequential(CausalConv3d(c, c), nn.SiLU(), CausalConv3d(c, c), nn.SiLU(), CausalConv3d(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        return out


class _Level(nn.Module):
    """`up.{l}.block.{j}`: the residual blocks of one width."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = RMSNorm3d(cin), CausalConv3d(cin, cout)
        self.norm2, self.conv2 = RMSNorm3d(cout), CausalConv3d(cout, cout)
        self.nin_shortcut = nn.Conv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class Upsampler720p(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int | None = None,
        num_blocks: int = 6,
        global_residual: bool = False,
    ) -> None:
        super().__init__()
        hc = hidden_channels or 64
        self.in_conv = CausalConv3d(in_channels, hc)
        self.blocks: list[_Block] = nn.ModuleList([_Block(hc) for _ in range(num_blocks)])  # type: ignore[assignment]
        self.out_conv = CausalConv3d(hc, out_channels)
        self.global_residual = global_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W] -> [B, C_out, T, H, W]
        y = self.in_conv(x)
        for b in self.blocks:
            y = y + b(y)
        y = self.out_conv(y)
        return y + x if self.global_residual and y.shape == x.shape else y


class Upsampler1080p(nn.Module):
    def __init__(
        self,
        z_channels: int,
        out_channels: int,
        block_out_channels: Any,
        num_res_blocks: int = 2,
        is_residual: bool = False,
    ) -> None:
        super().__init__()
        self.z, self.widths = z_channels, [int(c) for c in block_out_channels]
        cin = self.widths[0]
        self.conv_in = CausalConv3d(z_channels, cin)
        levels = []
        for ch in self.widths:
            blocks: list[nn.Module] = []
            for _ in range(num_res_blocks + 1):
                blocks.append(_ResBlock(cin, ch))
                cin = ch
            levels.append(_Level(blocks))
        self.up: list[_Level] = nn.ModuleList(levels)  # type: ignore[assignment]
        self.num_res_blocks = num_res_blocks
        self.norm_out, self.conv_out = RMSNorm3d(cin), CausalConv3d(cin, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W] -> [B, C_out, T, H, W]
        h = self.conv_in(z) + z.repeat_interleave(self.widths[0] // self.z, dim=1)
        for level in self.up:
            for blk in level.block:
                h = blk(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _kind(config: Mapping[str, Any]) -> str:
    if config.get("_class_name") == CLASS_1080P or "z_channels" in config:
        return CLASS_1080P
    return CLASS_720P


def build(config: Mapping[str, Any]) -> nn.Module:
    """The module of a config (Tencent's keys; `_`-keys ignored), with random weights."""
    kw = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        return Upsampler1080p(**kw) if _kind(config) == CLASS_1080P else Upsampler720p(**kw)
    except TypeError as exc:
        raise WeightsError(f"an upsampler config that is not Tencent's ({exc})") from None


def config_of(module: nn.Module, class_name: str | None = None) -> dict[str, Any]:
    """The config.json a module is saved with (Tencent's keys and class name)."""
    if isinstance(module, Upsampler1080p):
        return {"_class_name": CLASS_1080P, "z_channels": module.z, "out_channels": module.conv_out.conv.out_channels,
                "block_out_channels": module.widths, "num_res_blocks": module.num_res_blocks,
                "is_residual": False}  # fmt: skip
    assert isinstance(module, Upsampler720p)
    return {"_class_name": CLASS_720P, "in_channels": module.in_conv.conv.in_channels,
            "out_channels": module.out_conv.conv.out_channels, "hidden_channels": module.in_conv.conv.out_channels,
            "num_blocks": len(module.blocks), "global_residual": module.global_residual}  # fmt: skip


def read_config(directory: Path) -> dict[str, Any]:
    p = directory / "config.json"
    try:
        cfg = json.loads(p.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{p} is missing: an upsampler folder holds config.json and {WEIGHTS}") from None
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{p} is not valid JSON ({exc.msg})") from None
    if not isinstance(cfg, dict):
        raise WeightsError(f"{p} is not a JSON object")
    return cfg


def load(directory: Path) -> nn.Module:
    """An upsampler folder (config.json + diffusion_pytorch_model.safetensors: Tencent's and hyv's) on the CPU in
    float32, every tensor checked against the config."""
    from safetensors.torch import load_file

    path = directory / WEIGHTS
    if not path.is_file():
        raise WeightsError(f"{path} is missing")
    with torch.device("meta"):
        module = build(read_config(directory))
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        module.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{path} does not fit its config.json ({first})") from None
    return module.eval()


def save(module: nn.Module, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(directory / WEIGHTS))
    (directory / "config.json").write_text(json.dumps(config_of(module), indent=2))
