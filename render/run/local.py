"""The orchestration API in one process: `LocalEngine.encode / render / decode / run` take prompts, items or
artifact paths and return a `Report`. In a --parallel job (context parallel under torchrun) every rank makes the same
calls: rank 0 leads and the other ranks mirror its DiT forwards (render.sampling.mirror). `render.engine.Engine`
adds scale-out (--gpus, --ray) on top; worker processes and Ray actors run a `LocalEngine` rebuilt from the
engine's spec.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from render.core.items import Item, Report
from render.core.progress import NullProgress, Progress
from render.core.settings import Settings
from render.model.ref import ModelRef
from render.model.variant import DiTVariant
from render.run.session import Session
from render.run.spec import EngineSpec, RunRequest

ItemLike = Item | str | Path


def _mirrored(method: Callable[..., Report]) -> Callable[..., Report]:
    """An API call that, in a --parallel job, rank 0 leads and the other ranks mirror: they run its DiT forwards
    and return its report or raise its error."""

    @functools.wraps(method)
    def call(self: LocalEngine, *args: Any, **kwargs: Any) -> Report:
        if self.parallel is None:
            return method(self, *args, **kwargs)
        from render.sampling.mirror import follow, lead

        report: Report = lead(self, lambda: method(self, *args, **kwargs)) if self.primary else follow(self)
        return report

    return call


class LocalEngine(Session):
    def __init__(
        self,
        model: ModelRef | str | Path | None = None,
        *,
        policy: str = "free-after-stage",
        cache: Any = None,
        attention_kwargs: dict[str, Any] | None = None,
        variant: DiTVariant | None = None,
        parallel: str | None = None,
        sr_model: str | Path | None = None,
    ) -> None:
        """`model`: a directory, a hub id, a ModelRef, or None ($HYV_MODEL, else the bundled demo model).
        `cache`: a diffusers cache config (e.g. `FirstBlockCacheConfig(threshold=0.05)`) applied to the DiT with
        `enable_cache` when it loads; part of every render key. `attention_kwargs` go to every DiT forward.
        `variant`: the DiT's weights (FP8, a GGUF or original file, LoRAs); part of every render key.
        `parallel` ("ulysses:N", "ring:N", "ulysses:A,ring:B"): context parallel over the ranks of a torchrun
        job (render.sampling.parallel); every rank makes the same calls, rank 0 does the work and the others
        mirror its DiT forwards. `sr_model`: a folder holding the super-resolution models (default: the model's
        own folder)."""
        from render.families import resolve_model

        ref = model if isinstance(model, ModelRef) else resolve_model(model)
        where = Path(sr_model).expanduser().resolve() if sr_model is not None else None
        spec = EngineSpec(ref, policy, cache, attention_kwargs, variant or DiTVariant(), where)
        super().__init__(spec, parallel)

    @classmethod
    def from_spec(cls, spec: EngineSpec) -> LocalEngine:
        """The engine a spec describes (a worker process's or a Ray actor's: the same model, policy, step cache,
        attention keyword arguments and DiT weights)."""
        return cls(
            spec.model,
            policy=spec.policy,
            cache=spec.cache,
            attention_kwargs=spec.attention_kwargs,
            variant=spec.variant,
            sr_model=spec.sr_model,
        )

    def request(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None,
        workdir: str | Path,
        *stages: str,
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> RunRequest:
        """A call's request: its items, its settings (the model's defaults when none; the devices of `stages`
        checked), where it writes."""
        s = self.call_settings(settings, *stages)
        return RunRequest(_items(items), s, Path(workdir), resume, use_cache, progress or NullProgress())

    @_mirrored
    def encode(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> Report:
        """Prompts -> embeddings, one outcome per item (status done, cached or failed)."""
        from render.run import pipeline

        # devices: checked in pipeline.encode, after the stage index (a no-op call imports no torch)
        req = self.request(items, settings, workdir, use_cache=use_cache, progress=progress)
        return pipeline.encode(self, req)

    @_mirrored
    def render(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> Report:
        """Embeddings (given, or found by the prompt's content key) -> latents, one outcome per video."""
        from render.run import pipeline

        # devices: checked in pipeline.render, after the stage index
        req = self.request(items, settings, workdir, resume=resume, use_cache=use_cache, progress=progress)
        return pipeline.render(self, req)

    @_mirrored
    def decode(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        progress: Progress | None = None,
    ) -> Report:
        """Latents -> videos with their manifests, one outcome per item."""
        from render.run import pipeline

        # devices: checked in pipeline.decode, after its check for videos already made
        return pipeline.decode(self, self.request(items, settings, workdir, progress=progress))

    @_mirrored
    def upscale(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        progress: Progress | None = None,
    ) -> Report:
        """Latents -> upscaled latents (super-resolution to `settings.upscale.sr`), one outcome per item; the text
        conditions are those of the embeddings each was rendered from."""
        from render.run import upscaling

        return upscaling.upscale(self, self.request(items, settings, workdir, "render", progress=progress))

    @_mirrored
    def run(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
    ) -> Report:
        """Prompts -> videos, stage-major: every encode, then every render, then every decode."""
        from render.run import pipeline

        # devices: checked in pipeline.run, after the run index (a no-op re-run imports no torch)
        req = self.request(items, settings, workdir, resume=resume, use_cache=use_cache, progress=progress)
        return pipeline.run(self, req)


def _items(items: Sequence[ItemLike]) -> list[Item]:
    if isinstance(items, (str, Path)):
        items = [items]
    return [_item(x, n) for n, x in enumerate(items, start=1)]


def _item(x: ItemLike, n: int) -> Item:
    """An item from a prompt string, an artifact path (.safetensors: embeddings or latents, by kind) or an item."""
    if isinstance(x, Item):
        return x
    if isinstance(x, Path):
        from render.files.artifacts import read_manifest

        kind, _ = read_manifest(x)
        src = str(x)
        return Item(source=src, embeddings=x) if kind == "embeddings" else Item(source=src, latents=x)
    return Item(prompt=x, source=f"argument {n}")
