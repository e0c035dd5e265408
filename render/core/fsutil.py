"""Atomic writes: a temporary name in the same directory, fsync, rename. A crash never leaves a partial file
under a final name."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".partial-"


def tmp_path_for(final: Path) -> Path:
    """A hidden temporary sibling of `final` that keeps its suffix (ffmpeg picks the container from it); hidden,
    so that `dir/*.safetensors` never matches the leftover of a killed process."""
    return final.with_name(f".{final.stem}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{final.suffix}")


def fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(p: Path) -> None:
    with open(p, "rb+") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


@contextlib.contextmanager
def atomic_target(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it, give it the mode a new file gets here (some writers
    create 0600 files), and rename it to `final`; on failure remove it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(final)
    try:
        yield tmp
        if tmp.is_dir():
            for p in tmp.iterdir():
                fsync_file(p)
                p.chmod(0o666 & ~UMASK)
            tmp.chmod(0o777 & ~UMASK)
            if final.exists():
                shutil.rmtree(final)
        else:
            fsync_file(tmp)
            tmp.chmod(0o666 & ~UMASK)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON for a manifest: strict (NaN or Infinity is an error, never invalid JSON on disk)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=indent)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_target(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_leftovers(final: Path) -> None:
    """Remove temporary files a killed writer of `final` left behind. Call it only while holding the lock that
    keeps every other writer of `final` away (then every temporary file of it is a leftover)."""
    if final.parent.is_dir():
        for p in final.parent.glob(f".{final.stem}{TMP_MARK}*{final.suffix}"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
