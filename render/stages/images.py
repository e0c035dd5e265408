"""The encode stage's second half for image-to-video: first frames -> "image" artifacts (the family's tensors: e.g.
SigLIP's embeddings and the VAE's latent of the frame), cached by content like embeddings.

The key hashes the image's bytes, the video size it is framed for, the image encoders' weights identity and dtype:
the same image for another size, or another image under the same name, is another artifact. Found in the work
directory or the cache, an image loads no model; otherwise the image encoders load once for every miss (after the
text encoders are freed: one stage's models at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ArtifactError, HyvError, UsageError
from render.core.hashing import key_of
from render.core.naming import artifact_stem
from render.core.placement import dtype_name
from render.core.progress import Progress
from render.core.settings import Placement
from render.files import cache
from render.files.artifacts import read_artifact, write_artifact
from render.files.images import ImageInfo, load_rgb
from render.files.manifest import StageMeter, versions
from render.files.workdir import Workdir
from render.model.family import ImageEncoding

KEY_VERSION = "img1"


@dataclass
class ImageJob:
    info: ImageInfo
    height: int  # the video's size the frame is fitted to
    width: int
    label: str
    key: str | None = None
    path: Path | None = None  # the artifact in the work directory
    status: str = "pending"  # done | cached | failed
    error: str | None = None


class ImageStage:
    """The family's image encoding for this model, the identity of its encoders, and their loader."""

    def __init__(
        self,
        encoding: ImageEncoding,
        identity: str,
        source: str,
        encoders: Callable[[Placement], Any],
        done: Callable[[], None] = lambda: None,
    ) -> None:
        self.encoding = encoding
        self.identity = identity
        self.source = source
        self.encoders = encoders
        self.done = done

    def key(self, job: ImageJob, placement: Placement) -> str:
        return key_of(
            KEY_VERSION,
            {
                "encoders": self.identity,
                "dtype": dtype_name(placement, "encode"),
                "image": job.info.sha256,
                **self.encoding.key_record(job.height, job.width),
            },
        )


def plan_image(st: ImageStage, job: ImageJob, workdir: Workdir, placement: Placement) -> None:
    job.key = st.key(job, placement)
    job.path = workdir.images(artifact_stem(job.label, job.key, f"{job.height}x{job.width}"))


def _holds(path: Path, key: str) -> bool:
    try:
        m = read_artifact(path, "image").manifest
    except ArtifactError:
        return False
    return m.get("cache_key") == key


def image_jobs(
    st: ImageStage,
    jobs: list[ImageJob],
    workdir: Workdir,
    placement: Placement,
    *,
    use_cache: bool,
    progress: Progress,
) -> None:
    """Every job's image artifact, found or made; failures are per job."""
    if not jobs:
        return
    progress.stage("image", len(jobs))
    todo: dict[str, list[ImageJob]] = {}
    for job in jobs:
        plan_image(st, job, workdir, placement)
        assert job.key is not None and job.path is not None
        entry = cache.entry_path(job.key)
        if _holds(job.path, job.key) or (use_cache and _holds(entry, job.key) and _copy(entry, job.path)):
            job.status = "cached"
            progress.item("cached", job.label)
        else:
            todo.setdefault(job.key, []).append(job)
    if not todo:
        return
    meter = StageMeter.start()
    try:
        encoders = st.encoders(placement)
        for same in todo.values():
            first = same[0]
            try:
                tensors = st.encoding.encode(encoders, load_rgb(first.info.path), first.height, first.width)
                manifest = _manifest(st, first, placement, meter)
                if use_cache:
                    write_artifact(cache.entry_path(first.key or ""), "image", tensors, manifest)
                for job in same:
                    assert job.path is not None
                    write_artifact(job.path, "image", tensors, manifest)
                    job.status = "done"
                    progress.item("done", job.label)
            except UsageError:
                raise
            except HyvError as exc:
                for job in same:
                    job.status, job.error = "failed", str(exc)
                    progress.item("failed", job.label)
    finally:
        st.done()


def _copy(src: Path, dst: Path) -> bool:
    art = read_artifact(src, "image")
    write_artifact(dst, "image", art.tensors, {**art.manifest, "cache_hit": True})
    cache.touch(src)
    return True


def _manifest(st: ImageStage, job: ImageJob, placement: Placement, meter: StageMeter) -> dict[str, Any]:
    return {
        "stage": "image",
        "image": {"path": str(job.info.path), "sha256": job.info.sha256, "width": job.info.width,
                  "height": job.info.height},  # fmt: skip
        "height": job.height,
        "width": job.width,
        "encoder": {"identity": st.identity, "model": st.source, "dtype": dtype_name(placement, "encode")},
        "cache_key": job.key,
        "versions": versions(),
        **meter.record(),
    }
