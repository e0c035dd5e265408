"""Shared fixtures: a tiny model written once per session, a private cache per test, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PENGUIN = SHARED / "data" / "PenguinVideoBenchmark.csv"
SMALL_ARGS = ["--frames", "9", "--height", "32", "--width", "32", "--steps", "4"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own embedding cache and no default model from the environment."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HYV_CACHE_DIR", str(cache))
    monkeypatch.delenv("HYV_MODEL", raising=False)
    yield cache


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from render.tiny import init_tiny

    return init_tiny(tmp_path_factory.mktemp("models") / "tiny", preset="tiny", seed=0)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from render.tiny import init_tiny

    return init_tiny(tmp_path_factory.mktemp("models") / "small", preset="small", seed=1)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def hyv(runner: CliRunner, *args: str | Path) -> object:
    """Run the real Typer app in-process."""
    from hunyuan_cli.app import app

    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def hyv_proc(
    *args: str | Path, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run `hyv` as a subprocess (the installed entry point's module)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hunyuan_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        **kw,
    )  # type: ignore[call-overload]
