"""A `hyv serve` job with a prompt rewrite, against vLLM's real OpenAI-compatible server (a tiny random Llama):
the video is rendered from the rewritten prompt, and its manifest keeps the user's text."""

from __future__ import annotations

from pathlib import Path

import pytest
import vllm_harness as vh

from render.files.artifacts import read_manifest
from render.files.batch import read_prompt_file
from tests.serve_harness import Server

pytestmark = pytest.mark.vllm


def test_a_job_with_rewrite_renders_the_rewritten_prompt(vllm_server: vh.VllmServer, tmp_path: Path) -> None:
    s = Server(tmp_path / "w", tmp_path / "cache")
    try:
        rewrite = {"mode": "normal", "endpoint": vllm_server.url, "api_model": "tiny"}
        body = {"prompt": "a cat", "frames": 5, "height": 32, "width": 32, "steps": 2, "rewrite": rewrite}
        job = s.wait(s.submit(body)["id"])
        again = s.submit(body)  # the same request: the same job, done
    finally:
        assert s.stop() == 0
    assert job["state"] == "done", job
    (v,) = job["videos"]
    rewritten = [i.prompt for i in read_prompt_file(Path(job["rewrite"]["jsonl"])).items]
    assert v["prompt"] == rewritten[0] != "a cat"
    m = read_manifest(Path(v["latents"]), "latents")[1]
    assert (m["prompt"], m["original_prompt"]) == (rewritten[0], "a cat")
    assert (again["id"], again["state"]) == (job["id"], "done")
