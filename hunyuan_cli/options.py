"""Options shared by the stage commands. Defaults come from render.settings (defined once there)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from render.settings import DecodeSettings, EncodeSettings, Placement, RenderSettings

_R, _E, _D = RenderSettings(), EncodeSettings(), DecodeSettings()

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model directory (diffusers layout) or hub id. Default: $HYV_MODEL, else the "
        "bundled demo model.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (cuda when present, else cpu), cpu, cuda, cuda:N.")
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="auto (GPU: text encoders fp16, DiT bf16, VAE fp16; CPU: fp32), float32, float16, bfloat16.",
    ),
]
PromptsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--prompts",
        help="A .txt (a prompt a line), .jsonl or .csv (a `prompt` column) file.",
        show_default=False,
    ),
]
FramesOpt = Annotated[
    int | None,
    typer.Option(
        "--frames", help=f"Number of frames, 4k+1 [default: {_R.frames}, or the model's].", show_default=False
    ),
]
HeightOpt = Annotated[
    int | None, typer.Option("--height", help=f"Multiple of 16 [default: {_R.height}].", show_default=False)
]
WidthOpt = Annotated[
    int | None, typer.Option("--width", help=f"Multiple of 16 [default: {_R.width}].", show_default=False)
]
SizeOpt = Annotated[
    str | None,
    typer.Option("--size", help="Resolution preset: 720p or 540p (with --aspect).", show_default=False),
]
AspectOpt = Annotated[
    str | None,
    typer.Option("--aspect", help="With --size: 16:9 (default), 9:16, 4:3, 3:4 or 1:1.", show_default=False),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        "--steps", help=f"Denoising steps [default: {_R.steps}, or the model's].", show_default=False
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the first video; video i uses seed + i.")]
NumVideosOpt = Annotated[int, typer.Option("--num-videos", help="Videos per prompt.")]
GuidanceOpt = Annotated[
    float | None,
    typer.Option(
        "--guidance",
        help=f"Embedded (distilled) guidance scale [default: {_R.guidance}].",
        show_default=False,
    ),
]
ShiftOpt = Annotated[
    float | None,
    typer.Option(
        "--shift", help=f"Flow shift of the sigma schedule [default: {_R.shift}].", show_default=False
    ),
]
CfgOpt = Annotated[
    float,
    typer.Option(
        "--cfg-scale",
        help="True classifier-free guidance (1.0 = off; > 1 runs "
        "the DiT twice a step with the negative prompt).",
    ),
]
NegOpt = Annotated[
    str | None,
    typer.Option(
        "--neg-prompt", help="Negative prompt for --cfg-scale > 1 [default: upstream's].", show_default=False
    ),
]
SaveEveryOpt = Annotated[
    int, typer.Option("--save-every", help="Keep a resumable checkpoint every K steps (0: off).")
]
StopAtOpt = Annotated[
    int | None,
    typer.Option(
        "--stop-at",
        help="Render only the first N steps (a preview); continue later with --resume.",
        show_default=False,
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue interrupted or --stop-at renders from their last checkpoint."),
]
FpsOpt = Annotated[
    int | None,
    typer.Option("--fps", help=f"Frames per second of the mp4 [default: {_D.fps}].", show_default=False),
]
FormatOpt = Annotated[str, typer.Option("--format", help="mp4 (H.264, yuv420p) or png (a folder of frames).")]
TilingOpt = Annotated[
    bool, typer.Option("--tiling/--no-tiling", help="VAE tiling (acts on videos larger than one tile).")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the embedding cache.")]
TextLenOpt = Annotated[
    int | None,
    typer.Option(
        "--text-len", help=f"Llama tokens kept per prompt [default: {_E.text_len}].", show_default=False
    ),
]

DEFAULT_DEVICE = Placement().device
DEFAULT_DTYPE = Placement().dtype


def resolve_size(
    size: str | None, aspect: str | None, height: int | None, width: int | None
) -> tuple[int, int]:
    from render.errors import SettingsError
    from render.settings import size_from_preset

    if size is None and aspect is not None:
        raise SettingsError("--aspect goes with --size (720p or 540p); or give --height and --width")
    if size is not None:
        if height is not None or width is not None:
            raise SettingsError("give either --size/--aspect or --height/--width, not both")
        return size_from_preset(size, aspect or "16:9")
    return (height if height is not None else _R.height, width if width is not None else _R.width)


R, E, D = _R, _E, _D
