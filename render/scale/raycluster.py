"""A batch on a Ray cluster: `hyv run --prompts FILE --ray ADDRESS|auto` (Ray is the optional extra `hyv[ray]`).

Stage-major over the cluster, as a local `run` is over one device:
1. encode: Ray tasks, one per share of the prompts (with the negative prompts of true CFG), on a GPU each when the
   cluster has GPUs, else on a CPU; Ray runs a task again when its node is lost.
2. render: one actor per GPU (per CPU on a cluster without GPUs), each an `Engine(policy="keep-warm")` that loads
   the DiT once; the driver hands the next item to whichever actor is free, so the batch flows at the cluster's
   pace; an item whose actor dies (its node lost, killed) goes to another actor (its checkpoints, with
   --save-every, are continued from).
3. upscale (with --sr): the same actors, their DiT freed first, loading the SR model once each.
4. decode: the same actors, their DiT (or SR model) freed first, one latents file at a time.
The work directory, the model directory and the embedding cache must be on a file system every node shares:
the actors run hyv's own stages there, from the driver's working directory, so names and manifests are those of a
local run. Progress comes back with each result; an item that fails fails as it would locally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from render.core.errors import HyvError, RuntimeFailure, UsageError
from render.core.items import Item, Outcome, Report
from render.core.progress import NullProgress, Progress
from render.run.local import LocalEngine
from render.run.spec import EngineSpec, RunRequest
from render.scale.merge import Merged
from render.scale.relay import Collector

ATTEMPTS = 3  # tries of a job whose actor dies
START_WAIT_S = 600.0  # how long work waits for an actor to start when no actor is running (a node coming up)
ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "HYV_DEBUG")
NEGATIVE = "negative prompt"  # the source of a negative prompt's item (render.run.pipeline)


def run_on_ray(engine: LocalEngine, req: RunRequest, address: str) -> Report:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'hyv[ray]'") from None
    from render.files.cache import cache_root

    engine.require("encode", "render", "decode")  # a missing VAE is reported before the cluster is used
    env = {k: v for k in ENV if (v := os.environ.get(k)) is not None}
    env["HYV_CACHE_DIR"] = str(cache_root().resolve())  # the driver's cache, on the shared file system
    # Ray's driver prints cluster events (a node lost) on stdout, which holds hyv's report: stderr instead.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            ray.init(
                address=address,
                runtime_env={"env_vars": env},
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(
                f"--ray {address}: no Ray cluster to join ({' '.join(str(exc).split())[:160]})"
            ) from None
        try:
            request = replace(req, items=[], progress=NullProgress())  # the settings and how to run them
            ctx = _Context(engine.spec, request, os.getcwd())
            return _Batch(ctx, req.items, req.progress).run(ray)
        finally:
            ray.shutdown()


@dataclass(frozen=True)
class _Context:
    """What every task and actor call needs, sent with it: the engine to rebuild (all of it: the step cache, the
    attention keyword arguments and the DiT's weights go with the model), the request without its items (the
    workdir as the user gave it: relative paths resolve from `cwd` on every node)."""

    spec: EngineSpec
    request: RunRequest
    cwd: str

    def with_items(self, items: list[Item], progress: Progress) -> RunRequest:
        return replace(self.request, items=items, progress=progress)


@dataclass
class _Batch:
    ctx: _Context
    items: list[Item]
    progress: Progress
    dead: list[Any] = field(default_factory=list)  # actors lost
    # Actors are given work only once started: one placed on a node that is gone, or is not up yet, stays pending
    # (the cluster's resources still count a node lost a moment ago), and work sent to it would wait forever.
    started: list[Any] = field(default_factory=list)
    starting: dict[Any, Any] = field(default_factory=dict)  # its `ready` call -> actor

    def run(self, ray: Any) -> Report:
        found = _alive_resources(ray)
        on_gpu = int(found.get("GPU", 0)) > 0 and self.ctx.request.settings.render.placement.device != "cpu"
        slots = max(1, min(int(found.get("GPU" if on_gpu else "CPU", 1)), len(self.items)))
        need = {"num_gpus": 1} if on_gpu else {"num_cpus": 1}
        merged = Merged(self.items)
        ready = self._encode(ray, need, slots, merged)
        actor = ray.remote(**need)(StageActor).options(scheduling_strategy="SPREAD")
        actors = [actor.remote(self.ctx) for _ in range(slots)]
        self.starting = {a.ready.remote(): a for a in actors}
        try:
            rendered = self._stage(ray, actors, "render", ready, lambda a, i: a.render.remote(self.items[i]))
            for i in ready:
                merged.add(i, rendered[i].outcomes)
            ray.get([a.free.remote("render") for a in self._usable()])
            if self.ctx.request.settings.upscale.sr is not None:
                self._upscale(ray, actors, merged.outcomes())
                ray.get([a.free.remote("upscale") for a in self._usable()])
            self._decode(ray, actors, merged.outcomes())
        finally:
            for a in actors:
                ray.kill(a)
        return merged.done()

    def _encode(self, ray: Any, need: dict[str, int], k: int, merged: Merged) -> list[int]:
        """Encode every prompt with Ray tasks; return the items ready to render (the others failed)."""
        task = ray.remote(max_retries=ATTEMPTS, **need)(encode_share)
        shares = _shares(self.items, k)
        refs = [task.remote(self.ctx, [self.items[i] for i in share]) for share in shares]
        self.progress.stage("encode", len(self.items))
        failed: set[int] = set()
        for share, (report, events) in zip(shares, _get(ray, refs), strict=True):
            self._replay(events)
            merged.report.encodes += report.encodes
            merged.report.cache_hits += report.cache_hits
            for out in report.outcomes:
                if out.item.source == NEGATIVE or out.status != "failed":
                    continue
                i = next(i for i in share if self.items[i] == out.item)
                failed.add(i)
                merged.add(i, [out])
        return [i for i in range(len(self.items)) if i not in failed]

    def _upscale(self, ray: Any, actors: list[Any], outcomes: list[Outcome]) -> None:
        """Upscale every rendered video's latents (--sr), as `run` does; the outcome then names the upscaled
        latents (decoded next) and the base ones."""
        todo = [o for o in outcomes if o.status in ("done", "skipped") and o.latents is not None]
        done = self._stage(
            ray, actors, "upscale", list(range(len(todo))),
            lambda a, n: a.upscale.remote(todo[n].latents, todo[n].item.label, todo[n].embeddings),
        )  # fmt: skip
        for n, out in enumerate(todo):
            u = done[n].outcomes[0]
            if u.status == "failed":
                out.fail(u.error or "upscale failed")
                continue
            out.base_latents, out.latents, out.status = out.latents, u.latents, u.status

    def _decode(self, ray: Any, actors: list[Any], outcomes: list[Outcome]) -> None:
        """Decode every rendered video (a preview for a render stopped at --stop-at), as `run` does."""
        todo = [o for o in outcomes if o.status in ("done", "skipped") and o.latents is not None]
        todo += [o for o in outcomes if o.status == "stopped" and o.preview is not None]
        files = [o.latents if o.status != "stopped" else o.preview for o in todo]
        decoded = self._stage(
            ray, actors, "decode", list(range(len(todo))), lambda a, n: a.decode.remote(files[n])
        )
        for n, out in enumerate(todo):
            d = decoded[n].outcomes[0]
            out.video, out.manifest = d.video, d.manifest
            if d.status == "failed":
                out.fail(d.error or "decode failed")
            elif out.status != "stopped":  # a stopped render's video is a preview: it stays "stopped"
                out.status = d.status
        for out in outcomes:
            out.path = out.video

    def _stage(
        self, ray: Any, actors: list[Any], name: str, jobs: list[int], call: Callable[[Any, int], Any]
    ) -> dict[int, Report]:
        """call(actor, job) for every job, each on whichever actor is free; a job whose actor dies goes to another
        (up to ATTEMPTS tries in all). Returns a report per job."""
        from ray.exceptions import RayError, RayTaskError

        self.progress.stage(name, len(jobs))
        idle = self._usable()
        pending, tries = deque(jobs), dict.fromkeys(jobs, 0)
        flying: dict[Any, tuple[Any, int]] = {}
        results: dict[int, Report] = {}
        while pending or flying:
            while idle and pending:
                a, j = idle.pop(), pending.popleft()
                tries[j] += 1
                flying[call(a, j)] = (a, j)
            if not flying and not self.starting:  # every actor is gone
                for j in pending:
                    results[j] = _failed(
                        self._item(name, j), "no Ray worker left to run it; re-run the batch"
                    )
                break
            waits = [*flying, *self.starting]
            done, _ = ray.wait(waits, num_returns=1, timeout=None if flying else START_WAIT_S)
            if not done:  # nothing runs, and no actor started in time
                for j in pending:
                    results[j] = _failed(self._item(name, j), f"no Ray worker started in {START_WAIT_S:.0f} s")
                break
            ref = done[0]
            if ref in self.starting:  # an actor is up (or could not start): it takes work from now on
                a = self.starting.pop(ref)
                try:
                    ray.get(ref)
                except RayError:
                    self.dead.append(a)
                    continue
                self.started.append(a)
                idle.append(a)
                continue
            a, j = flying.pop(ref)
            try:
                report, events = ray.get(ref)
            except RayTaskError as exc:  # an error inside hyv: as it would be locally
                cause = exc.cause
                if isinstance(cause, UsageError):
                    raise cause from None
                report, events = _failed(self._item(name, j), str(cause or exc).splitlines()[0]), []
            except RayError as exc:  # the actor or its node is gone: the job goes to another actor
                self.dead.append(a)
                if tries[j] < ATTEMPTS:
                    self.progress.warn(
                        f"a Ray worker was lost during {name} ({type(exc).__name__}); retrying"
                    )
                    pending.appendleft(j)
                else:
                    results[j] = _failed(self._item(name, j), f"lost {ATTEMPTS} Ray workers while running it")
                continue
            idle.append(a)
            self._replay(events)
            results[j] = report
        return results

    def _usable(self) -> list[Any]:
        """The actors started and not lost."""
        return [a for a in self.started if a not in self.dead]

    def _item(self, stage: str, j: int) -> Item:
        return self.items[j] if stage == "render" else Item()

    def _replay(self, events: list[Any]) -> None:
        for kind, *rest in events:
            if kind == "item":
                self.progress.item(*rest)
            elif kind == "warn":
                self.progress.warn(rest[0])


def _shares(items: list[Item], k: int) -> list[list[int]]:
    """Up to k shares of the items to encode, the items of one prompt (and first frame) in the same share, in batch
    order: a prompt is encoded once on the cluster, by its first line, as a local run does (two tasks encoding it at
    once would both write its embeddings)."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault((item.prompt, str(item.image) if item.image is not None else None), []).append(i)
    shares: list[list[int]] = [[] for _ in range(k)]
    for n, members in enumerate(groups.values()):
        shares[n % k] += members
    return [sorted(share) for share in shares if share]


