"""The HTTP API and the page, on the standard library's threading HTTP server.

    GET  /                          the page (serve/static)
    GET  /api/status                model, DiT loads, job counts, the model's default settings
    GET  /api/jobs[?limit=N]        jobs, newest first (200)         POST /api/jobs      submit (JSON)
    GET  /api/jobs/ID               one job, with per-step progress
    GET  /api/jobs/ID/events        server-sent events: the job at every change, until it finishes
    POST /api/jobs/ID/cancel        cancel (a running job stops at its next step)
    POST /api/jobs/ID/continue      continue a preview (a job stopped at stop_at)
    GET  /api/events                server-sent events: the status and the jobs at every change (the page)
    GET  /api/videos                the gallery: every video in the workdir with its settings
    POST /api/images                a first frame (the image's bytes, Content-Type image/...): its id for jobs
    GET  /files/videos/NAME         a video (byte ranges) or its manifest (NAME.json)

Errors are one JSON object, {"error": "...", "status": N}: 400 bad request, 401 no or wrong token, 404, 409,
413, 415. With a token, every request carries it (`Authorization: Bearer T`, or the cookie the page gets from
`/?token=T`); it is compared in constant time and never logged.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import time
import traceback
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from render.core.errors import UsageError
from serve import uploads
from serve.app import Conflict, NotFound, Submitted
from serve.files import send_file, static_file
from serve.spec import RequestError
from serve.store import FINISHED

if TYPE_CHECKING:
    from serve.app import App

MAX_BODY = 1 << 20
COOKIE = "hyv_token"
KEEPALIVE = 15.0  # seconds between comments on an idle event stream
THROTTLE = 0.1  # at most ten events a second on a stream
JOB = re.compile(r"^/api/jobs/(job-\d+)(/[a-z]+)?$")
PAGE_JOBS = 50  # jobs in each event of /api/events: every unfinished one, then the newest
LIST_JOBS = 200  # jobs GET /api/jobs lists unless ?limit=N says otherwise


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """One request. `app`, `token` and `hosts` are set on a subclass by `handler_for`."""

    app: App
    token: str | None = None
    hosts: frozenset[str] | None = None  # Host headers accepted (None: any), against DNS rebinding
    server_version = "hyv-serve"

    # ---------------------------------------------------------------------------------------------- dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            self._check_host()
            if method == "GET" and url.path == "/" and self.token and self._query_token(url.query):
                return self._login()
            self._check_token(url.query)
            self._route(method, url.path, parse_qs(url.query))
        except ApiError as exc:
            self._json({"error": str(exc), "status": exc.status}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - a bug: the traceback in the log, one line to the client
            self.app.log(f"{method} {url.path}: {traceback.format_exc().rstrip()}")
            with contextlib.suppress(OSError):
                self._json({"error": f"internal error: {type(exc).__name__}", "status": 500}, 500)

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        app = self.app
        if method == "GET" and (path == "/" or path.startswith("/static/")):
            return static_file(self, "index.html" if path == "/" else path.removeprefix("/static/"))
        if method == "GET" and path.startswith("/files/videos/"):
            return send_file(self, app.workdir / "videos", path.removeprefix("/files/videos/"))
        if method == "GET" and path == "/api/status":
            return self._json(app.status())
        if method == "GET" and path == "/api/videos":
            return self._json({"videos": app.gallery()})
        if method == "GET" and path == "/api/events":
            return self._stream(lambda: {"status": app.status(), "jobs": self._jobs(PAGE_JOBS)}, lambda _: False)
        if method == "POST" and path == "/api/images":
            return self._json(self._call(lambda: uploads.store(app.workdir, self._image_body())), HTTPStatus.CREATED)
        if path == "/api/jobs":
            if method == "GET":
                return self._json({"jobs": self._jobs(_limit(query))})
            if method == "POST":
                got = self._call(lambda: app.submit(self._body()))
                return self._submitted(got)
        m = JOB.match(path)
        if m:
            job_id, action = m.group(1), m.group(2)
            if method == "GET" and action is None:
                self._call(lambda: app.job(job_id))
                return self._json({"job": app.store.snapshot(job_id)})
            if method == "GET" and action == "/events":
                self._call(lambda: app.job(job_id))
                return self._stream(
                    lambda: {"job": self.app.store.snapshot(job_id)},
                    lambda ev: ev["job"]["state"] in FINISHED,
                )
            if (method, action) in (("POST", "/cancel"), ("DELETE", None)):
                if method == "POST":
                    self._body(allow_empty=True)
                self._call(lambda: app.cancel(job_id))
                return self._json({"job": app.store.snapshot(job_id)})
            if method == "POST" and action == "/continue":
                self._body(allow_empty=True)
                return self._submitted(self._call(lambda: app.continue_(job_id)))
        raise ApiError(HTTPStatus.NOT_FOUND if method == "GET" else HTTPStatus.METHOD_NOT_ALLOWED,
                       f"no {method} {path}; see docs/serve.md")

    def _jobs(self, limit: int | None) -> list[dict[str, Any]]:
        return self.app.store.snapshots(limit)

    def _submitted(self, got: Submitted) -> None:
        code = HTTPStatus.ACCEPTED if got.created else HTTPStatus.OK
        self._json({"job": self.app.store.snapshot(got.job.id), "created": got.created}, code)

    @staticmethod
    def _call(fn: Any) -> Any:
        """Run an App call; its typed errors become HTTP errors."""
        try:
            return fn()
        except NotFound as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, str(exc)) from None
        except Conflict as exc:
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None
        except (RequestError, UsageError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    # ---------------------------------------------------------------------------------------------- requests

    def _body(self, allow_empty: bool = False) -> Any:
        """The request's JSON body. A JSON content type is required (a cross-site form cannot send one)."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON with Content-Type: application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request is over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip() and allow_empty:
            return {}
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON ({exc})") from None

    def _image_body(self) -> bytes:
        """An uploaded image's bytes. An image content type is required (a cross-site form cannot send one)."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the image's bytes with Content-Type: image/...")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > uploads.MAX_UPLOAD:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"images are taken up to {uploads.MAX_UPLOAD >> 20} MB")
        if length <= 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "the upload is empty")
        return self.rfile.read(length)

    def _check_host(self) -> None:
        host = (self.headers.get("Host") or "").lower()
        if self.hosts is not None and host not in self.hosts:
            raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header; use the address the server printed")

    def _query_token(self, query: str) -> str | None:
        found = parse_qs(query).get("token")
        return found[0] if found else None

    def _given_token(self, query: str) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        if COOKIE in cookie:
            return cookie[COOKIE].value
        return self._query_token(query)

    def _check_token(self, query: str) -> None:
        if self.token is None:
            return
        given = self._given_token(query)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise ApiError(HTTPStatus.UNAUTHORIZED, "missing or wrong token (Authorization: Bearer TOKEN)")

    def _login(self) -> None:
        """`/?token=T`: check it, keep it in a cookie, and send the browser to `/` (the token leaves the URL)."""
        self._check_token(urlsplit(self.path).query)
        assert self.token is not None
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # ---------------------------------------------------------------------------------------------- responses

    def _json(self, obj: Any, status: int = HTTPStatus.OK) -> None:
        data = json.dumps(obj, ensure_ascii=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, snapshot: Any, last: Any) -> None:
        """Server-sent events: `snapshot()` at every change of the store until `last(event)` or the server
        stops; a comment every KEEPALIVE seconds otherwise."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        store, version, sent = self.app.store, -1, b""
        while not self.app.worker.stopping.is_set():
            new = store.wait_change(version, KEEPALIVE)
            if new == version:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                continue
            version = new
            event = snapshot()
            data = json.dumps(event, default=str).encode()
            if data == sent:  # the store changed elsewhere (another job)
                continue
            sent = data
            self.wfile.write(b"data: " + data + b"\n\n")
            self.wfile.flush()
            if last(event):
                self.wfile.write(b"event: end\ndata: {}\n\n")
                self.wfile.flush()
                return
            time.sleep(THROTTLE)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged as method, path (no query string: it may hold the token) and status."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        if not path.startswith(("/static/", "/files/")) and path != "/api/events":
            self.app.log(f"{self.command} {path} {int(code) if str(code).isdigit() else code}")


def _limit(query: dict[str, list[str]]) -> int:
    try:
        return max(1, int(query.get("limit", [LIST_JOBS])[0]))
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "limit must be a positive integer") from None


def handler_for(app: App, token: str | None, hosts: frozenset[str] | None) -> type[Handler]:
    return type("BoundHandler", (Handler,), {"app": app, "token": token, "hosts": hosts})
