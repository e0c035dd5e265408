"""Sharded safetensors written one shard at a time: peak memory is one shard, whatever the model's size (tensors
come from memory-mapped sources and are copied only into the shard being written)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_shard_size(size: str | int) -> int:
    if isinstance(size, int):
        return size
    for unit, mult in _UNITS.items():
        if size.upper().endswith(unit):
            return int(float(size[: -len(unit)]) * mult)
    return int(size)


def write_shards(tensors: Iterable[tuple[str, Any]], out: Path, stem: str, max_shard_size: str | int) -> list[Path]:
    """Write `stem.safetensors`, or `stem-0000K-of-0000N.safetensors` + `stem.safetensors.index.json` when more
    than one shard is needed (the naming transformers and diffusers load)."""
    from safetensors.torch import save_file

    limit = parse_shard_size(max_shard_size)
    shards: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    size = 0
    written: list[Path] = []

    def flush() -> None:
        nonlocal current, size
        if current:
            path = out / f"{stem}.part{len(written):05d}.safetensors"
            save_file(current, str(path), metadata={"format": "pt"})
            written.append(path)
            shards.append({k: None for k in current})
            current, size = {}, 0

    for name, t in tensors:
        n = t.numel() * t.element_size()
        if current and size + n > limit:
            flush()
        t = t.detach().to("cpu").contiguous()
        if t.untyped_storage().nbytes() != n:  # a view into a larger tensor (a split): its own storage
            t = t.clone()
        current[name] = t
        size += n
    flush()
    if len(written) == 1:
        final = out / f"{stem}.safetensors"
        written[0].rename(final)
        return [final]
    total = len(written)
    weight_map: dict[str, str] = {}
    finals = []
    for i, (path, names) in enumerate(zip(written, shards, strict=True), start=1):
        final = out / f"{stem}-{i:05d}-of-{total:05d}.safetensors"
        path.rename(final)
        finals.append(final)
        weight_map.update(dict.fromkeys(names, final.name))
    total_size = sum(p.stat().st_size for p in finals)
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (out / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return finals
