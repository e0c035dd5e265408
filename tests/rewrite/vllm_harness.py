"""The real-vLLM test harness: a cached vLLM venv, a tiny model, an OpenAI server, a recording proxy.

Nothing of vLLM is mocked. The venv lives outside the repo (CI clones afresh; the machine's cache stays),
keyed by a hash of scripts/vllm_requirements.txt and scripts/vllm_env.sh, so it is rebuilt only when
those change.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
TEST_CACHE = Path(os.environ.get("HYV_TEST_CACHE", Path.home() / ".cache" / "hyv-test"))
SERVED_NAME = "tiny"


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def vllm_venv() -> Path:
    """Build (or reuse) the vLLM venv; return its python. Takes ~3.5 min cold, nothing warm."""
    from filelock import FileLock

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    digest = _digest(SCRIPTS / "vllm_requirements.txt", SCRIPTS / "vllm_env.sh", extra=py)
    env_dir = TEST_CACHE / f"vllm-{digest}"
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env_dir) + ".lock"):
        if not (env_dir / ".hyv-ready").is_file():
            base = getattr(sys, "_base_executable", sys.executable)
            log = TEST_CACHE / f"{env_dir.name}.build.log"
            with log.open("w") as f:
                proc = subprocess.run(
                    ["bash", str(SCRIPTS / "vllm_env.sh"), str(env_dir)],
                    env={**os.environ, "PYTHON": base},
                    stdout=f,
                    stderr=subprocess.STDOUT,
                )
            if proc.returncode != 0:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"building the vLLM venv failed (log: {log}):\n{tail}")
            # Venvs of older requirements are 3.5 GiB each: drop them once a new one is ready.
            for old in TEST_CACHE.glob("vllm-*"):
                if old.name.split(".")[0] == env_dir.name:
                    continue
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
    return env_dir / "bin" / "python"


def tiny_model(python: Path) -> Path:
    """The tiny random Llama + chat tokenizer, written by the vLLM venv's transformers, cached likewise."""
    from filelock import FileLock

    script = Path(__file__).with_name("tiny_model.py")
    instructions = sorted((REPO / "rewrite" / "instructions").glob("*.txt"))
    out = TEST_CACHE / f"tiny-{_digest(script, *instructions, extra=str(python))}"
    with FileLock(str(out) + ".lock"):
        if not (out / "model.safetensors").is_file():
            subprocess.run([str(python), str(script), str(out)], check=True, capture_output=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VllmServer:
    """vLLM's OpenAI-compatible server as a subprocess in its own process group (it spawns an engine)."""

    python: Path
    model_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def tmp_dir(self) -> Path:
        """The server's own temporary directory (vLLM leaves vllm_dist_* files in it), removed by `kill`."""
        return self.log_path.parent / f"tmp-{self.port}"

    def start(self, timeout: float = 240.0) -> None:
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
            "--gpu-memory-utilization", "0.3", "--served-model-name", SERVED_NAME,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp_dir)}
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"the vLLM server exited with {code}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.kill()
        raise RuntimeError(f"the vLLM server was not healthy after {timeout:.0f} s; log: {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the server and its engine processes, and wait for the server to be gone."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class RecordingProxy:
    """A loopback HTTP proxy in front of the real server that records every request and its answer.

    It lets the tests see the request shape (instruction, sampling parameters, headers) and how many
    requests were in flight at once, without touching vLLM.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.records: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        # A gate for POSTs: the first `passing` go through, later ones wait until `open_gate()`.
        self.passing: int | None = None
        self.posts_seen = 0
        self.posts_answered = 0
        self.held = threading.Event()
        self.gate = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if self.command == "POST":
                    with proxy._lock:
                        index, proxy.posts_seen = proxy.posts_seen, proxy.posts_seen + 1
                    if proxy.passing is not None and index >= proxy.passing:
                        proxy.held.set()
                        proxy.gate.wait(timeout=300)
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                rec: dict[str, Any] = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": json.loads(body) if body else None,
                }
                req = urllib.request.Request(
                    f"http://127.0.0.1:{proxy.upstream_port}{self.path}", data=body, method=self.command
                )
                for k in ("Content-Type", "Authorization", "Accept"):
                    if self.headers.get(k):
                        req.add_header(k, self.headers[k])
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                except (urllib.error.URLError, OSError) as e:
                    status, data = 502, json.dumps({"error": {"message": f"upstream: {e}"}}).encode()
                rec["status"] = status
                try:
                    rec["response"] = json.loads(data)
                except ValueError:
                    rec["response"] = None
                with proxy._lock:  # before the answer goes out: the client's next request can come as soon as it has it
                    proxy.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                with proxy._lock:
                    proxy.records.append(rec)
                    proxy.posts_answered += self.command == "POST"

            do_GET = _forward
            do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["method"] == "POST"]

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
            self.max_in_flight = 0
            self.passing, self.posts_seen, self.posts_answered = None, 0, 0
            self.held.clear()
            self.gate.clear()

    def hold_after(self, n: int) -> None:
        """Let the next `n` completions through; hold the ones after until `open_gate()`."""
        self.reset()
        self.passing = n

    def wait_until_holding(self, timeout: float = 120.0) -> None:
        """Until the `n` passed completions are answered and a later one is held: an event, not a timer."""
        deadline = time.monotonic() + timeout
        while not (self.held.is_set() and self.posts_answered >= (self.passing or 0)):
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy saw {self.posts_seen} completions, answered {self.posts_answered}")
            time.sleep(0.02)

    def open_gate(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
