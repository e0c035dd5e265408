"""The content-addressed embedding cache.

An entry is an embeddings artifact (or a first frame's "image" artifact) stored as
`<cache>/embeddings/<key>.safetensors`, where the key is a versioned hash of everything that changes it (see
`render.stages.encode` and `render.stages.images`). Location: HYV_CACHE_DIR, else the platform's user cache
directory. Entries are written atomically; a hit is checked (read back whole) before use, and a corrupt entry is
dropped and recomputed.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core import sizes
from render.core.errors import ArtifactError, UsageError
from render.files.artifacts import read_manifest


def cache_root() -> Path:
    env = os.environ.get("HYV_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("hyv"))


def embeddings_dir() -> Path:
    return cache_root() / "embeddings"


def unusable() -> str | None:
    """Why the cache cannot be used (e.g. a read-only or not-a-directory location), or None when it can."""
    from render.files.workdir import writable_dir_problem

    problem = writable_dir_problem(embeddings_dir())
    return f"{embeddings_dir()} {problem}" if problem else None


def entry_path(key: str) -> Path:
    return embeddings_dir() / f"{key}.safetensors"


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    size: int
    mtime: float
    manifest: dict[str, Any]


def entries() -> list[Entry]:
    d = embeddings_dir()
    out: list[Entry] = []
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.safetensors")):
        if ".partial-" in p.name:
            continue
        try:
            kind, manifest = read_manifest(p)
            if kind not in ("embeddings", "image"):
                raise ArtifactError(f"{p} holds {kind}")
        except ArtifactError:
            manifest = {"invalid": True}
        st = p.stat()
        out.append(Entry(p.stem, p, st.st_size, st.st_mtime, manifest))
    return out


def find(key_or_prompt: str) -> list[Entry]:
    """Entries whose key starts with the argument, or whose prompt equals it."""
    return [
        e for e in entries() if e.key.startswith(key_or_prompt) or e.manifest.get("prompt") == key_or_prompt
    ]


def touch(path: Path) -> None:
    """Mark an entry as used now (pruning by age drops the least recently used)."""
    now = time.time()
    try:
        os.utime(path, (now, now))
    except OSError:
        pass


_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    return sizes.parse_size(text, "--max-size")


def parse_age(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*", text)
    if not m:
        raise UsageError(f"cannot read age {text!r}; write e.g. 12h, 30d or 2w")
    return float(m.group(1)) * _AGES[m.group(2)]


def prune(older_than: float | None, max_size: int | None, dry_run: bool = False) -> list[Entry]:
    """Remove entries unused for longer than `older_than` seconds, then the least recently used ones until the
    cache fits in `max_size` bytes. Returns what was (or would be) removed."""
    now = time.time()
    alive = sorted(entries(), key=lambda e: e.mtime)  # oldest use first
    removed: list[Entry] = []
    if older_than is not None:
        removed += [e for e in alive if now - e.mtime > older_than]
        alive = [e for e in alive if e not in removed]
    if max_size is not None:
        total = sum(e.size for e in alive)
        for e in list(alive):
            if total <= max_size:
                break
            removed.append(e)
            total -= e.size
    if not dry_run:
        for e in removed:
            try:
                e.path.unlink()
            except FileNotFoundError:
                pass
    # Leftovers of interrupted writes older than an hour are garbage.
    d = embeddings_dir()
    if not dry_run and d.is_dir():
        for p in d.glob("*.partial-*"):
            if now - p.stat().st_mtime > 3600:
                p.unlink(missing_ok=True)
    return removed