def _alive_resources(ray: Any) -> dict[str, float]:
    """The resources of the nodes alive now (`ray.cluster_resources()` still counts a node lost a moment ago)."""
    found: dict[str, float] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for k, v in node.get("Resources", {}).items():
                found[k] = found.get(k, 0.0) + v
    return found or dict(ray.cluster_resources())


def _get(ray: Any, refs: list[Any]) -> list[Any]:
    """The tasks' results; an error inside hyv is raised as hyv's own (bad input: exit 2), others as a failure."""
    from ray.exceptions import RayTaskError

    try:
        return list(ray.get(refs))
    except RayTaskError as exc:
        if isinstance(exc.cause, HyvError):
            raise exc.cause from None
        raise RuntimeFailure(str(exc).splitlines()[0]) from None


def _failed(item: Item, message: str) -> Report:
    out = Outcome(item, prompt=item.prompt)
    out.fail(message)
    return Report(outcomes=[out])


def encode_share(ctx: _Context, items: list[Item]) -> tuple[Report, list[Any]]:
    """A Ray task: encode some prompts and the negative prompts they need, as a local `run` does."""
    from render.run.pipeline import encode_for_run

    os.chdir(ctx.cwd)
    c = Collector()
    report = encode_for_run(LocalEngine.from_spec(ctx.spec), ctx.with_items(items, c.progress))
    return report, c.events


