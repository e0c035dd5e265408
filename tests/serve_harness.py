"""A real `hyv serve` process on 127.0.0.1 (any free port) and a small HTTP client for it (the standard library's
urllib: what a script on the box would use)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import hyv_cmd

FINISHED = ("done", "stopped", "failed", "cancelled")


class Server:
    def __init__(
        self, workdir: Path, cache: Path, *args: str, env: dict[str, str] | None = None, token: str | None = None
    ) -> None:
        self.workdir = workdir
        self.token = token
        self.log_path = workdir.parent / f"{workdir.name}-server-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "HYV_CACHE_DIR": str(cache), **(env or {})}
        full_env.pop("HYV_MODEL", None)
        self.proc = subprocess.Popen(
            hyv_cmd("serve", "--port", "0", "--workdir", workdir, *args),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=full_env,
        )
        self.stdout = self._ready_line(timeout=120)
        self.url = self.stdout.split()[2].rstrip("/")

    def _ready_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("hyv serve: http://"):
            self.kill()
            raise RuntimeError(f"the server did not start: {line!r}\n{self.log()}")
        return line

    def log(self) -> str:
        """What the server wrote on stderr (and, once it ended, on stdout after its first line)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    # ---------------------------------------------------------------------------------------------- requests

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        auth: bool = True,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON or bytes, headers)."""
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None or method == "POST":
            h.setdefault("Content-Type", "application/json")
        if auth and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                status, payload, got = res.status, res.read(), dict(res.headers)
        except urllib.error.HTTPError as exc:
            status, payload, got = exc.code, exc.read(), dict(exc.headers)
        is_json = got.get("Content-Type", "").startswith("application/json")
        return status, json.loads(payload) if is_json else payload, got

    def get(self, path: str, **kw: Any) -> Any:
        status, payload, _ = self.request("GET", path, **kw)
        assert status == 200, (status, payload)
        return payload

    def submit(self, body: Any) -> dict[str, Any]:
        status, payload, _ = self.request("POST", "/api/jobs", body)
        assert status in (200, 202), (status, payload)
        job: dict[str, Any] = payload["job"]
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.get(f"/api/jobs/{job_id}")["job"]
        return job

    def wait(self, job_id: str, states: tuple[str, ...] = FINISHED, timeout: float = 180) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.05)
        raise AssertionError(f"{job_id} never reached {states}: {self.job(job_id)}\n{self.log()}")

    def events(self, path: str, timeout: float = 180) -> Iterator[dict[str, Any]]:
        """The data of each server-sent event of a stream, until its `end` event."""
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        req = urllib.request.Request(self.url + path, headers=h)
        with urllib.request.urlopen(req, timeout=timeout) as res:
            assert res.headers["Content-Type"] == "text/event-stream"
            name, data = "message", b""
            for line in res:
                if line.startswith(b"event: "):
                    name = line[7:].strip().decode()
                elif line.startswith(b"data: "):
                    data += line[6:]
                elif line.strip() == b"" and data:
                    if name == "end":
                        return
                    yield json.loads(data)
                    name, data = "message", b""

    # ---------------------------------------------------------------------------------------------- ending

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.stdout += self.proc.stdout.read()
            self.proc.stdout.close()
        self._log.close()
