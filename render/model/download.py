"""`hyv models download DIR`: the weights from the hub through huggingface_hub, sizes listed before anything is
fetched, resumable (an interrupted download continues where it stopped when the command is run again).

- diffusers layout: `hunyuanvideo-community/HunyuanVideo` as it is.
- original layout: Tencent's DiT (or, with --fp8, its fp8 DiT and scale map) and VAE from `tencent/HunyuanVideo`,
  the LLaVA model `xtuner/llava-llama-3-8b-v1_1-transformers` (its language model is then extracted into
  `text_encoder/` on the CPU: render.model.text_encoder) and CLIP `openai/clip-vit-large-patch14` as
  `text_encoder_2/`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from render.core.errors import ModelNotFoundError, UsageError
from render.model.layout import DIT_NAME, T2V


@dataclass(frozen=True)
class Fetch:
    repo: str
    subdir: str  # under DIR ("" for DIR itself)
    patterns: tuple[str, ...] | None  # None: the whole repository


LLAVA = "llava-llama-3-8b-v1_1-transformers"


def fetch_list(layout: str, fp8: bool) -> list[Fetch]:
    if layout == "diffusers":
        if fp8:
            raise UsageError(
                "Tencent's fp8 DiT comes in the original layout: use --layout original --fp8, or keep the diffusers "
                "layout and pass --fp8 at run time (fp8 storage of the bf16 weights)"
            )
        return [Fetch("hunyuanvideo-community/HunyuanVideo", "", None)]
    if layout != "original":
        raise UsageError(f"unknown layout {layout!r}; use diffusers or original")
    dit = f"{T2V}/transformers/{DIT_NAME}"
    dits = (f"{dit}_fp8.pt", f"{dit}_fp8_map.pt") if fp8 else (f"{dit}.pt",)
    return [
        Fetch("tencent/HunyuanVideo", "", (*dits, f"{T2V}/vae/*")),
        Fetch("xtuner/llava-llama-3-8b-v1_1-transformers", LLAVA, None),
        Fetch("openai/clip-vit-large-patch14", "text_encoder_2", ("*.json", "*.txt", "model.safetensors")),
    ]


def planned_sizes(fetches: list[Fetch]) -> list[tuple[Fetch, int, int]]:
    """(fetch, files, bytes) of each repository's selection, from the hub's file metadata (nothing downloaded)."""
    from huggingface_hub import HfApi

    out = []
    for f in fetches:
        try:
            info = HfApi().model_info(f.repo, files_metadata=True)
        except Exception as exc:  # offline, no such repo, gated: one clear line
            reason = " ".join(str(exc).split())[:160]
            raise ModelNotFoundError(
                f"cannot reach {f.repo} on the hub ({type(exc).__name__}: {reason}); hyv models download needs a "
                "network connection"
            ) from None
        files = [s for s in info.siblings or [] if _selected(s.rfilename, f.patterns)]
        out.append((f, len(files), sum(s.size or 0 for s in files)))
    return out


def _selected(name: str, patterns: tuple[str, ...] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)


def download(directory: Path, fetches: list[Fetch], say: Callable[[str], None]) -> None:
    """Fetch each selection into its folder (resumable), then build the original layout's text encoder."""
    from huggingface_hub import snapshot_download

    for f in fetches:
        target = directory / f.subdir if f.subdir else directory
        say(f"fetching {f.repo} into {target}")
        try:
            snapshot_download(f.repo, local_dir=target, allow_patterns=list(f.patterns) if f.patterns else None)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:160]
            raise ModelNotFoundError(
                f"downloading {f.repo} stopped ({type(exc).__name__}: {reason}); run the same command again to "
                "continue where it stopped"
            ) from None
    if any(f.subdir == LLAVA for f in fetches):
        from render.model.text_encoder import prepare_text_encoder

        say(f"extracting the text encoder from {LLAVA} into {directory / 'text_encoder'} (CPU, streaming)")
        prepare_text_encoder(directory / LLAVA, directory / "text_encoder", force=True)
        say(f"done; {directory / LLAVA} is no longer needed and can be deleted")
