"""Stage 1: prompts -> text embeddings (Llama hidden states + CLIP pooled output), cached by content.

Mirrors diffusers' HunyuanVideoPipeline.encode_prompt so that the embeddings it gives are the ones hyv gives:
template -> tokenizer (text_len + crop_start, padded to max length, truncated) -> LlamaModel hidden state
-(skip+1) -> crop the template tokens; CLIP: 77 tokens -> pooler_output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render import cache
from render.artifacts import is_valid, write_artifact
from render.errors import HyvError, NonFiniteError, RuntimeFailure, UsageError
from render.hashing import key_of, weights_identity
from render.loading import ModelRef, TextEncoders, check_components, load_text_encoders, release_memory
from render.manifest import StageMeter, versions
from render.naming import artifact_stem
from render.progress import NullProgress, Progress
from render.settings import EncodeSettings
from render.templates import Template, compute_crop_start, prefix_ids, template_for

KEY_VERSION = "emb1"


@dataclass(frozen=True)
class EncodeJob:
    prompt: str
    frames: int  # picks the template: video for frames > 1, image for 1
    source: str = ""  # "file:line" or "argument N", for messages
    name: str | None = None  # file-name label instead of the prompt
    original_prompt: str | None = None  # the user's text when `prompt` is a rewrite
    folder: str = "embeddings"  # under the workdir; negative prompts go to "negative-embeddings"


@dataclass
class EncodeResult:
    job: EncodeJob
    key: str = ""
    path: Path | None = None
    cached: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class TextEncoderStage:
    """Tokenizers load at once (cheap, needed for cache keys); the text encoders load on the first cache miss."""

    def __init__(self, model: ModelRef, settings: EncodeSettings) -> None:
        # Imported here, not at first use, so a stage's measured time is its work, not Python imports.
        from transformers import AutoTokenizer, CLIPTextModel, LlamaModel  # noqa: F401

        settings.check()
        check_components(model, "encode")
        self.model = model
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(model.component("tokenizer"))
        self.tokenizer.padding_side = "right"
        self.identity = weights_identity(
            *(model.component(c) for c in ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"))
        )
        self._encoders: TextEncoders | None = None
        self._templates: dict[int, Template] = {}

    def template(self, frames: int) -> Template:
        kind = frames > 1
        if kind not in self._templates:
            name, text = template_for(frames)
            crop = compute_crop_start(self.tokenizer, text)
            self._templates[kind] = Template(name, text, crop)
        return self._templates[kind]

    def dtype_name(self) -> str:
        from render.loading import resolve_placement

        _, dtype = resolve_placement(self.settings.placement, "encode")
        return str(dtype).removeprefix("torch.")

    def key(self, prompt: str, template: Template) -> str:
        s = self.settings
        return key_of(
            KEY_VERSION,
            {
                "encoders": self.identity,
                "dtype": self.dtype_name(),
                "template": template.text,
                "crop_start": template.crop_start,
                "skip_layers": s.skip_layers,
                "text_len": s.text_len,
                "clip_len": s.clip_len,
                "prompt": prompt,
            },
        )

    @property
    def encoders(self) -> TextEncoders:
        if self._encoders is None:
            self._encoders = load_text_encoders(self.model, self.settings.placement)
        return self._encoders

    @property
    def loaded(self) -> bool:
        return self._encoders is not None

    def close(self) -> None:
        self._encoders = None
        release_memory()

    def encode(self, prompts: list[str], template: Template) -> tuple[dict[str, Any], list[bool]]:
        """Tensors for a micro-batch: prompt_embeds [B, L, D], prompt_attention_mask [B, L], pooled [B, P];
        and whether each prompt was truncated to text_len tokens."""
        import torch

        enc, s = self.encoders, self.settings
        crop = template.crop_start
        texts = [template.text.format(p) for p in prompts]
        tok = enc.tokenizer(
            texts,
            max_length=s.text_len + crop,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
            return_attention_mask=True,
        )
        ids, mask = tok.input_ids, tok.attention_mask  # [B, crop + L]
        want = torch.tensor(prefix_ids(enc.tokenizer, template.text, crop))
        if not bool((ids[:, :crop] == want).all()):
            raise RuntimeFailure(
                "the prompt template does not tokenise to the same prefix with and without a prompt; "
                "crop_start would cut inside the template with this tokenizer"
            )
        full_len = [len(enc.tokenizer(t)["input_ids"]) for t in texts]
        truncated = [n > s.text_len + crop for n in full_len]
        with torch.inference_mode():
            hidden = enc.text_encoder(
                input_ids=ids.to(enc.device), attention_mask=mask.to(enc.device), output_hidden_states=True
            ).hidden_states[-(s.skip_layers + 1)]  # [B, crop + L, D]
            embeds = hidden.to(enc.dtype)[:, crop:]  # [B, L, D]
            mask = mask[:, crop:]  # [B, L]
            tok2 = enc.tokenizer_2(
                prompts, padding="max_length", max_length=s.clip_len, truncation=True, return_tensors="pt"
            )
            pooled = enc.text_encoder_2(
                tok2.input_ids.to(enc.device), output_hidden_states=False
            ).pooler_output
        if not bool(torch.isfinite(embeds).all()) or not bool(torch.isfinite(pooled).all()):
            raise NonFiniteError("the text encoder produced NaN or Inf; try --dtype float32")
        return {
            "prompt_embeds": embeds,
            "prompt_attention_mask": mask,
            "pooled_prompt_embeds": pooled,
        }, truncated


def encode_jobs(
    jobs: list[EncodeJob],
    model: ModelRef,
    settings: EncodeSettings,
    workdir: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
    stage: TextEncoderStage | None = None,
) -> list[EncodeResult]:
    """Encode every job; the cache is checked first, so a batch of hits loads no text encoder at all.
    Each result names `workdir/embeddings/<stem>.safetensors`; failures are per item."""
    progress = progress or NullProgress()
    own = stage is None
    st = stage or TextEncoderStage(model, settings)
    results = [EncodeResult(job=j) for j in jobs]
    progress.stage("encode", len(jobs))
    todo: list[tuple[EncodeResult, Template]] = []
    for r in results:
        t = st.template(r.job.frames)
        r.key = st.key(r.job.prompt, t)
        r.path = workdir / r.job.folder / f"{artifact_stem(r.job.name or r.job.prompt, r.key)}.safetensors"
        entry = cache.entry_path(r.key)
        if is_valid(r.path, "embeddings"):
            r.cached = True
        elif use_cache and is_valid(entry, "embeddings"):
            materialize(entry, r.path, r.job)
            r.cached = True
        if r.cached:
            cache.touch(entry)
            progress.item("cached", r.job.prompt)
        else:
            todo.append((r, t))
    # The same prompt twice in a batch is encoded once: later copies are cache hits of the first.
    first: dict[str, EncodeResult] = {}
    dups: list[EncodeResult] = []
    unique: list[tuple[EncodeResult, Template]] = []
    for r, t in todo:
        if r.key in first:
            dups.append(r)
        else:
            first[r.key] = r
            unique.append((r, t))
    meter = StageMeter.start()
    bs = settings.batch_size
    try:
        for i in range(0, len(unique), bs):
            chunk = unique[i : i + bs]
            try:
                _encode_chunk(st, chunk, model, settings, meter, use_cache)
                for r, _ in chunk:
                    progress.item("done", r.job.prompt)
            except HyvError as exc:
                if isinstance(exc, UsageError):
                    raise
                for r, _ in chunk:
                    r.error, r.path = str(exc), None
                    progress.item("failed", r.job.prompt)
    finally:
        if own:
            st.close()
    for r in dups:
        src = first[r.key]
        if src.error is not None or src.path is None or r.path is None:
            r.error, r.path = src.error or "encoding failed", None
            progress.item("failed", r.job.prompt)
        else:
            if r.path != src.path:
                materialize(src.path, r.path, r.job)
            r.cached = True
            progress.item("cached", r.job.prompt)
    for r in results:
        for w in r.warnings:
            progress.warn(f"{r.job.source or r.job.prompt[:40]}: {w}")
    return results


def _encode_chunk(
    st: TextEncoderStage,
    chunk: list[tuple[EncodeResult, Template]],
    model: ModelRef,
    settings: EncodeSettings,
    meter: StageMeter,
    use_cache: bool,
) -> None:
    # A micro-batch shares one template (frames > 1 or not); split if mixed.
    by_template: dict[str, list[tuple[EncodeResult, Template]]] = {}
    for r, t in chunk:
        by_template.setdefault(t.name, []).append((r, t))
    for group in by_template.values():
        template = group[0][1]
        tensors, truncated = st.encode([r.job.prompt for r, _ in group], template)
        for b, (r, _) in enumerate(group):
            one = {k: v[b : b + 1] for k, v in tensors.items()}
            if truncated[b]:
                r.warnings.append(f"prompt longer than {settings.text_len} tokens was truncated")
            manifest = {
                "stage": "encode",
                "prompt": r.job.prompt,
                "original_prompt": r.job.original_prompt,
                "source": r.job.source,
                "template": {"name": template.name, "text": template.text, "crop_start": template.crop_start},
                "text_len": settings.text_len,
                "skip_layers": settings.skip_layers,
                "clip_len": settings.clip_len,
                "truncated": truncated[b],
                "encoder": {
                    "identity": st.identity,
                    "model": model.source,
                    "dtype": st.dtype_name(),
                    "text_dim": int(one["prompt_embeds"].shape[-1]),
                    "pooled_dim": int(one["pooled_prompt_embeds"].shape[-1]),
                },
                "cache_key": r.key,
                "inputs": [],
                "device": str(st.encoders.device),
                "versions": versions(),
                **meter.record(),
            }
            assert r.path is not None
            if use_cache:  # the shared entry holds no per-run fields (source, original prompt)
                shared = {k: v for k, v in manifest.items() if k not in RUN_FIELDS}
                write_artifact(cache.entry_path(r.key), "embeddings", one, shared)
            write_artifact(r.path, "embeddings", one, manifest)


RUN_FIELDS = ("source", "original_prompt")


def materialize(src: Path, dst: Path, job: EncodeJob) -> None:
    """Place cached embeddings in the workdir with this run's own per-run fields in the manifest."""
    from render.artifacts import read_artifact

    art = read_artifact(src, "embeddings")
    manifest = {
        **art.manifest,
        "source": job.source,
        "original_prompt": job.original_prompt,
        "cache_hit": True,
    }
    write_artifact(dst, "embeddings", art.tensors, manifest)
