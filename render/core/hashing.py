"""Content hashes: canonical JSON keys with a version prefix, file hashes, and a cheap weights identity."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_SAMPLES = 16  # blocks read per weight file for its identity
_BLOCK = 1 << 16


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_of(prefix: str, obj: Any) -> str:
    """A versioned content key: `prefix-` + sha256 of canonical JSON. Change the prefix when the schema changes."""
    return f"{prefix}-{hashlib.sha256(canonical_json(obj).encode()).hexdigest()}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes, in name order): what a video is made of."""
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        h.update(p.name.encode() + b"\0" + bytes.fromhex(file_sha256(p).removeprefix("sha256:")))
    return "sha256:" + h.hexdigest()


def _sampled_digest(path: Path) -> str:
    """sha256 of the file size, its first and last blocks and blocks spread evenly in between.

    Reading ~1 MiB of a 16 GB file is instant; any retrained, converted or re-quantised weights change these
    bytes (a safetensors header alone does not change when values do, so the data blocks are sampled too).
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= _SAMPLES * _BLOCK * 2:
            h.update(f.read())
        else:
            for i in range(_SAMPLES + 1):
                f.seek(min(size - _BLOCK, i * (size - _BLOCK) // _SAMPLES))
                h.update(f.read(_BLOCK))
    return h.hexdigest()


def weights_identity(*component_dirs: Path) -> str:
    """Identity of the weights in one or more component directories or single weight files (configs hashed whole,
    weights sampled)."""
    h = hashlib.sha256(b"hyv-weights-v1")
    for d in component_dirs:
        files = [d] if d.is_file() else sorted(p for p in d.rglob("*") if p.is_file())
        for p in files:
            rel = str(p.relative_to(d.parent)).replace(os.sep, "/")
            if p.suffix in WEIGHT_SUFFIXES:
                digest = _sampled_digest(p)
            elif p.suffix == ".json" or p.name.startswith("tokenizer") or p.suffix in (".model", ".txt"):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                continue
            h.update(f"{rel}\0{digest}\n".encode())
    return "w1-" + h.hexdigest()[:32]
