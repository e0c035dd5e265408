"""Fixtures of the rewrite tests: a temporary cache for every test, the real CLI, and real vLLM.

The vLLM fixtures are session-scoped: one venv build (cached across runs), one tiny model, one server.
They are never skipped under CI=true; locally HYV_SKIP_VLLM=1 skips them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# pytest puts tests/ on sys.path (for tests/conftest.py), where this folder, tests/rewrite, is found as a
# namespace package `rewrite` ahead of the editable install of the real one. The repo root goes first.
sys.path[:0] = [str(REPO), str(HERE)]  # HERE: the harness modules next to this file
if "rewrite" in sys.modules and getattr(sys.modules["rewrite"], "__file__", None) is None:
    for name in [m for m in sys.modules if m == "rewrite" or m.startswith("rewrite.")]:
        del sys.modules[name]

import vllm_harness as vh  # noqa: E402


def make_app() -> typer.Typer:
    """The real `hyv` application."""
    from hunyuan_cli.app import app

    return app


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HYV_REWRITE_ENDPOINT", raising=False)
    monkeypatch.delenv("HYV_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def hyv() -> Callable[..., Result]:
    """Run `hyv ARGS...` through typer's runner; stdout and stderr are kept apart."""
    app = make_app()
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return run


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    if os.environ.get("HYV_SKIP_VLLM") == "1" and not _in_ci():
        pytest.skip("HYV_SKIP_VLLM=1: the real-vLLM tests are skipped (never under CI)")
    return vh.vllm_venv()  # raises, loudly, when the venv cannot be built


@pytest.fixture(scope="session")
def tiny_model_dir(vllm_python: Path) -> Path:
    return vh.tiny_model(vllm_python)


@pytest.fixture(scope="session")
def vllm_server(
    vllm_python: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[vh.VllmServer]:
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    server = vh.VllmServer(python=vllm_python, model_dir=tiny_model_dir, log_path=log)
    before = set(Path(tempfile.gettempdir()).glob("vllm_dist_*"))
    server.start()
    try:
        yield server
    finally:
        server.kill()
    left = set(Path(tempfile.gettempdir()).glob("vllm_dist_*")) - before
    assert not left, f"the vLLM test servers left {sorted(left)} in the temp directory"


@pytest.fixture(scope="session")
def proxy(vllm_server: vh.VllmServer) -> Iterator[vh.RecordingProxy]:
    p = vh.RecordingProxy(vllm_server.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def recorded(proxy: vh.RecordingProxy) -> vh.RecordingProxy:
    """The proxy with an empty record for this test."""
    proxy.reset()
    return proxy
