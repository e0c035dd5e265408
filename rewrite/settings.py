"""Settings of the rewrite stage: what to ask (mode, instruction, sampling) and whom to ask (a backend).

Every default is defined here once; the CLI reads its defaults from these classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rewrite.errors import RewriteUsageError

MODES = ("normal", "director")
MODE_ALIASES = {"master": "director"}  # "Master" is the upstream name of director mode
DEFAULT_MODE = "normal"
DEFAULT_CONCURRENCY = 8  # requests in flight to a server
DEFAULT_TIMEOUT = 120.0  # seconds for one request
DEFAULT_RETRIES = 3  # extra attempts on 429, 5xx, timeouts and connection errors


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without `user:password@`, (user, password) or None). The password never reaches a message."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url.strip())
    if parts.username is None and parts.password is None:
        return url.strip(), None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    unquote = urllib.parse.unquote
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


def resolve_mode(mode: str) -> str:
    """The canonical mode name for `mode` (case-insensitive; `master` is director)."""
    m = mode.strip().lower()
    m = MODE_ALIASES.get(m, m)
    if m not in MODES:
        raise RewriteUsageError(f"unknown mode {mode!r}; use one of: normal, director (alias: master)")
    return m


@dataclass(frozen=True)
class SamplingSettings:
    """Hunyuan-Large's sampling defaults. `seed=None` lets the backend pick."""

    temperature: float = 0.7
    top_p: float = 0.6
    top_k: int = 20
    repetition_penalty: float = 1.05
    max_tokens: int = 512
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise RewriteUsageError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RewriteUsageError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k != -1 and self.top_k < 1:
            raise RewriteUsageError(f"--top-k must be >= 1 (or -1 for no limit), got {self.top_k}")
        if not self.repetition_penalty > 0:
            raise RewriteUsageError(f"--repetition-penalty must be > 0, got {self.repetition_penalty}")
        if self.max_tokens < 1:
            raise RewriteUsageError(f"--max-tokens must be >= 1, got {self.max_tokens}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RewriteSettings:
    """What to ask the model. `instruction_file` replaces the packaged instruction of `mode`."""

    mode: str = DEFAULT_MODE
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    chat: bool = True  # one user chat message; False sends the instruction as a raw completion prompt
    instruction_file: Path | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", resolve_mode(self.mode))


@dataclass(frozen=True)
class EndpointBackend:
    """An OpenAI-compatible server (vLLM's `vllm.entrypoints.openai.api_server`, or any other).

    `url` is the API base, e.g. http://host:8000/v1 (a URL without a path gets /v1).
    """

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # never printed, logged, cached or written
    # user:password written in the URL: taken out of `url` and sent as HTTP basic auth (never printed either)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = 1.0  # seconds before the first retry; doubles each time, capped at 30 s

    def __post_init__(self) -> None:
        if not self.url.strip():
            raise RewriteUsageError(
                "--endpoint is empty; give the server's base URL, e.g. http://127.0.0.1:8000/v1"
            )
        url, creds = split_credentials(self.url)
        if not url.startswith(("http://", "https://")):
            raise RewriteUsageError(f"--endpoint {url!r} is not an http(s) URL")
        if creds is not None:
            if self.api_key or self.basic_auth:
                raise RewriteUsageError(
                    "--endpoint carries a user and password and HYV_API_KEY is set too; give one of them"
                )
            object.__setattr__(self, "url", url)
            object.__setattr__(self, "basic_auth", creds)
        if not self.model.strip():
            raise RewriteUsageError("--api-model is required with --endpoint (the name the server serves)")
        if self.concurrency < 1:
            raise RewriteUsageError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise RewriteUsageError(f"--timeout must be > 0, got {self.timeout}")
        if self.retries < 0:
            raise RewriteUsageError(f"--retries must be >= 0, got {self.retries}")


@dataclass(frozen=True)
class InProcessBackend:
    """vLLM in this process: one `vllm.LLM` for the whole batch.

    `gpu_memory_utilization=None` means vLLM's default on a GPU and 0.3 on a CPU (vLLM's default asks
    for more memory than a CPU machine has free).
    """

    model_dir: Path
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int = 1
    enforce_eager: bool = False  # True skips torch.compile: ~40 s less start-up on a CPU, slower steps

    def __post_init__(self) -> None:
        if not Path(self.model_dir).is_dir():
            raise RewriteUsageError(f"--rewrite-model {self.model_dir} is not a directory with a model in it")


Backend = EndpointBackend | InProcessBackend


def make_backend(
    *,
    endpoint: str | None,
    api_model: str | None,
    model_dir: Path | None,
    concurrency: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> Backend:
    """The backend the options name: exactly one of `endpoint` (with `api_model`) and `model_dir`.
    None means EndpointBackend's default. The API key comes from HYV_API_KEY and only from there."""
    import os

    if endpoint and model_dir is not None:
        raise RewriteUsageError("give either --endpoint (a server) or --rewrite-model (vLLM in-process), not both")
    if endpoint:
        if not api_model:
            raise RewriteUsageError("--endpoint needs --api-model, the model name the server serves")
        b = EndpointBackend(url=endpoint, model=api_model, api_key=os.environ.get("HYV_API_KEY") or None)
        return replace(
            b,
            concurrency=b.concurrency if concurrency is None else concurrency,
            timeout=b.timeout if timeout is None else timeout,
            retries=b.retries if retries is None else retries,
        )
    if model_dir is not None:
        return InProcessBackend(model_dir=model_dir)
    raise RewriteUsageError(
        "no rewrite model: pass --endpoint URL --api-model NAME (or set HYV_REWRITE_ENDPOINT), or --rewrite-model DIR"
    )
