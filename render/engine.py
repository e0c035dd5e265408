"""The engine: one model, its components' lifetimes, and the orchestration API every front end calls.

    from render import Engine
    engine = Engine(policy="keep-warm")                 # the bundled demo model; Engine("/path/to/model")
    report = engine.run(["a red circle moves up on a black background"], workdir="out")
    print(report.outcomes[0].video, engine.loads)

Components load on first use, on the placement the job asks for (another placement reloads them). Policy
"free-after-stage" (the batch default) frees each stage's models when the stage ends, so peak memory is the
largest stage; "keep-warm" keeps them for the next call (a server, a notebook rendering many prompts). This is the
top layer of `render`: the single-process engine (render.run.local) with scale-out (render.scale) on `run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from render.core.items import Report
from render.core.progress import Progress
from render.core.settings import Settings
from render.run.local import ItemLike, LocalEngine

Policy = Literal["free-after-stage", "keep-warm"]

__all__ = ["Engine", "ItemLike", "Policy"]


class Engine(LocalEngine):
    def run(
        self,
        items: Sequence[ItemLike],
        settings: Settings | None = None,
        *,
        workdir: str | Path = "hyv-out",
        resume: bool = False,
        use_cache: bool = True,
        progress: Progress | None = None,
        gpus: int | None = None,
        ray: str | None = None,
    ) -> Report:
        """Prompts -> videos, stage-major: every encode, then every render, then every decode. `gpus`: that many
        worker processes, one per device, each with its own items (render.scale.workers); `ray`: the batch on a
        Ray cluster at that address, or "auto" (render.scale.raycluster)."""
        if gpus is None and ray is None:
            return super().run(
                items, settings, workdir=workdir, resume=resume, use_cache=use_cache, progress=progress
            )
        from render.scale.scaleout import run_scaled

        req = self.request(items, settings, workdir, resume=resume, use_cache=use_cache, progress=progress)
        return run_scaled(self, req, gpus=gpus, ray=ray)
