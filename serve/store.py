"""The job queue, persisted in the work directory so that a killed server finishes its jobs when restarted.

    <workdir>/serve/jobs/<id>.json    one file per job, written atomically at every change of state
    <workdir>/serve/server.lock       held by the one server that serves this work directory

A job is queued, running, then done, stopped (a preview at `stop_at`: continue it), failed or cancelled.
On start, jobs found running (the server was killed) are queued again: what they finished is kept on disk under
content keys and found, not made again. Per-step progress lives in memory only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.core.fsutil import write_text_atomic

STATES = ("queued", "running", "done", "stopped", "failed", "cancelled")
FINISHED = ("done", "stopped", "failed", "cancelled")


@dataclass
class Job:
    id: str
    key: str  # content key of what it asks for (serve.spec.JobSpec.key)
    request: dict[str, Any]  # the request in its normal form (serve.spec.JobSpec.request)
    videos_expected: int
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    videos: list[dict[str, Any]] = field(default_factory=list)  # one entry per video, when finished
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    cancel: bool = False  # asked to stop; honoured at the worker's next progress event
    alone: bool = False  # run in a batch of its own (after a batch it was part of failed as a whole)
    restarts: int = 0  # times it was found running when a server started
    rewrite: dict[str, Any] | None = None  # what the rewrite made (the JSONL artifact, counts)
    progress: dict[str, Any] = field(default_factory=dict)  # not persisted

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("progress")
        return d

    def public(self) -> dict[str, Any]:
        """What the API shows."""
        d = self.record()
        d.pop("alone")
        d["progress"] = self.progress or _idle_progress(self)
        return d


def _idle_progress(job: Job) -> dict[str, Any]:
    done = 1.0 if job.state in ("done", "stopped") else 0.0
    return {"stage": job.state, "fraction": done, "videos": job.videos_expected}


class JobStore:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "serve" / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition(threading.RLock())
        self.version = 0  # bumped at every change; waiters compare it
        self.recovered: list[str] = []  # jobs found running at start: queued again
        for path in sorted(self.dir.glob("job-*.json")):
            try:
                job = Job(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError(f"{path} is not a job file this server can read ({exc}); move it away") from None
            if job.state == "running":
                job.state, job.restarts = ("cancelled" if job.cancel else "queued"), job.restarts + 1
                self.recovered.append(job.id)
                self._write(job)
            self._jobs[job.id] = job
        self._next = 1 + max((int(j.id.removeprefix("job-")) for j in self._jobs.values()), default=0)

    # ---------------------------------------------------------------------------------------------- reading

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        with self._cond:
            return sorted(self._jobs.values(), key=lambda j: j.id)

    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        """A job as the API shows it, taken under the lock (the worker changes jobs meanwhile)."""
        with self._cond:
            job = self._jobs.get(job_id)
            return job.public() if job else None

    def snapshots(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Jobs as the API shows them, newest first: every unfinished one, and finished ones up to `limit` jobs in
        all (None: every job)."""
        with self._cond:
            jobs = sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)
            if limit is not None:
                room = max(0, limit - sum(1 for j in jobs if j.state not in FINISHED))
                finished = {j.id for j in [j for j in jobs if j.state in FINISHED][:room]}
                jobs = [j for j in jobs if j.state not in FINISHED or j.id in finished]
            return [j.public() for j in jobs]

    def find(self, key: str, still_there: Callable[[Job], bool]) -> Job | None:
        """A job with this content key that is queued, running, or finished with its videos still there."""
        with self._cond:
            for job in sorted(self._jobs.values(), key=lambda j: j.id, reverse=True):
                if job.key != key or job.state in ("failed", "cancelled"):
                    continue
                if job.state in ("queued", "running") or still_there(job):
                    return job
            return None

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {s: sum(1 for j in self._jobs.values() if j.state == s) for s in STATES}

    # ---------------------------------------------------------------------------------------------- changes

    def add(self, key: str, request: dict[str, Any], videos: int) -> Job:
        with self._cond:
            job = Job(f"job-{self._next:06d}", key, request, videos)
            self._next += 1
            self._jobs[job.id] = job
            self._changed(job)
            return job

    def update(self, job: Job, persist: bool = True, **changes: Any) -> None:
        with self._cond:
            for k, v in changes.items():
                setattr(job, k, v)
            if job.state in FINISHED and job.finished is None:
                job.finished = time.time()
            self._changed(job, persist)

    def cancel(self, job: Job) -> bool:
        """Cancel a queued job now, or ask the worker to stop a running one; False if it already finished."""
        with self._cond:
            if job.state in FINISHED:
                return False
            if job.state == "queued":
                self.update(job, state="cancelled", cancel=True)
            else:
                self.update(job, cancel=True)
            return True

    def take(self, group_of: Callable[[Job], Hashable], max_videos: int) -> list[Job]:
        """The oldest queued job and the queued jobs that can run with it (same group, up to `max_videos`
        videos in all), marked running."""
        with self._cond:
            queued = [j for j in sorted(self._jobs.values(), key=lambda j: j.id) if j.state == "queued"]
            if not queued:
                return []
            first = queued[0]
            batch, videos = [first], first.videos_expected
            if not first.alone:
                group = group_of(first)
                for j in queued[1:]:
                    if not j.alone and videos + j.videos_expected <= max_videos and group_of(j) == group:
                        batch.append(j)
                        videos += j.videos_expected
            for j in batch:
                self.update(j, state="running", started=time.time(), progress={})
            return batch

    def wait_for_work(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(j.state == "queued" for j in self._jobs.values()), timeout)

    def wait_change(self, since: int, timeout: float) -> int:
        """Block until the store changed after version `since` (or the timeout); return the version."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != since, timeout)
            return self.version

    def poke(self) -> None:
        """Wake every waiter (the server is stopping)."""
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def _changed(self, job: Job, persist: bool = True) -> None:
        if persist:
            self._write(job)
        self.version += 1
        self._cond.notify_all()

    def _write(self, job: Job) -> None:
        write_text_atomic(self.dir / f"{job.id}.json", json.dumps(job.record(), indent=1, ensure_ascii=False))
