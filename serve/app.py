"""What the HTTP API does, apart from HTTP: submit (checked, deduplicated by content key), cancel, continue a
preview, the server's status and the gallery. One `App` per server process; the worker owns the device."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.errors import UsageError
from serve import gallery
from serve.spec import RequestError, parse
from serve.store import Job, JobStore
from serve.worker import Worker

if TYPE_CHECKING:
    from render.engine import Engine


class NotFound(UsageError):
    """HTTP 404."""


class Conflict(UsageError):
    """HTTP 409: the job is not in a state that allows this."""


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: a job with the same content key was queued, running or done already


class App:
    def __init__(
        self, engine: Engine, workdir: Path, placement: dict[str, Any], log: Callable[[str], None]
    ) -> None:
        self.engine = engine
        self.workdir = workdir
        self.placement = placement
        self.log = log
        self.store = JobStore(workdir)
        self.worker = Worker(engine, self.store, workdir, placement, log)
        components = engine.components()
        self.identity = engine.identity(*components)  # part of every job's content key
        self._submit_lock = threading.Lock()

    def start(self) -> None:
        if self.store.recovered:
            self.log(f"{len(self.store.recovered)} job(s) were running when the server stopped; queued again")
        self.worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop()
        self.worker.join(timeout)

    # ---------------------------------------------------------------------------------------------- jobs

    def submit(self, body: Any) -> Submitted:
        """Check a request and queue it, or return the job that already asks for the same videos."""
        spec = parse(body, self.engine, self.placement, self.workdir)
        key = spec.key(self.identity)
        with self._submit_lock:
            found = self.store.find(key, self._videos_there)
            if found is not None:
                return Submitted(found, False)
            job = self.store.add(key, spec.request(), spec.videos)
        self.log(f"{job.id} queued: {spec.videos} video(s)")
        return Submitted(job, True)

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.job(job_id)
        if not self.store.cancel(job):
            raise Conflict(f"{job_id} is {job.state} already; nothing to cancel")
        self.log(f"{job_id} cancel requested")
        return job

    def continue_(self, job_id: str) -> Submitted:
        """A job stopped at `stop_at` (a preview), continued: the same request without `stop_at` finds the
        render's checkpoint and runs only the remaining steps."""
        job = self.job(job_id)
        if job.state != "stopped":
            raise Conflict(f"{job_id} is {job.state}; only a stopped job (a preview at stop_at) continues")
        try:
            spec = parse(job.request, self.engine, self.placement, self.workdir)
        except RequestError as exc:  # the model's defaults changed since
            raise Conflict(f"{job_id} cannot continue: {exc}") from None
        return self.submit(spec.without("stop_at"))

    @staticmethod
    def _videos_there(job: Job) -> bool:
        return all(Path(v["video"]).exists() for v in job.videos if v.get("video")) and bool(job.videos)

    # ---------------------------------------------------------------------------------------------- the rest

    def status(self) -> dict[str, Any]:
        import render

        s = self.engine.settings(**self.placement)
        r, d, e = s.render, s.decode, s.encode
        defaults = {k: getattr(r, k) for k in ("frames", "height", "width", "steps", "seed", "num_videos")}
        defaults |= {k: getattr(r, k) for k in ("guidance", "shift", "cfg_scale")}
        defaults |= {"fps": d.fps, "text_len": e.text_len}
        return {
            "version": render.__version__,
            "model": self.engine.model.source,
            "bundled_demo": self.engine.model.bundled,
            "workdir": str(self.workdir),
            "loads": dict(self.engine.loads),
            "jobs": self.store.counts(),
            "running": list(self.worker.batch),
            "defaults": defaults,
            "image": _image_use(self.engine),
        }

    def gallery(self) -> list[dict[str, Any]]:
        return gallery.videos(self.workdir)


def _image_use(engine: Engine) -> str:
    """Whether the model takes a first frame: "required", "optional" or "none" (the page shows its field)."""
    if engine.family.image_encoding(engine.model) is None:
        return "none"
    return "required" if engine.family.image_required(engine.model) else "optional"
