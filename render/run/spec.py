"""The two objects that travel: an `EngineSpec` is all a worker process or a Ray actor needs to rebuild the same
engine (nothing dropped: the step cache, attention keyword arguments and the DiT's weights go with the model), and a
`RunRequest` is one call of the orchestration API (the items and how to run them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render.core.items import Item
from render.core.progress import NullProgress, Progress
from render.core.settings import Settings
from render.files import cache
from render.files.workdir import Workdir
from render.model.ref import ModelRef
from render.model.variant import DiTVariant

POLICIES: tuple[str, ...] = ("free-after-stage", "keep-warm")


@dataclass(frozen=True)
class EngineSpec:
    model: ModelRef
    policy: str = "free-after-stage"  # or "keep-warm"
    cache: Any = None  # a diffusers cache config applied to the DiT when it loads (`Engine(cache=...)`)
    attention_kwargs: dict[str, Any] | None = field(default=None, hash=False)  # given to every DiT forward
    variant: DiTVariant = field(default_factory=DiTVariant)  # the DiT's weights (fp8, a GGUF file, LoRAs)
    sr_model: Path | None = None  # where the super-resolution models are (None: in the model's folder)


@dataclass
class RunRequest:
    """What to run and how: the items, their resolved settings, the work directory, whether to continue renders
    stopped at --stop-at, whether to use the embedding cache, and where progress goes."""

    items: list[Item]
    settings: Settings
    workdir: Path
    resume: bool = False
    use_cache: bool = True
    progress: Progress = field(default_factory=NullProgress)


def begin(req: RunRequest) -> tuple[Workdir, bool]:
    """The work directory, checked writable before any work (a UsageError otherwise), and whether the embedding
    cache can be used: it is an optimisation, so an unusable cache is a warning and the run goes on without it."""

    wd = Workdir(req.workdir)
    wd.check_writable()
    use_cache = req.use_cache
    if use_cache and (problem := cache.unusable()) is not None:
        req.progress.warn(f"the embedding cache is not usable ({problem}); running without it")
        use_cache = False
    return wd, use_cache
