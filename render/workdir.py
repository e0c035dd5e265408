"""The work directory: every path hyv writes under it is named here, and nowhere else.

    embeddings/<stem>.safetensors            text embeddings of a prompt (a copy of the cache entry)
    negative-embeddings/<stem>.safetensors   embeddings of negative prompts (true CFG)
    latents/<stem>.safetensors               final latents of one (prompt, seed)
    latents/<stem>.preview.safetensors       at --stop-at: the predicted clean latents, decodable
    latents/.checkpoints/<stem>.safetensors  the last resumable checkpoint of a render
    videos/<stem>.mp4 (+ .mp4.json)          the video and its manifest (or videos/<stem>/ of PNG frames)
    .locks/<name>.lock                       held while a process renders or decodes an item

Hidden names (checkpoints, locks, temporary files) stay out of the way of `latents/*.safetensors` globs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".safetensors"
PREVIEW_SUFFIX = ".preview.safetensors"


@dataclass(frozen=True)
class Workdir:
    root: Path

    def embeddings(self, stem: str, negative: bool = False) -> Path:
        folder = "negative-embeddings" if negative else "embeddings"
        return self.root / folder / f"{stem}{SUFFIX}"

    def latents(self, stem: str) -> Path:
        return self.root / "latents" / f"{stem}{SUFFIX}"

    @staticmethod
    def checkpoint(latents: Path) -> Path:
        """The checkpoint of a render whose final latents go to `latents`."""
        return latents.parent / ".checkpoints" / latents.name

    @staticmethod
    def preview(latents: Path) -> Path:
        return latents.with_name(latents.name.removesuffix(SUFFIX) + PREVIEW_SUFFIX)

    def video(self, latents: Path, fmt: str) -> Path:
        """The video made from a latents file: named after it, mp4 or a folder of PNG frames."""
        stem = latents.name.removesuffix(SUFFIX)
        return self.root / "videos" / (f"{stem}.mp4" if fmt == "mp4" else stem)

    @staticmethod
    def sidecar(video: Path) -> Path:
        """The manifest written beside a video."""
        return video.with_name(video.name + ".json")

    def lock(self, name: str) -> Path:
        """Lock files are left in place: deleting one that another process waits on would let a third process
        take it at the same time."""
        d = self.root / ".locks"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{name}.lock"

    @contextlib.contextmanager
    def item_lock(self, name: str, *, wait: bool) -> Iterator[bool]:
        """Hold the lock of an item; yields False at once (holding nothing) when `wait` is off and another
        process holds it."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock(name)))
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
