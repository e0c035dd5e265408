"""`hyv serve`: one process, one warm engine, an HTTP API and a page (serve.api) over a persisted job queue.

Loopback by default. Any other address needs a token, which every request must then carry; it is never printed
or logged. One server per work directory (a lock file); a second one is refused. SIGINT or SIGTERM stops it:
the running batch is interrupted at its next step and its jobs are queued again for the next start.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from serve import DEFAULT_HOST, DEFAULT_PORT

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_TOKEN = 8


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (the printed address says which)
    model: str | None = None  # None: $HYV_MODEL, else the bundled demo model
    workdir: Path = Path("hyv-out")
    token: str | None = None
    device: str | None = None
    dtype: str | None = None

    def __repr__(self) -> str:  # the token stays out of every log and traceback
        return f"ServeOptions(host={self.host!r}, port={self.port}, workdir={str(self.workdir)!r})"


def check_options(opts: ServeOptions) -> None:
    """Refuse to listen beyond this machine without a token, and a token too short to guess."""
    if opts.token is not None and len(opts.token) < MIN_TOKEN:
        raise UsageError(f"the token must be at least {MIN_TOKEN} characters")
    if opts.host not in LOOPBACK and not opts.token:
        raise UsageError(
            f"--host {opts.host} listens beyond this machine: give --token (or HYV_SERVE_TOKEN), which every "
            "request must then carry"
        )
    if not 0 <= opts.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {opts.port}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # event streams end with the process


def serve(opts: ServeOptions, ready: Callable[[str, Any], None], log: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM. `ready(url, model)` is called once the port is bound and the worker runs."""
    from filelock import FileLock, Timeout

    from render.engine import Engine
    from serve.app import App

    check_options(opts)
    engine = Engine(opts.model, policy="keep-warm")
    placement: dict[str, Any] = {k: v for k, v in (("device", opts.device), ("dtype", opts.dtype)) if v is not None}
    engine.settings(**placement)  # a bad --device or model default is refused before anything listens
    engine.require("encode", "render", "decode")
    (opts.workdir / "serve").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(opts.workdir / "serve" / "server.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"another `hyv serve` is serving {opts.workdir}; stop it or give another --workdir") from None
    try:
        app = App(engine, opts.workdir, placement, log)
        httpd = _listen(opts, app)
        try:
            app.start()
            host = f"[{opts.host}]" if ":" in opts.host else opts.host
            ready(f"http://{host}:{httpd.server_address[1]}/", engine.model)
            _serve_until_signalled(httpd)
        finally:
            log("stopping…")
            app.stop()
            httpd.server_close()
        queued = app.store.counts()["queued"]
        log(f"stopped; {queued} queued job(s) run at the next start" if queued else "stopped")
    finally:
        lock.release()


def _listen(opts: ServeOptions, app: Any) -> ThreadingHTTPServer:
    from serve.api import handler_for

    cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in opts.host else _Server
    hosts = None
    if opts.host in LOOPBACK:
        hosts = frozenset(f"{h}:{{port}}" for h in ("127.0.0.1", "localhost", "[::1]"))
    try:
        httpd = cls((opts.host, opts.port), handler_for(app, opts.token, None))
    except OSError as exc:
        raise UsageError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}") from None
    if hosts is not None:  # now that the port is known
        port = httpd.server_address[1]
        httpd.RequestHandlerClass = handler_for(app, opts.token, frozenset(h.format(port=port) for h in hosts))
    return httpd


def _serve_until_signalled(httpd: ThreadingHTTPServer) -> None:
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
