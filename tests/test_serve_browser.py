"""The page of `hyv serve` in a real headless Chromium (Debian's `chromium`, driven by Playwright): type a prompt,
submit, watch the progress bar, see the video play in the gallery; reuse its settings; preview at step K and
continue. The screenshot is kept under the test's temporary directory (and copied to $HYV_SERVE_SCREENSHOT when
set: `HYV_SERVE_SCREENSHOT=docs/serve.png pytest tests/test_serve_browser.py` makes the README's picture).

Under CI=true a missing browser fails the test (.ci/run installs it); elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_harness import Server

CHROMIUM = Path(os.environ.get("HYV_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "a blue circle moves to the left on a yellow background"
PLAYING = """() => [...document.querySelectorAll('figure.card[data-preview=false] video')]
    .some((v) => v.readyState >= 2 && v.videoWidth === 64 && v.videoHeight === 64)"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        missing = f"{CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if _in_ci():
            pytest.fail(f"the browser test needs {missing}; .ci/run installs it", pytrace=False)
        pytest.skip(f"no browser here: {missing}")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(  # a fresh profile (--user-data-dir)
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            viewport={"width": 1280, "height": 760},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_the_page_renders_a_prompt_and_shows_it_in_the_gallery(page: Any, tmp_path: Path) -> None:
    server = Server(tmp_path / "w", tmp_path / "cache")
    try:
        page.set_default_timeout(120_000)
        page.goto(server.url + "/")
        page.wait_for_function("() => document.querySelector('#status').textContent.includes('demo model')")
        page.fill("#prompt", PROMPT)
        page.fill("input[name=seed]", "7")
        page.click("#submit-button")
        # the queue shows the job with a live progress bar, then done
        page.wait_for_function(
            "() => [...document.querySelectorAll('.job[data-state=running] progress')]"
            ".some((p) => p.value > 0 && p.value < 1)"
        )
        page.wait_for_selector(".job[data-state=done]")
        card = page.wait_for_selector("figure.card[data-preview=false]")
        page.wait_for_function(PLAYING)  # the mp4 decodes in the browser: 64x64, the demo model's size
        caption = card.inner_text()
        assert PROMPT in caption and "seed 7 · 20 steps · 17×64×64" in caption
        assert "DiT loads: 1" in page.inner_text("#status")
        assert "done" in page.inner_text("#jobs") and page.inner_text("#form-error") == ""
        shot = tmp_path / "serve.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("HYV_SERVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["HYV_SERVE_SCREENSHOT"])

        # "Reuse" puts the video's prompt and settings back in the form
        page.fill("#prompt", "")
        card.query_selector("button.reuse").click()
        assert page.input_value("#prompt") == PROMPT and page.input_value("input[name=seed]") == "7"
        assert page.input_value("input[name=steps]") == "20"

        # preview at step 3, then continue it from the gallery
        page.fill("input[name=seed]", "8")
        page.check("#preview")
        page.fill("#stop-at", "3")
        page.click("#submit-button")
        preview = page.wait_for_selector("figure.card[data-preview=true]")
        assert "preview at step 3" in preview.inner_text() and "seed 8" in preview.inner_text()
        preview.query_selector("button.continue").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('figure.card[data-preview=false] .meta')]"
            ".some((m) => m.textContent.startsWith('seed 8 · 20 steps'))"
        )
        jobs = server.get("/api/jobs")["jobs"]
        assert [j["state"] for j in jobs] == ["done", "stopped", "done"]  # newest first
        assert jobs[0]["videos"][0]["step"] == 20 and any("step 3" in w for w in jobs[0]["warnings"])
    finally:
        assert server.stop() == 0
