"""The work directory: every path hyv writes under it is named here, and nowhere else.

    embeddings/<stem>.safetensors            text embeddings of a prompt (a copy of the cache entry)
    images/<stem>.safetensors                a first frame's conditions (image-to-video; a copy of the cache entry)
    negative-embeddings/<stem>.safetensors   embeddings of negative prompts (true CFG)
    latents/<stem>.safetensors               final latents of one (prompt, seed)
    latents/<stem>.preview.safetensors       at --stop-at: the predicted clean latents, decodable
    latents/.checkpoints/<stem>.safetensors  the last resumable checkpoint of a render
    videos/<stem>.mp4 (+ .mp4.json)          the video and its manifest (or videos/<stem>/ of PNG frames)
    .locks/<name>.lock                       held while a process renders or decodes an item
    .index/<key>.json                        which video a run of one (item, seed) made (render.run.runindex), or
                                             which artifact a stage command made (render.run.stageindex)
    .notices/<name>                          a one-time notice was given here (the demo model's)

Hidden names (checkpoints, locks, temporary files) stay out of the way of `latents/*.safetensors` globs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".safetensors"
PREVIEW_SUFFIX = ".preview.safetensors"


@dataclass(frozen=True)
class Workdir:
    root: Path

    def check_writable(self) -> None:
        """A UsageError, before any work, unless the work directory is (or can be made) a writable directory."""
        from render.core.errors import UsageError

        problem = writable_dir_problem(self.root)
        if problem is not None:
            raise UsageError(f"--workdir {self.root} {problem}; give a writable directory")

    def embeddings(self, stem: str, negative: bool = False) -> Path:
        folder = "negative-embeddings" if negative else "embeddings"
        return self.root / folder / f"{stem}{SUFFIX}"

    def images(self, stem: str) -> Path:
        return self.root / "images" / f"{stem}{SUFFIX}"

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

    def index(self, key: str) -> Path:
        return self.root / ".index" / f"{key}.json"

    def noticed(self, name: str) -> bool:
        """Whether the one-time notice `name` was given for this work directory already."""
        return (self.root / ".notices" / name).exists()

    def mark_noticed(self, name: str) -> None:
        """Remember that the notice `name` was given, in a work directory that exists (a command that made
        nothing leaves no folder behind for it)."""
        if self.root.is_dir():
            from render.core.fsutil import write_text_atomic

            write_text_atomic(self.root / ".notices" / name, "")

    def lock(self, name: str) -> Path:
        d = self.root / ".locks"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{name}.lock"

    @contextlib.contextmanager
    def item_lock(self, name: str, *, wait: bool) -> Iterator[bool]:
        """Hold the lock of an item; yields False at once (holding nothing) when `wait` is off and another
        process holds it. The lock file is removed after use (see `_flock`)."""
        try:
            import fcntl  # noqa: F401
        except ImportError:  # not POSIX: filelock's lock, whose file stays
            with _filelock(self.lock(name), wait) as held:
                yield held
            return
        with _flock(self.lock(name), wait) as held:
            yield held


def writable_dir_problem(d: Path) -> str | None:
    """Why `d` cannot be used as a writable directory, or None when it can. The check makes what is missing of it
    and removes that again: a command that then fails on its input leaves no empty folder behind (the first
    artifact written makes the folders it needs)."""
    import tempfile

    if d.exists() and not d.is_dir():
        return "is not a directory"
    missing: list[Path] = []  # the folders this check makes, deepest first
    p = d
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".hyv-write-test-"):
            pass
    except NotADirectoryError:
        return "is inside something that is not a directory"
    except OSError as exc:
        return f"is not writable ({exc.strerror or type(exc).__name__})"
    finally:
        for m in missing:
            try:
                m.rmdir()
            except OSError:  # not made here after all, or something was put in it meanwhile
                break
    return None


@contextlib.contextmanager
def _flock(path: Path, wait: bool) -> Iterator[bool]:
    """An flock on `path`, removed when released. The holder unlinks the file before it unlocks, so a process
    that was waiting on the old file finds, once it has the lock, that the path is gone or is another file, and
    starts again on the path as it is now: two processes never hold the lock of one name at once."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def _filelock(path: Path, wait: bool) -> Iterator[bool]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


STALE = 15 * 60  # seconds: a temporary file this old whose writer is gone is a leftover
ABANDONED = 24 * 3600  # seconds: one this old is a leftover whoever wrote it


def leftovers(root: Path) -> list[Path]:
    """What killed runs left in a work directory: temporary files whose writer (the pid in their name) is no
    longer running on this machine and that are older than 15 minutes (or any older than a day: a writer on
    another machine), and lock files nobody holds. Checkpoints are kept: they are how a render resumes."""
    import re
    import time

    from render.core.fsutil import TMP_MARK

    found: list[Path] = []
    now = time.time()
    pattern = re.compile(re.escape(TMP_MARK) + r"(\d+)-")
    for p in root.rglob(f"*{TMP_MARK}*"):
        m = pattern.search(p.name)
        age = now - p.lstat().st_mtime
        if m is None or age > ABANDONED or (age > STALE and not _running(int(m.group(1)))):
            found.append(p)
    locks = root / ".locks"
    if locks.is_dir():
        found += [p for p in locks.glob("*.lock") if not _held(p)]
    return found


def _held(lock: Path) -> bool:
    """Whether a process holds this lock file now (checked without removing it)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(paths: list[Path]) -> None:
    """Remove what `leftovers` found; a lock file only by taking it (so that no holder loses it)."""
    import shutil

    for p in paths:
        if p.parent.name == ".locks" and p.suffix == ".lock":
            with _flock(p, wait=False):
                pass
        elif p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
