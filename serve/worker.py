"""The worker: the one thread that owns the device. It takes queued jobs in batches and runs each batch through
one `render.Engine(policy="keep-warm")` call, stage-major across the batch's videos, so the DiT stays loaded
from one job to the next.

A batch is the oldest queued job and the queued jobs that can share its engine call (`JobSpec.group`: equal
settings except the per-item ones, which each item carries), up to MAX_VIDEOS videos. A cancelled job or a
stopping server interrupts the call at its next progress event: the batch's other jobs are queued again, and
what they finished is found on disk, not made again. A batch that fails as a whole is split: each job runs
alone, so one bad job fails only itself.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from render.core.errors import HyvError, out_of_memory
from render.core.items import Item, Outcome
from serve.progress import Interrupted, JobProgress, Unit
from serve.spec import JobSpec, parse
from serve.store import Job, JobStore

if TYPE_CHECKING:
    from render.engine import Engine

MAX_VIDEOS = 16  # videos in one batch: more would delay the first finished video of a long queue
WINDOW = 0.2  # seconds to wait after a job arrives, for the jobs submitted with it to join its batch


class Worker(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        store: JobStore,
        workdir: Path,
        placement: dict[str, Any],
        log: Callable[[str], None],
        max_videos: int = MAX_VIDEOS,
    ) -> None:
        super().__init__(name="hyv-worker", daemon=True)
        self.engine, self.store, self.workdir, self.placement = engine, store, workdir, placement
        self.log = log
        self.max_videos = max_videos
        self.stopping = threading.Event()
        self.batch: list[str] = []  # ids of the jobs running now
        self._specs: dict[str, JobSpec] = {}

    def spec(self, job: Job) -> JobSpec:
        if job.id not in self._specs:
            self._specs[job.id] = parse(job.request, self.engine, self.placement, self.workdir)
        return self._specs[job.id]

    def stop(self) -> None:
        self.stopping.set()
        self.store.poke()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.store.wait_for_work(timeout=0.5):
                    continue
                time.sleep(WINDOW)
                jobs = self.store.take(self._group, self.max_videos)
                if not jobs:
                    continue
                self.batch = [j.id for j in jobs]
                try:
                    self.run_batch(jobs)
                finally:
                    self.batch = []
            except Exception:  # noqa: BLE001 - a bug must not leave the queue without its worker
                self.log(f"worker: {traceback.format_exc().rstrip()}")
                time.sleep(1.0)

    def _group(self, job: Job) -> Any:
        try:
            return self.spec(job).group()
        except HyvError:  # a stored request the model no longer takes: it runs alone, and fails with the reason
            return ("invalid", job.id)

    # ---------------------------------------------------------------------------------------------- one batch

    def run_batch(self, jobs: list[Job]) -> None:
        t0 = time.perf_counter()
        videos = sum(j.videos_expected for j in jobs)
        self.log(f"batch of {len(jobs)} job(s), {videos} video(s): {', '.join(j.id for j in jobs)}")
        failed: dict[str, list[dict[str, Any]]] = {j.id: [] for j in jobs}
        try:
            items: list[Item] = []
            owner: dict[int, Job] = {}
            units: list[Unit] = []
            for job in jobs:
                spec = self.spec(job)
                for item in self._prepare(job, spec, failed[job.id]):
                    batch_item = spec.batch_item(item)
                    items.append(batch_item)
                    owner[id(batch_item)] = job
                    label, prompt = batch_item.label, batch_item.prompt or ""
                    units += [Unit(job, prompt, label, v.seed) for v in spec.item_settings(item).videos()]
            progress = JobProgress(self.store, units, lambda: self._should_stop(jobs))
            report = None
            if items:
                settings = self.spec(jobs[0]).settings
                report = self.engine.run(items, settings, workdir=self.workdir, progress=progress)
        except Interrupted:
            for job in jobs:
                state = "cancelled" if job.cancel else "queued"
                self.store.update(job, state=state, progress={}, started=None if state == "queued" else job.started)
            self.log(f"batch interrupted ({'server stopping' if self.stopping.is_set() else 'cancelled'})")
            return
        except Exception as exc:  # noqa: BLE001 - a failing batch must not stop the worker
            self._batch_failed(jobs, exc)
            return
        results: dict[str, list[dict[str, Any]]] = {j.id: [] for j in jobs}
        for out in report.outcomes if report else []:
            results[owner[id(out.item)].id].append(self._video(out))
        for job in jobs:
            self._finish(job, results[job.id] + failed[job.id])
        loads = self.engine.loads["transformer"]
        self.log(f"batch done in {time.perf_counter() - t0:.1f} s; DiT loads so far: {loads}")

    def _prepare(self, job: Job, spec: JobSpec, failed: list[dict[str, Any]]) -> list[Item]:
        """The job's items, rewritten first when it asks (stage-major too: every rewrite before the engine)."""
        items = list(spec.items)
        if spec.rewrite is None:
            return items
        from serve.rewriting import rewrite_items

        if self._should_stop([job]):
            raise Interrupted
        self.store.update(job, persist=False, progress={"stage": "rewrite", "fraction": 0.0})
        try:
            kept, bad, summary = rewrite_items(items, spec.rewrite, self.workdir)
        except Exception as exc:  # noqa: BLE001 - the rewrite library's errors, and a broken server's
            message = f"rewrite failed: {exc}"
            failed += [{"prompt": it.prompt, "status": "failed", "error": message} for it in items]
            return []
        failed += [{"prompt": it.prompt, "status": "failed", "error": err} for it, err in bad]
        self.store.update(job, rewrite=summary)
        return kept

    def _should_stop(self, jobs: list[Job]) -> bool:
        return self.stopping.is_set() or any(j.cancel for j in jobs)

    def _batch_failed(self, jobs: list[Job], exc: Exception) -> None:
        oom = out_of_memory(exc)
        if isinstance(exc, HyvError) or oom is not None:
            message = str(oom or exc)
        else:
            self.log(traceback.format_exc().rstrip())
            message = f"{type(exc).__name__}: {exc}"
        if len(jobs) > 1:  # find the culprit: each job alone
            for job in jobs:
                self.store.update(job, state="queued", alone=True, progress={}, started=None)
            self.log(f"batch failed ({message}); its jobs run again one by one")
            return
        (job,) = jobs
        self.store.update(job, state="failed", error=message, progress={})
        self.log(f"{job.id} failed: {message}")

    def _finish(self, job: Job, videos: list[dict[str, Any]]) -> None:
        errors = [v["error"] for v in videos if v["status"] == "failed"]
        if errors:
            state = "failed"
        elif any(v["status"] == "stopped" for v in videos):
            state = "stopped"
        else:
            state = "done"
        error = f"{len(errors)} of {len(videos)} video(s) failed: {errors[0]}" if errors else None
        progress = {"stage": state, "fraction": 1.0, "videos": len(videos)}
        self.store.update(job, state=state, videos=videos, error=error, progress=progress)
        self._specs.pop(job.id, None)
        made = sum(1 for v in videos if v.get("rendered"))
        self.log(f"{job.id} {state}: {len(videos)} video(s), {made} rendered now")

    def _video(self, out: Outcome) -> dict[str, Any]:
        v = out.as_json()
        v.pop("path")
        v["is_preview"] = out.status == "stopped"
        v["video_url"] = self.url(out.video)
        v["manifest_url"] = self.url(out.manifest)
        return v

    def url(self, path: Path | None) -> str | None:
        """The /files URL of a file under the work directory's videos/ folder."""
        if path is None or not path.is_file() or path.parent.resolve() != (self.workdir / "videos").resolve():
            return None  # a folder of PNG frames has no URL (its manifest has)
        return "/files/videos/" + quote(path.name)
