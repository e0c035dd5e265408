"""`hyv rewrite --rewrite-model DIR`: `vllm.LLM` in-process, the whole batch in one `chat` call.

vLLM cannot be imported from hyv's own venv, so the real CLI runs inside the vLLM venv with the repo on
PYTHONPATH (the venv has typer and rich). This module runs before test_vllm_server.py, so no server is up at
the same time (two cores).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import vllm_harness as vh

from render.files.batch import read_prompt_file

pytestmark = pytest.mark.vllm

PROMPTS = ["a cat", "a red car at sunset", "rain on a window", "a fox in the snow", "a lighthouse", "waves"]
APP = (
    "import typer; from hunyuan_cli.rewrite_cmd import register; app = typer.Typer(); "
    "app.callback()(lambda: None); register(app); app()"
)


def hyv_in_vllm_venv(python: Path, cache: Path, *args: str) -> tuple[dict[str, Any], str]:
    tmp = cache.parent / "tmp"  # vLLM leaves vllm_dist_* files in its temporary directory: keep them here
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(vh.REPO), "HYV_CACHE_DIR": str(cache), "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [str(python), "-c", APP, "rewrite", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout[-2000:]  # vLLM's own logs go to stderr, not into the JSON
    return json.loads(lines[0]), proc.stderr


def test_inprocess_batch_and_cache(vllm_python: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "inprocess.jsonl"
    args = [*PROMPTS, "--rewrite-model", str(tiny_model_dir), "--enforce-eager", "--mode", "director"]
    args += ["--max-tokens", "16", "--seed", "1", "-o", str(out), "--json"]
    first, log = hyv_in_vllm_venv(vllm_python, tmp_path / "cache", *args)
    assert "Initializing a V1 LLM engine" in log  # the real engine ran
    assert (first["ok"], first["failed"], first["cached"]) == (len(PROMPTS), 0, 0)
    assert first["model"] == str(tiny_model_dir) and first["instruction_version"] == "director-v1"
    assert all(i["prompt"] for i in first["items"])
    pf = read_prompt_file(out)
    assert [i.original_prompt for i in pf.items] == PROMPTS and pf.errors == []
    rec = json.loads(out.read_text().splitlines()[0])
    sampling = {"temperature": 0.7, "top_p": 0.6, "top_k": 20, "repetition_penalty": 1.05}
    assert rec["sampling"] == {**sampling, "max_tokens": 16, "seed": 1}
    assert rec["finish_reason"] == "length"  # the tiny tokenizer has no end token: 16 tokens each

    # Everything cached: vLLM is not even imported.
    second, log = hyv_in_vllm_venv(vllm_python, tmp_path / "cache", *args)
    assert "Initializing a V1 LLM engine" not in log
    assert (second["ok"], second["cached"]) == (len(PROMPTS), len(PROMPTS))
    assert [i["prompt"] for i in second["items"]] == [i["prompt"] for i in first["items"]]
