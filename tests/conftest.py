"""Shared fixtures: a tiny model written once per session, a private cache per test, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import Result
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
    from render.families import init_tiny

    return init_tiny(tmp_path_factory.mktemp("models") / "tiny", preset="tiny", seed=0)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from render.families import init_tiny

    return init_tiny(tmp_path_factory.mktemp("models") / "small", preset="small", seed=1)


class Cli(Protocol):
    def __call__(self, *args: str | Path) -> Result: ...


def hyv(*args: str | Path) -> Result:
    """Run the real Typer app in-process (stdout and stderr apart, exceptions caught only by the app itself)."""
    from hunyuan_cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return hyv


def hyv_proc(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `hyv` as a subprocess (the installed entry point's module)."""
    return subprocess.run(
        [sys.executable, "-m", "hunyuan_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def hyv_cmd(*args: str | Path) -> list[str]:
    """The argv of `hyv ARGS...` as a subprocess, for tests that signal or race real processes."""
    return [sys.executable, "-m", "hunyuan_cli", *map(str, args)]

# The HunyuanVideo (v1) demo model: the pins of tests/test_pins.py and the v1 demo tests run on it.
V1_DEMO = REPO / "render" / "demo_model"
