"""Stage 1: prompts -> text embeddings, cached by content (`render.files.cache`).

The encoding itself is the model family's (`TextEncoding`: templates, crops, the tensors of its embeddings artifact,
as its diffusers pipeline's encode_prompt makes them); this module does the bookkeeping: content keys, finding what
is already encoded (workdir, cache), micro-batches, manifests, per-item failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import ArtifactError, HyvError, UsageError
from render.core.hashing import key_of
from render.core.items import Outcome
from render.core.naming import artifact_stem
from render.core.placement import dtype_name
from render.core.progress import Progress
from render.core.settings import EncodeSettings, Placement
from render.files import cache
from render.files.artifacts import read_artifact, write_artifact
from render.files.manifest import StageMeter, versions
from render.files.workdir import Workdir
from render.model.family import Template, TextEncoders, TextEncoding
from render.stages.images import ImageJob

KEY_VERSION = "emb1"
RUN_FIELDS = ("source", "original_prompt")  # per-run manifest fields, kept out of the shared cache entry


@dataclass
class EncodeJob:
    prompt: str
    frames: int  # picks the template: video for frames > 1, image for 1
    settings: EncodeSettings
    out: Outcome  # receives embeddings, key, cached, status, error
    negative: bool = False  # a negative prompt: written to negative-embeddings/
    image: ImageJob | None = None  # image-to-video: the first frame's job (planned: its key and path) it goes with

    @property
    def label(self) -> str:
        return "negative" if self.negative else self.out.item.label


class TextEncoderStage:
    """The family's text encoding for this model (tokenizers and templates: cheap, cache keys need them), the
    identity of its encoders, and the loader that gives the encoders themselves (the engine loads them on the
    first cache miss)."""

    def __init__(
        self,
        text: TextEncoding,
        identity: str,
        source: str,
        encoders: Callable[[Placement], TextEncoders],
        preload: Callable[[], None] = lambda: None,
    ) -> None:
        self.text = text
        self.identity = identity
        self.source = source
        self.encoders = encoders
        self.preload = preload

    def template(self, frames: int) -> Template:
        return self.text.template(frames)

    @staticmethod
    def dtype_name(placement: Placement) -> str:
        return dtype_name(placement, "encode")

    def key(self, prompt: str, template: Template, settings: EncodeSettings, image: str | None = None) -> str:
        """The embeddings' content key; `image`: the key of the first frame they go with (image-to-video)."""
        record = {
            "encoders": self.identity,
            "dtype": self.dtype_name(settings.placement),
            **self.text.key_record(template),
            **settings.text_record(),
            "prompt": prompt,
        }
        return key_of(KEY_VERSION, {**record, "image": image} if image is not None else record)

    def encode(
        self,
        prompts: list[str],
        template: Template,
        settings: EncodeSettings,
        images: list[Path | None] | None = None,
    ) -> tuple[dict[str, Any], list[bool]]:
        """Tensors of a micro-batch (the family's, each [B, ...]) and whether each prompt was truncated; `images`:
        each prompt's first frame (a file), given to a text encoder that sees it."""
        seen = (images or [None] * len(prompts)) if self.text.sees_image else None
        return self.text.encode(self.encoders(settings.placement), prompts, template, settings, seen)


def plan_job(st: TextEncoderStage, job: EncodeJob, workdir: Workdir) -> Template:
    """Set the job's content key and workdir path; return its template."""
    t = st.template(job.frames)
    job.out.key = st.key(job.prompt, t, job.settings, job.image.key if job.image else None)
    job.out.embeddings = workdir.embeddings(artifact_stem(job.label, job.out.key), negative=job.negative)
    return t


def find_existing(job: EncodeJob, use_cache: bool, progress: Progress) -> bool:
    """Whether the job's embeddings are already in the workdir or (copied from there) in the cache. A file is
    trusted by what it records inside (its key and prompt), not by its name: one holding other embeddings is
    corrupt, and is recomputed."""
    out = job.out
    assert out.key is not None and out.embeddings is not None
    entry = cache.entry_path(out.key)
    if not _holds(out.embeddings, job, progress):
        if not (use_cache and _holds(entry, job, progress)):
            return False
        materialize(entry, out.embeddings, job)
    cache.touch(entry)
    out.status, out.cached = "cached", True
    return True


def _holds(path: Path, job: EncodeJob, progress: Progress) -> bool:
    """Whether `path` is whole embeddings of this job's key and prompt. A whole file holding other ones is
    removed, with a warning (once: it is gone after)."""
    try:
        m = read_artifact(path, "embeddings").manifest
    except ArtifactError:
        return False
    if m.get("cache_key") == job.out.key and m.get("prompt") == job.prompt:
        return True
    progress.warn(
        f"{path} holds embeddings of another prompt or settings than its name says (a corrupt "
        f"{'cache entry' if path.parent == cache.embeddings_dir() else 'file'}); it is recomputed"
    )
    path.unlink(missing_ok=True)
    return False


