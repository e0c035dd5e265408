"""Credentials for the rewrite server stay where they belong: the API key is not forwarded to a redirect target
on another host or port, and a user:password written in the endpoint URL is sent as HTTP basic auth and never
printed or written. Real HTTP servers on loopback; `hyv rewrite` as a subprocess."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyv_proc

SECRET = "s3cret-Value"


class Server:
    """A tiny OpenAI-compatible server that records the headers of every request; or, with `redirect_to`, one
    that answers every request with a 307 to the same path on another base URL."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                me.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.endswith("/models"):
                    body: dict[str, Any] = {"data": [{"id": "m", "root": "m"}]}
                else:
                    body = {"choices": [{"message": {"content": "A cat, rewritten."}, "finish_reason": "stop"}]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def base(self, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _rewrite(endpoint: str, tmp_path: Path, **env: str) -> Any:
    return hyv_proc(
        "rewrite", "a cat", "--endpoint", endpoint, "--api-model", "m", "--retries", "0", "--json",
        "-o", tmp_path / "out.jsonl",
        env={"HYV_CACHE_DIR": str(tmp_path / "cache"), "HYV_REWRITE_ENDPOINT": "", **env},
        timeout=60,
    )  # fmt: skip


def test_the_api_key_is_not_forwarded_to_another_host_or_port(elsewhere: Server, tmp_path: Path) -> None:
    redirector = Server(redirect_to=elsewhere.base())
    try:
        _rewrite(redirector.base() + "/v1", tmp_path, HYV_API_KEY=SECRET)
    finally:
        redirector.close()
    assert redirector.requests and all(
        r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in redirector.requests
    )
    assert elsewhere.requests, "the redirect was followed"
    assert not [r for r in elsewhere.requests if "Authorization" in r["headers"]]


def test_a_redirect_on_the_same_server_keeps_the_key(tmp_path: Path) -> None:
    s = Server()
    try:  # /v1/... answers 307 to /v2/... on the same host and port
        s.httpd.RequestHandlerClass.do_GET = _same_origin_redirect(s)  # type: ignore[attr-defined]
        r = _rewrite(s.base() + "/v1", tmp_path, HYV_API_KEY=SECRET)
    finally:
        s.close()
    assert r.returncode == 0, r.stderr
    followed = [q for q in s.requests if q["path"].startswith("/v2/")]
    assert followed and all(q["headers"].get("Authorization") == f"Bearer {SECRET}" for q in followed)


def _same_origin_redirect(s: Server) -> Any:
    answer = s.httpd.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def do_get(self: Any) -> None:
        if self.path.startswith("/v1/"):
            s.requests.append({"path": self.path, "headers": dict(self.headers.items())})
            self.send_response(307)
            self.send_header("Location", "/v2/" + self.path.removeprefix("/v1/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            answer(self)

    return do_get


def test_credentials_in_the_url_are_basic_auth_and_never_shown(elsewhere: Server, tmp_path: Path) -> None:
    r = _rewrite(elsewhere.base(f"alice:{SECRET}@") + "/v1", tmp_path)
    assert r.returncode == 0, r.stderr
    want = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert elsewhere.requests and all(q["headers"].get("Authorization") == want for q in elsewhere.requests)
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert SECRET not in r.stdout + r.stderr and not any(SECRET in w for w in written)


def test_credentials_stay_out_of_error_messages(tmp_path: Path) -> None:
    closed = Server()
    closed.close()  # nothing listens on its port any more
    r = _rewrite(closed.base(f"alice:{SECRET}@") + "/v1", tmp_path)
    assert r.returncode != 0 and "cannot reach the rewrite server" in r.stderr
    assert SECRET not in r.stdout + r.stderr and "alice" not in r.stderr
    r = hyv_proc("rewrite", "a cat", "--endpoint", f"ftp://alice:{SECRET}@host/v1", "--api-model", "m")
    assert r.returncode == 2 and SECRET not in r.stderr
