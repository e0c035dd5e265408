"""Rewrites cached on disk like embeddings, one small JSON file per key.

Key = "rw1-" + sha256 of the canonical JSON (sorted keys, no spaces) of: model identity, mode,
instruction sha256, chat or completion, sampling settings (seed included) and the prompt. Only successful
rewrites are stored; a re-run of a batch skips them, which is what makes a batch resumable.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

KEY_VERSION = "rw1"


def cache_root() -> Path:
    env = os.environ.get("HYV_CACHE_DIR")
    if env:
        return Path(env) / "rewrites"
    import platformdirs  # only here: the vLLM venv that runs the in-process tests need not have it

    return Path(platformdirs.user_cache_dir("hyv")) / "rewrites"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    *,
    model: dict[str, Any],
    mode: str,
    instruction_sha256: str,
    chat: bool,
    sampling: dict[str, Any],
    prompt: str,
) -> str:
    payload = {
        "model": model,
        "mode": mode,
        "instruction_sha256": instruction_sha256,
        "chat": chat,
        "sampling": sampling,  # includes the seed
        "prompt": prompt,
    }
    return f"{KEY_VERSION}-" + hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _path(key: str, root: Path | None) -> Path:
    root = root if root is not None else cache_root()
    return root / key[4:6] / f"{key}.json"


def cache_get(key: str, root: Path | None = None) -> dict[str, Any] | None:
    """The stored record, or None when absent or unreadable (an unreadable entry is simply recomputed)."""
    try:
        rec = json.loads(_path(key, root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key else None


def cache_put(key: str, record: dict[str, Any], root: Path | None = None) -> None:
    atomic_write_text(_path(key, root), json.dumps({**record, "key": key}, ensure_ascii=False) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary name in the same directory, fsync, rename: never a half file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