def encode_jobs(
    st: TextEncoderStage, jobs: list[EncodeJob], workdir: Workdir, *, use_cache: bool, progress: Progress
) -> None:
    """Encode every job whose embeddings are not found first (a batch of hits loads no text encoder at all).
    Results go into each job's outcome; failures are per item."""
    progress.stage("encode", len(jobs))
    todo: list[tuple[EncodeJob, Template]] = []
    for job in jobs:
        t = plan_job(st, job, workdir)
        if find_existing(job, use_cache, progress):
            progress.item("cached", job.prompt)
        else:
            todo.append((job, t))
    # The same prompt twice in a batch is encoded once: later copies are cache hits of the first.
    first: dict[str, EncodeJob] = {}
    dups: list[EncodeJob] = []
    unique: list[tuple[EncodeJob, Template]] = []
    for job, t in todo:
        key = job.out.key or ""
        if key in first:
            dups.append(job)
        else:
            first[key] = job
            unique.append((job, t))
    st.preload()
    meter = StageMeter.start()
    for group in _micro_batches(unique):
        try:
            _encode_group(st, group, meter, use_cache, progress)
        except UsageError:
            raise
        except HyvError as exc:
            for job, _ in group:
                job.out.fail(str(exc))
                job.out.embeddings = None
                progress.item("failed", job.prompt)
    for job in dups:
        src = first[job.out.key or ""].out
        if src.status == "failed" or src.embeddings is None:
            job.out.fail(src.error or "encoding failed")
            job.out.embeddings = None
            progress.item("failed", job.prompt)
            continue
        if job.out.embeddings != src.embeddings:
            assert job.out.embeddings is not None
            materialize(src.embeddings, job.out.embeddings, job)
        job.out.status, job.out.cached = "cached", True
        progress.item("cached", job.prompt)


def _micro_batches(
    unique: list[tuple[EncodeJob, Template]],
) -> list[list[tuple[EncodeJob, Template]]]:
    """Groups of at most batch_size jobs that share a template and settings (one encoder forward each)."""
    by: dict[tuple[str, EncodeSettings], list[tuple[EncodeJob, Template]]] = {}
    for job, t in unique:
        by.setdefault((t.name, job.settings), []).append((job, t))
    groups = []
    for (_, settings), members in by.items():
        bs = settings.batch_size
        groups += [members[i : i + bs] for i in range(0, len(members), bs)]
    return groups


def _encode_group(
    st: TextEncoderStage,
    group: list[tuple[EncodeJob, Template]],
    meter: StageMeter,
    use_cache: bool,
    progress: Progress,
) -> None:
    template, settings = group[0][1], group[0][0].settings
    images = [job.image.info.path if job.image else None for job, _ in group]
    tensors, truncated = st.encode([job.prompt for job, _ in group], template, settings, images)
    enc = st.encoders(settings.placement)
    for b, (job, _) in enumerate(group):
        one = {k: v[b : b + 1] for k, v in tensors.items()}
        if truncated[b]:
            progress.warn(
                f"{job.out.item.source or job.prompt[:40]}: prompt longer than {settings.text_len} tokens "
                "was truncated"
            )
        manifest = {
            "stage": "encode",
            "prompt": job.prompt,
            "original_prompt": None if job.negative else job.out.item.original_prompt,
            "source": "negative prompt" if job.negative else job.out.item.source,
            "template": {"name": template.name, "text": template.text, "crop_start": template.crop_start},
            **settings.text_record(),
            "truncated": truncated[b],
            "encoder": {
                "identity": st.identity,
                "model": st.source,
                "dtype": st.dtype_name(settings.placement),
                **st.text.encoder_record(one),
            },
            "cache_key": job.out.key,
            "image": {"key": job.image.key, "path": str(job.image.path)} if job.image else None,
            "inputs": [],
            "device": str(enc.device),
            "versions": versions(),
            **meter.record(),
        }
        assert job.out.key is not None and job.out.embeddings is not None
        if use_cache:  # the shared entry holds no per-run fields (source, original prompt)
            shared = {k: v for k, v in manifest.items() if k not in RUN_FIELDS}
            write_artifact(cache.entry_path(job.out.key), "embeddings", one, shared)
        write_artifact(job.out.embeddings, "embeddings", one, manifest)
        job.out.status = "done"
        progress.item("done", job.prompt)


def materialize(src: Path, dst: Path, job: EncodeJob) -> None:
    """Place found embeddings in the workdir with this run's own per-run fields in the manifest."""
    art = read_artifact(src, "embeddings")
    manifest = {
        **art.manifest,
        "source": "negative prompt" if job.negative else job.out.item.source,
        "original_prompt": None if job.negative else job.out.item.original_prompt,
        "cache_hit": True,
    }
    write_artifact(dst, "embeddings", art.tensors, manifest)
