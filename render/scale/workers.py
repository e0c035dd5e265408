"""Data parallel on one machine: `hyv run --prompts FILE --gpus N` starts N worker processes, worker i on
cuda:i (or, with --device cpu, N CPU workers), and gives worker i the items i, i+N, i+2N... Each worker runs the
ordinary stage-major `Engine.run` on its items; the workers share the work directory and the embedding cache (the
per-item locks keep two processes off one item in any case). Their progress comes back as events; their reports
are merged in the batch's order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from dataclasses import dataclass, replace
from typing import Any

from render.core.errors import HyvError, UsageError
from render.core.items import Report
from render.core.progress import NullProgress
from render.core.settings import Settings
from render.run.local import LocalEngine
from render.run.spec import EngineSpec, RunRequest
from render.scale.merge import Merged, on_device
from render.scale.relay import EventProgress, Replay


def devices(settings: Settings, n: int) -> list[str]:
    """The device of each of n workers: cuda:0..n-1, or the CPU for every worker with --device cpu."""
    asked = settings.render.placement.device
    if asked == "cpu":
        return ["cpu"] * n
    if asked not in ("auto", "cuda"):
        raise UsageError(
            f"--gpus {n} puts worker i on cuda:i; leave out --device {asked} (or use --device cpu)"
        )
    import torch

    found = torch.cuda.device_count()
    if found < n:
        raise UsageError(
            f"--gpus {n} needs {n} CUDA devices, found {found}; use --gpus {found} or add --device cpu "
            f"to run {n} CPU worker processes"
        )
    return [f"cuda:{i}" for i in range(n)]


def cpu_threads(n: int) -> int:
    """Threads of each of `n` CPU worker processes: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // n)


@dataclass
class WorkerJob:
    """What worker `index` is given: the engine to rebuild, its share of the batch (a request whose progress is
    replaced by events to the parent), and its torch threads (0: torch's default)."""

    index: int
    spec: EngineSpec
    request: RunRequest
    threads: int


def run_workers(engine: LocalEngine, req: RunRequest, n: int) -> Report:
    items = req.items
    n = max(1, min(n, len(items)))
    places = devices(req.settings, n)
    threads = cpu_threads(n) if places[0] == "cpu" else 0
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch or CUDA state
    inbox: Any = ctx.Queue()
    procs = []
    for i, device in enumerate(places):
        share = replace(req, items=items[i::n], settings=on_device(req.settings, device), progress=NullProgress())
        p = ctx.Process(target=_work, args=(WorkerJob(i, engine.spec, share, threads), inbox), daemon=True)
        p.start()
        procs.append(p)
    merged, replay = Merged(items), Replay(req.progress)
    try:
        _collect(procs, inbox, n, merged, replay, places)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return merged.done()


def _collect(procs: list[Any], inbox: Any, n: int, merged: Merged, replay: Replay, places: list[str]) -> None:
    """Replay events and take results until every worker has answered or died."""
    waiting = set(range(len(procs)))
    while waiting:
        try:
            kind, i, payload = inbox.get(timeout=0.5)
        except queue.Empty:
            for i in list(waiting):
                if not procs[i].is_alive():  # died without a word (killed, out of memory)
                    waiting.discard(i)
                    for k in range(i, len(merged.items), n):
                        merged.fail(
                            k, f"worker {i} ({places[i]}) exited with code {procs[i].exitcode}; re-run"
                        )
            continue
        if kind == "event":
            replay(payload)
        elif kind == "error":
            waiting.discard(i)
            if isinstance(payload, UsageError):  # bad input: the batch stops, as it does in one process
                raise payload
            for k in range(i, len(merged.items), n):
                merged.fail(k, f"worker {i} ({places[i]}) failed: {payload}")
        else:  # "done": the worker's report, each outcome with the index of its item in the worker's share
            waiting.discard(i)
            report, indices = payload
            for out, j in zip(report.outcomes, indices, strict=True):
                merged.add(i + j * n, [out])
            merged.report.encodes += report.encodes
            merged.report.cache_hits += report.cache_hits
            merged.report.warnings += report.warnings


def _quiet_libraries() -> None:
    """A worker's stderr is the parent's terminal: no library progress bars or info logs across its display."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.set_verbosity_error()
        log.disable_progress_bar()


def _work(job: WorkerJob, inbox: Any) -> None:
    """A worker process: the ordinary engine run over its share of the items."""
    i = job.index
    try:
        if job.threads:
            import torch

            torch.set_num_threads(job.threads)
        _quiet_libraries()
        from render.run import pipeline

        engine = LocalEngine.from_spec(job.spec)
        progress = EventProgress(lambda e: inbox.put(("event", i, e)))
        req = replace(job.request, progress=progress)
        report = pipeline.run(engine, replace(req, settings=engine.call_settings(req.settings)))
        share = req.items
        where = {id(item): j for j, item in enumerate(share)}
        inbox.put(("done", i, (report, [where[id(o.item)] for o in report.outcomes])))
    except HyvError as exc:
        inbox.put(("error", i, exc))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this worker's failure
        inbox.put(("error", i, HyvError(f"{type(exc).__name__}: {exc}")))
