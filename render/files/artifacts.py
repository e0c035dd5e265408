"""hyv's artifacts: safetensors files whose metadata holds a kind, a format version and a JSON manifest.

Kinds and tensors:
- "embeddings": the model family's tensors (`Family.embedding_tensors`, named as its diffusers pipeline takes them;
  HunyuanVideo: prompt_embeds [1, L, D], prompt_attention_mask [1, L] (int64), pooled_prompt_embeds [1, P])
- "image":      a first frame's conditions for image-to-video (the family's: HunyuanVideo 1.5: image_embeds
  [1, 729, 1152] from SigLIP, image_latents [1, C, 1, H/s, W/s] from the VAE)
- "latents":    latents [1, C, T_lat, H/s, W/s], as the DiT leaves them (not divided by the VAE scaling factor)
- "checkpoint": latents [1, C, T_lat, H/s, W/s] part-way through a schedule, and its step index in the manifest
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ArtifactError
from render.core.fsutil import atomic_target, dumps
from render.core.hashing import file_sha256

FORMAT = "1"
KINDS: dict[str, tuple[str, ...]] = {
    "embeddings": (),  # the family's (checked where the family is known: render.stages)
    "image": (),  # a first frame's conditions: the family's (e.g. image_embeds, image_latents)
    "latents": ("latents",),
    "checkpoint": ("latents",),
}


@dataclass(frozen=True)
class Artifact:
    path: Path
    kind: str
    manifest: dict[str, Any]
    tensors: dict[str, Any]  # name -> torch.Tensor

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)


def write_artifact(path: Path, kind: str, tensors: dict[str, Any], manifest: dict[str, Any]) -> Path:
    """Write atomically: a crash leaves nothing under `path`."""
    from safetensors.torch import save_file

    missing = [k for k in KINDS[kind] if k not in tensors]
    if missing:
        raise ValueError(f"{kind} artifact without {missing}")
    meta = {"hyv_kind": kind, "hyv_format": FORMAT, "manifest": dumps(manifest)}
    with atomic_target(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=meta)
    return path


MAX_HEADER = 100 << 20  # bytes: safetensors' own limit on a header


def read_header(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensor entries) of a safetensors file, read in plain Python (no torch: `hyv inspect` and the
    checks of a no-op re-run stay instant); an ArtifactError unless the file is whole: the tensors' data must end
    exactly where the file ends (a truncated file does not)."""
    if not path.exists():
        raise ArtifactError(f"{path} does not exist")
    if path.is_dir():
        raise ArtifactError(f"{path} is a directory, not a hyv artifact file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 2 <= n <= min(MAX_HEADER, size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        ends = [int(t["data_offsets"][1]) for t in header.values()]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ArtifactError(
            f"{path} is not a readable safetensors file ({_short(exc)}); it may be truncated: re-create it"
        ) from None
    if 8 + n + max(ends, default=0) != size:
        raise ArtifactError(
            f"{path} is truncated or corrupt ({size} bytes, its header describes {8 + n + max(ends, default=0)}); "
            "re-create it"
        )
    return (meta if isinstance(meta, dict) else {}), header


def read_manifest(path: Path, kind: str | None = None) -> tuple[str, dict[str, Any]]:
    """(kind, manifest) from the header; raise ArtifactError for anything that is not a whole hyv artifact."""
    meta, tensors = read_header(path)
    found = meta.get("hyv_kind")
    if found not in KINDS or "manifest" not in meta:
        raise ArtifactError(f"{path} is a safetensors file but not a hyv artifact (no hyv metadata)")
    if meta.get("hyv_format") != FORMAT:
        raise ArtifactError(
            f"{path} has artifact format {meta.get('hyv_format')!r}; this hyv reads format {FORMAT}"
        )
    if kind is not None and found != kind:
        raise ArtifactError(f"{path} holds {found}, but {kind} are needed here")
    lacking = [k for k in KINDS[found] if k not in tensors]
    if lacking:
        raise ArtifactError(f"{path} lacks the tensors {lacking}; re-create it")
    try:
        manifest = json.loads(meta["manifest"])
    except json.JSONDecodeError:
        raise ArtifactError(f"{path} has a corrupt manifest; re-create it") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a hyv artifact (its manifest is not a JSON object)")
    return found, manifest


def read_artifact(path: Path, kind: str) -> Artifact:
    """Load a whole artifact, checking its kind and that every byte of its tensors is present."""
    from safetensors.torch import load_file

    found, manifest = read_manifest(path, kind)
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise ArtifactError(f"{path} is truncated or corrupt ({_short(exc)}); re-create it") from None
    # Copies in memory of torch's own (64-byte aligned): safetensors' tensors sit where the file's bytes landed,
    # and SIMD kernels round differently on unaligned inputs, so the same file could give a different render.
    tensors = {k: v.clone() for k, v in tensors.items()}
    return Artifact(path=path, kind=found, manifest=manifest, tensors=tensors)


def is_valid(path: Path, kind: str) -> bool:
    """A final artifact of this kind that exists and is whole: its header and size are checked, not assumed
    (what safetensors itself checks when it loads the tensors)."""
    try:
        read_manifest(path, kind)
    except ArtifactError:
        return False
    return True


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]


def read_any_manifest(path: Path) -> tuple[str, dict[str, Any]]:
    """(kind, manifest) of any hyv output: an artifact, or a video (mp4 or PNG folder) with its manifest beside
    it, or that manifest itself; ArtifactError for anything else."""
    from render.files.workdir import Workdir

    if path.suffix == ".safetensors" and not path.is_dir():
        return read_manifest(path)
    side = path if path.suffix == ".json" else Workdir.sidecar(path)
    if not path.exists():
        raise ArtifactError(f"{path} does not exist")
    if not side.is_file():
        raise ArtifactError(f"{path} is not a hyv artifact (no manifest beside it: {side.name})")
    try:
        manifest = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(f"{side} is not valid JSON; it is not a hyv manifest") from None
    if not isinstance(manifest, dict) or manifest.get("stage") != "decode":
        raise ArtifactError(f"{side} is not a hyv video manifest")
    return "video", manifest
