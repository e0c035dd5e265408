"""The OpenAI-compatible backend: one HTTP request per prompt, `concurrency` of them in flight.

Standard library only (urllib + threads): no client package to install. The API key goes in the
Authorization header and nowhere else: not in errors, records, the cache or logs.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from rewrite.errors import BackendError, ItemFailure, ModelNotServedError, ServerUnreachableError
from rewrite.settings import EndpointBackend, SamplingSettings

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None


class _HttpStatus(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


def base_url(url: str) -> str:
    """The API base: http://host:port/v1 (a URL without a path gets /v1; a trailing slash is dropped)."""
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.rstrip("/") or "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_message(raw: bytes) -> str:
    """The server's own words from an error body ({"error": {"message"}} or {"message"}), one line."""
    text = raw.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        msg = err.get("message", text) if isinstance(err, dict) else str(err)
    except ValueError:
        msg = text
    return " ".join(str(msg).split())[:300] or "no message"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class _CredentialsStayHome(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, but the Authorization header goes only to the server it was meant for:
    a redirect to another scheme, host or port gets no credentials (urllib would forward them)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) == _origin(req.full_url):
            auth = req.unredirected_hdrs.get("Authorization")
            if auth:
                new.add_unredirected_header("Authorization", auth)
        return new


class ServerEngine:
    """Talks to one server for one batch. `identity` is what the cache keys on."""

    def __init__(self, backend: EndpointBackend) -> None:
        self.backend = backend
        self.base = base_url(backend.url)
        # Loopback servers are reached directly, whatever HTTP(S)_PROXY says.
        handlers: list[Any] = [urllib.request.ProxyHandler({})] if _is_loopback(self.base) else []
        self._opener = urllib.request.build_opener(*handlers, _CredentialsStayHome())
        self.model_name = backend.model
        self.identity: dict[str, Any] = {"backend": "openai", "model": backend.model}
        self._auth: str | None = None
        if backend.api_key:
            self._auth = f"Bearer {backend.api_key}"
        elif backend.basic_auth is not None:
            user, password = backend.basic_auth
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    # --- one HTTP call -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._auth:  # unredirected: see _CredentialsStayHome
            req.add_unredirected_header("Authorization", self._auth)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                out = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            ra = exc.headers.get("Retry-After") if exc.headers else None
            retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
            raise _HttpStatus(exc.code, _error_message(exc.read()), retry_after) from None
        if not isinstance(out, dict):
            raise ValueError("the answer is not a JSON object")
        return out

    # --- before the batch: is the server there, and does it serve the model? ------------------------
    def check(self) -> None:
        try:
            listing = self._call("GET", "/models", None, timeout=min(self.backend.timeout, 15.0))
        except _HttpStatus as exc:
            if exc.status in (401, 403):
                raise BackendError(
                    f"the server at {self.base} refused the request (HTTP {exc.status}); set HYV_API_KEY"
                ) from None
            return  # a server without /models: nothing to check, the requests themselves will tell
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachableError(
                f"cannot reach the rewrite server at {self.base}: {reason}; is it running? (--endpoint)"
            ) from None
        served = [m for m in listing.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not served:
            return
        for m in served:
            if m["id"] == self.backend.model:
                # vLLM reports the weights it loaded as `root`: two servers naming different weights
                # "tiny" do not share cache entries.
                self.identity["root"] = m.get("root")
                return
        names = ", ".join(m["id"] for m in served)
        raise ModelNotServedError(
            f"the server at {self.base} does not serve model {self.backend.model!r} (it serves: {names}); "
            "fix --api-model"
        )

    # --- one prompt, with retries ------------------------------------------------------------------
    def request_body(self, text: str, sampling: SamplingSettings, chat: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.backend.model}
        if chat:
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        # top_k and repetition_penalty are vLLM's extensions of the OpenAI request.
        body.update(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_tokens,
        )
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    def complete(self, text: str, sampling: SamplingSettings, chat: bool) -> Answer:
        body = self.request_body(text, sampling, chat)
        path = "/chat/completions" if chat else "/completions"
        attempt = 0
        while True:
            try:
                out = self._call("POST", path, body, timeout=self.backend.timeout)
                break
            except _HttpStatus as exc:
                if exc.status not in RETRY_STATUS or attempt >= self.backend.retries:
                    raise ItemFailure(f"the server answered {exc}") from None
                delay = exc.retry_after
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                # refused, reset, timed out, cut off, or a garbled answer: the server may be restarting
                if attempt >= self.backend.retries:
                    reason = getattr(exc, "reason", None) or exc
                    raise ItemFailure(f"request failed after {attempt + 1} attempt(s): {reason}") from None
                delay = None
            if delay is None:
                delay = self.backend.backoff * 2**attempt
            time.sleep(min(delay, MAX_BACKOFF))
            attempt += 1
        try:
            choice = out["choices"][0]
            content = choice["message"]["content"] if chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise ItemFailure("the server's answer has no choices[0] text") from None
        return Answer(text=content or "", finish_reason=choice.get("finish_reason"))

    # --- the batch --------------------------------------------------------------------------------
    def run(
        self,
        texts: Sequence[str],
        sampling: SamplingSettings,
        chat: bool,
        on_done: Callable[[int, Answer | ItemFailure, float], None],
    ) -> None:
        """Complete every text, at most `concurrency` at once; `on_done` runs in this thread per item."""
        if not texts:
            return

        def one(i: int) -> tuple[int, Answer | ItemFailure, float]:
            t0 = time.perf_counter()
            try:
                res: Answer | ItemFailure = self.complete(texts[i], sampling, chat)
            except ItemFailure as exc:
                res = exc
            except Exception as exc:  # noqa: BLE001 - one item's surprise must not end the batch
                res = ItemFailure(f"{type(exc).__name__}: {exc}")
            return i, res, time.perf_counter() - t0

        pool = ThreadPoolExecutor(max_workers=min(self.backend.concurrency, len(texts)))
        try:
            pending: set[Future[tuple[int, Answer | ItemFailure, float]]] = {
                pool.submit(one, i) for i in range(len(texts))
            }
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_done(*fut.result())
        finally:
            # On Ctrl-C: drop what has not started; requests in flight end at their timeout.
            pool.shutdown(wait=False, cancel_futures=True)
