"""The rewrite stage as one function: prompts in, a report out; and its JSONL artifact.

    report = rewrite_batch([("prompts.txt:1", "a cat")], RewriteSettings(mode="director"),
                           EndpointBackend(url="http://127.0.0.1:8000/v1", model="tiny"))
    write_jsonl(report, default_output_path(Path("hyv-out"), report))

Cached prompts are not sent again; every other prompt is sent once (the server backend retries
transient failures). A failed item carries its reason; nothing is silently replaced by the input.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rewrite.cache import atomic_write_text, cache_get, cache_key, cache_put, canonical_json
from rewrite.clean import clean_rewrite
from rewrite.errors import ItemFailure
from rewrite.inprocess import InProcessEngine
from rewrite.instructions import Instruction, load_instruction
from rewrite.server import Answer, ServerEngine
from rewrite.settings import Backend, EndpointBackend, InProcessBackend, RewriteSettings


@dataclass(frozen=True)
class ItemResult:
    index: int  # position in the input
    source: str  # "file:line" or "argument N"
    original_prompt: str
    prompt: str | None  # the rewrite; None when the item failed
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.prompt is not None


@dataclass(frozen=True)
class RewriteReport:
    items: list[ItemResult]  # in input order
    mode: str
    model: str  # the served model name, or the model directory
    model_identity: dict[str, Any]
    instruction_version: str
    instruction_sha256: str
    chat: bool
    sampling: dict[str, Any]
    seconds: float
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.items if not r.ok]

    @property
    def n_cached(self) -> int:
        return sum(r.cached for r in self.items)


# One vLLM engine per in-process backend for the life of the process: a second batch (another mode, a
# `hyv run` with several rewrite calls, a benchmark) does not load the model again.
_ENGINES: dict[InProcessBackend, InProcessEngine] = {}


def open_engine(backend: Backend) -> ServerEngine | InProcessEngine:
    if isinstance(backend, EndpointBackend):
        return ServerEngine(backend)
    if backend not in _ENGINES:
        _ENGINES[backend] = InProcessEngine(backend)
    return _ENGINES[backend]


def rewrite_batch(
    prompts: Sequence[tuple[str, str]],
    settings: RewriteSettings,
    backend: Backend,
    *,
    on_progress: Callable[[ItemResult], None] | None = None,
) -> RewriteReport:
    """Rewrite `prompts`, given as (source, text) pairs. Raises RewriteError for whole-batch failures
    (unreachable server, unknown model, vLLM missing); per-item failures are in the report."""
    t_start = time.perf_counter()
    instruction: Instruction = load_instruction(settings.mode, settings.instruction_file)
    engine = open_engine(backend)
    engine.check()
    sampling = settings.sampling.as_dict()
    results: list[ItemResult | None] = [None] * len(prompts)
    keys: list[str] = []

    def finish(r: ItemResult) -> None:
        results[r.index] = r
        if on_progress is not None:
            on_progress(r)

    todo: list[int] = []
    for i, (source, text) in enumerate(prompts):
        key = cache_key(
            model=engine.identity,
            mode=settings.mode,
            instruction_sha256=instruction.sha256,
            chat=settings.chat,
            sampling=sampling,
            prompt=text,
        )
        keys.append(key)
        hit = cache_get(key) if settings.use_cache else None
        if not text.strip():
            finish(ItemResult(i, source, text, None, error="empty prompt"))
        elif hit is not None and isinstance(hit.get("prompt"), str):
            reason = hit.get("finish_reason")
            finish(ItemResult(i, source, text, hit["prompt"], cached=True, finish_reason=reason))
        else:
            todo.append(i)

    def on_done(j: int, res: Answer | ItemFailure, seconds: float) -> None:
        i = todo[j]
        source, text = prompts[i]
        if isinstance(res, ItemFailure):
            finish(ItemResult(i, source, text, None, error=str(res), seconds=seconds))
            return
        try:
            rewritten = clean_rewrite(res.text)
        except ItemFailure as exc:
            finish(ItemResult(i, source, text, None, error=str(exc), seconds=seconds))
            return
        # Cached even with --no-cache: that flag means "do not read"; a later run may still reuse this.
        cache_put(keys[i], {"prompt": rewritten, "original_prompt": text, "finish_reason": res.finish_reason})
        finish(ItemResult(i, source, text, rewritten, seconds=seconds, finish_reason=res.finish_reason))

    engine.run([instruction.render(prompts[i][1]) for i in todo], settings.sampling, settings.chat, on_done)
    items = [r for r in results if r is not None]
    return RewriteReport(
        items=items,
        mode=settings.mode,
        model=engine.model_name,
        model_identity=engine.identity,
        instruction_version=instruction.version,
        instruction_sha256=instruction.sha256,
        chat=settings.chat,
        sampling=sampling,
        seconds=time.perf_counter() - t_start,
    )


def record(report: RewriteReport, r: ItemResult) -> dict[str, Any]:
    """One JSONL line. `prompt` is the rewrite (what `hyv encode/run --prompts` use); failed items have
    `ok: false` and `error`, which render.batch.read_prompt_file reports as a line error."""
    rec: dict[str, Any] = {"ok": r.ok, "source": r.source, "original_prompt": r.original_prompt}
    if r.ok:
        rec["prompt"] = r.prompt
    else:
        rec["error"] = r.error
    rec.update(
        mode=report.mode,
        model=report.model,
        instruction_version=report.instruction_version,
        chat=report.chat,
        sampling=report.sampling,
        seconds=round(r.seconds, 4),
        cached=r.cached,
        finish_reason=r.finish_reason,
        created_at=report.created_at,
    )
    return rec


def write_jsonl(report: RewriteReport, path: Path) -> Path:
    """Every item in input order (failed ones with `ok: false`), written atomically."""
    lines = [json.dumps(record(report, r), ensure_ascii=False) for r in report.items]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def default_output_path(workdir: Path, report: RewriteReport) -> Path:
    """<workdir>/rewrites/<mode>-<hash>.jsonl: the same batch and settings land on the same file."""
    what = {
        "prompts": [[r.source, r.original_prompt] for r in report.items],
        "model": report.model_identity,
        "instruction_sha256": report.instruction_sha256,
        "chat": report.chat,
        "sampling": report.sampling,
    }
    digest = hashlib.sha256(canonical_json(what).encode("utf-8")).hexdigest()[:12]
    return Path(workdir) / "rewrites" / f"{report.mode}-{digest}.jsonl"
