"""The shapes every stage takes and gives: a list of `Item`s in, a `Report` of `Outcome`s out.

An item is a prompt (encode, run), embeddings to render, or latents to decode, with its per-item settings. An
outcome is one video of an item (one per seed; encode and decode give one per item) with every artifact made
for it so far, its status and its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Item:
    prompt: str | None = None
    source: str = ""  # "file:line" or "argument N", for messages
    overrides: Mapping[str, Any] = field(default_factory=dict)  # per-item settings (settings.ITEM_OVERRIDES)
    name: str | None = None  # file-name label instead of the prompt
    original_prompt: str | None = None  # the user's text when `prompt` is a rewrite of it
    image: Path | None = None  # image-to-video: the first frame
    embeddings: Path | None = None  # render: embeddings made before (else found by the prompt's content key)
    latents: Path | None = None  # decode: the latents to decode
    output: Path | None = None  # where its one video goes (default: the workdir's videos/, named by content)

    @property
    def label(self) -> str:
        return self.name or self.prompt or (self.embeddings or self.latents or Path("item")).stem



@dataclass
class Outcome:
    item: Item
    seed: int | None = None
    # done: made now; cached: embeddings found (cache or workdir); skipped: the artifact was already there;
    # stopped: a render stopped at --stop-at (a preview); failed: see `error`.
    status: str = "pending"
    error: str | None = None
    prompt: str | None = None
    embeddings: Path | None = None
    key: str | None = None  # the embeddings' content key
    cached: bool = False  # the embeddings were found (cache or workdir), not encoded now
    latents: Path | None = None  # with super-resolution: the upscaled latents (the ones decoded)
    base_latents: Path | None = None  # with super-resolution: the base video's latents
    step: int | None = None  # denoising steps done
    checkpoint: Path | None = None
    preview: Path | None = None
    rendered: bool = False  # this call ran the DiT for it (False: its latents were there already)
    video: Path | None = None
    manifest: Path | None = None  # the video's manifest
    # what the call was for: the embeddings (encode), the latents (render), the video (decode, run)
    path: Path | None = None

    bad_input: bool = False  # it failed on its own input (a setting of its .jsonl line), not in a computation

    def fail(self, message: str, *, bad_input: bool = False) -> None:
        self.status, self.error, self.bad_input = "failed", message, bad_input

    def as_json(self) -> dict[str, Any]:
        def s(p: Path | None) -> str | None:
            return str(p) if p is not None else None

        base = {"base_latents": s(self.base_latents)} if self.base_latents is not None else {}
        return {
            "prompt": self.prompt if self.prompt is not None else self.item.prompt,
            "source": self.item.source,
            "seed": self.seed,
            "status": self.status,
            "path": s(self.path),
            "embeddings": s(self.embeddings),
            "key": self.key,
            "cached": self.cached,
            "latents": s(self.latents),
            "step": self.step,
            "checkpoint": s(self.checkpoint),
            "preview": s(self.preview),
            "rendered": self.rendered,
            "video": s(self.video),
            "manifest": s(self.manifest),
            "error": self.error,
            **base,
        }


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    encodes: int = 0  # prompts run through the text encoders
    cache_hits: int = 0  # embeddings found in the cache or the workdir
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)