class StageActor:
    """A Ray actor: an engine that keeps its models warm across the items it is given."""

    def __init__(self, ctx: _Context) -> None:
        os.chdir(ctx.cwd)
        self.ctx = ctx
        self.engine = LocalEngine.from_spec(replace(ctx.spec, policy="keep-warm"))

    def render(self, item: Item) -> tuple[Report, list[Any]]:
        c, r = Collector(), self.ctx.request
        report = self.engine.render(
            [item], r.settings, workdir=r.workdir, resume=r.resume, use_cache=r.use_cache, progress=c.progress
        )
        return report, c.events

    def upscale(self, latents: Path, label: str, embeddings: Path | None) -> tuple[Report, list[Any]]:
        c, r = Collector(), self.ctx.request
        item = Item(latents=latents, name=label, embeddings=embeddings, source=str(latents))
        return self.engine.upscale([item], r.settings, workdir=r.workdir, progress=c.progress), c.events

    def decode(self, latents: Path) -> tuple[Report, list[Any]]:
        c, r = Collector(), self.ctx.request
        return self.engine.decode([latents], r.settings, workdir=r.workdir, progress=c.progress), c.events

    def ready(self) -> bool:
        """Answers once the actor is up (the driver gives it work from then on)."""
        return True

    def free(self, stage: str) -> None:
        self.engine.free(stage)
