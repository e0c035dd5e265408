"""`hyv rewrite --endpoint` against vLLM's real OpenAI-compatible server serving a tiny random Llama.

The model's output is gibberish: these tests check the plumbing (request shape, sampling parameters,
parsing, artifacts, cache hits, failures), not the prose. A recording proxy sits between hyv and vLLM
where a test needs to see the requests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import vllm_harness as vh

from render.files.batch import read_prompt_file
from rewrite.clean import clean_rewrite
from rewrite.instructions import packaged_instruction

pytestmark = pytest.mark.vllm

PROMPTS = [
    "a cat",
    "a red car on a coastal road",
    "an astronaut walking on the moon",
    "rain on a window at night",
    "a chef plating a dessert",
    "two dogs playing in the snow",
    "a lighthouse in a storm",
    "a child flying a kite on a beach",
    "a busy market at dawn",
    "a hummingbird drinking from a flower",
    "a train crossing a bridge",
    "a candle flickering in the dark",
    "waves crashing on rocks",
    "a skateboarder doing a trick",
    "a city skyline at sunset",
    "a fox running through a forest",
]
SAMPLING = {"temperature": 0.7, "top_p": 0.6, "top_k": 20, "repetition_penalty": 1.05}


def prompt_file(tmp_path: Path, prompts: list[str] = PROMPTS) -> tuple[Path, dict[str, str]]:
    """A .txt prompt file with a comment and a blank line, so sources are not just 1..N."""
    path = tmp_path / "prompts.txt"
    lines = ["# prompts for the rewrite test", ""] + prompts
    path.write_text("\n".join(lines) + "\n")
    return path, {p: f"{path}:{i + 3}" for i, p in enumerate(prompts)}


def one_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


@pytest.mark.parametrize(("mode", "title"), [("normal", "Normal mode"), ("director", "Director mode")])
def test_batch_of_16(hyv: Any, recorded: vh.RecordingProxy, tmp_path: Path, mode: str, title: str) -> None:
    path, sources = prompt_file(tmp_path)
    out = tmp_path / "out.jsonl"
    args = [
        "rewrite",
        "--prompts",
        str(path),
        "--mode",
        mode,
        "--endpoint",
        recorded.url,
        "--api-model",
        "tiny",
    ]
    args += ["--max-tokens", "16", "--concurrency", "8", "--output", str(out), "--json"]
    r = hyv(*args)
    assert r.exit_code == 0, r.stderr
    res = one_json(r.stdout)
    assert (res["ok"], res["failed"], res["cached"], res["output"]) == (16, 0, 0, str(out))
    assert res["mode"] == mode and res["instruction_version"] == f"{mode}-v1" and res["model"] == "tiny"

    # What vLLM received: one chat message, the instruction around the prompt, and the sampling parameters.
    posts = recorded.completions()
    assert len(posts) == 16
    assert [rec["path"] for rec in recorded.records if rec["method"] == "GET"] == ["/v1/models"]
    instruction = packaged_instruction(mode)
    sent: dict[str, dict[str, Any]] = {}
    for rec in posts:
        body = rec["body"]
        assert rec["path"] == "/v1/chat/completions" and rec["status"] == 200
        assert (
            body["model"] == "tiny" and len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
        )
        content = body["messages"][0]["content"]
        assert content.startswith(title)
        prompt = content.rsplit('input: "', 1)[1][:-2]
        assert content == instruction.render(prompt)
        assert {k: body[k] for k in SAMPLING} == SAMPLING and body["max_tokens"] == 16 and "seed" not in body
        assert "Authorization" not in rec["headers"]  # no HYV_API_KEY, no header
        sent[prompt] = rec["response"]
    assert sorted(sent) == sorted(PROMPTS)
    assert 2 <= recorded.max_in_flight <= 8

    # The answers, parsed and cleaned, in input order, with their sources; and the JSONL as a prompt file.
    items = res["items"]
    assert [i["original_prompt"] for i in items] == PROMPTS
    for item in items:
        answer = sent[item["original_prompt"]]["choices"][0]["message"]["content"]
        assert item["prompt"] == clean_rewrite(answer) and item["prompt"]
        assert item["source"] == sources[item["original_prompt"]]
    pf = read_prompt_file(out)
    assert pf.errors == []
    assert [(i.prompt, i.original_prompt) for i in pf.items] == [
        (i["prompt"], i["original_prompt"]) for i in items
    ]
    rec0 = json.loads(out.read_text().splitlines()[0])
    assert rec0["sampling"] == {**SAMPLING, "max_tokens": 16, "seed": None} and rec0["chat"] is True

    # Again: everything from the cache, nothing sent.
    recorded.reset()
    r2 = hyv(*args)
    assert r2.exit_code == 0
    res2 = one_json(r2.stdout)
    assert (res2["ok"], res2["cached"]) == (16, 16)
    assert [i["prompt"] for i in res2["items"]] == [i["prompt"] for i in items]
    assert recorded.completions() == []


def test_completion_mode_seed_and_concurrency_1(
    hyv: Any, recorded: vh.RecordingProxy, tmp_path: Path
) -> None:
    path, _ = prompt_file(tmp_path, PROMPTS[:6])
    r = hyv(
        "rewrite", "--prompts", str(path), "--endpoint", recorded.url, "--api-model", "tiny", "--no-chat",
        "--seed", "7", "--temperature", "0.5", "--top-k", "5", "--max-tokens", "8", "--concurrency", "1",
        "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert one_json(r.stdout)["ok"] == 6
    posts = recorded.completions()
    assert len(posts) == 6 and recorded.max_in_flight == 1
    for rec in posts:
        assert rec["path"] == "/v1/completions"
        assert rec["body"]["prompt"].startswith("Normal mode") and "messages" not in rec["body"]
        assert (rec["body"]["seed"], rec["body"]["temperature"], rec["body"]["top_k"]) == (7, 0.5, 5)


def test_single_prompt_director_json(hyv: Any, vllm_server: vh.VllmServer, tmp_path: Path) -> None:
    """The issue's acceptance command, verbatim apart from the port."""
    r = hyv(
        "rewrite",
        "a cat",
        "--mode",
        "director",
        "--endpoint",
        vllm_server.url,
        "--api-model",
        "tiny",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    res = one_json(r.stdout)
    item = res["items"][0]
    assert item["ok"] and item["prompt"] and item["original_prompt"] == "a cat"
    out = Path(res["output"])
    assert out.parent == Path("hyv-out") / "rewrites" and out.name.startswith("director-")
    assert [i.prompt for i in read_prompt_file(out).items] == [item["prompt"]]
    # without --json: the rewrite on stdout, the summary on stderr
    r = hyv("rewrite", "a cat", "--mode", "master", "--endpoint", vllm_server.url, "--api-model", "tiny")
    assert r.exit_code == 0 and r.stdout.strip() == item["prompt"]
    assert "rewrote 1 of 1 prompts (1 from cache)" in r.stderr


def test_wrong_model_name(hyv: Any, vllm_server: vh.VllmServer) -> None:
    r = hyv("rewrite", "a cat", "--endpoint", vllm_server.url, "--api-model", "nope", "--json")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"hyv: error: the server at {vllm_server.url} does not serve model 'nope' (it serves: tiny); "
        "fix --api-model"
    ]


def test_api_key_sent_never_shown(
    hyv: Any, recorded: vh.RecordingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-hyv-test-5ecret"
    monkeypatch.setenv("HYV_API_KEY", secret)
    out = tmp_path / "k.jsonl"
    r = hyv(
        "rewrite",
        "a cat",
        "--endpoint",
        recorded.url,
        "--api-model",
        "tiny",
        "--max-tokens",
        "8",
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.stderr
    assert {rec["headers"].get("Authorization") for rec in recorded.records} == {f"Bearer {secret}"}
    assert secret not in r.output and secret not in out.read_text()
    assert all(secret not in p.read_text() for p in (tmp_path / "cache").rglob("*.json"))


APP = (
    "import typer; from hunyuan_cli.rewrite_cmd import register; app = typer.Typer(); "
    "app.callback()(lambda: None); register(app); app()"
)


def test_server_killed_mid_batch_then_resumed(
    vllm_server: vh.VllmServer, recorded: vh.RecordingProxy, tmp_path: Path
) -> None:
    """SIGKILL the server (and its engine) while requests are in flight: the items that were not done fail
    with their line and exit code 3; after a restart the same command completes them, the rest from cache.
    The kill comes on an event, not a timer: the proxy lets 3 completions through and holds the next ones, and
    the server is killed once those 3 are answered and another request waits."""
    path, sources = prompt_file(tmp_path)
    cache = tmp_path / "cache"
    out = tmp_path / "out.jsonl"
    args = ["rewrite", "--prompts", str(path), "--api-model", "tiny", "--max-tokens", "256"]
    args += ["--concurrency", "2", "--retries", "0", "-o", str(out), "--json"]
    env = {**os.environ, "HYV_CACHE_DIR": str(cache), "PYTHONPATH": str(vh.REPO)}
    recorded.hold_after(3)
    try:
        cmd = [sys.executable, "-c", APP, *args, "--endpoint", recorded.url]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        recorded.wait_until_holding()
        vllm_server.kill(signal.SIGKILL)
        recorded.open_gate()
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 3, stderr
        res = one_json(stdout)
        done = [i for i in res["items"] if i["ok"]]
        failed = [i for i in res["items"] if not i["ok"]]
        assert len(done) == 3 and res["failed"] == len(failed) == 13
        for item in failed:
            assert f"hyv: {sources[item['original_prompt']]}: " in stderr
            assert item["error"].startswith(("request failed after 1 attempt(s)", "the server answered HTTP 5"))
        assert stderr.strip().splitlines()[-1].startswith(f"hyv: error: {len(failed)} prompt(s) failed")
        pf = read_prompt_file(out)  # the successes are usable, the failures are line errors
        assert len(pf.items) == len(done) and len(pf.errors) == len(failed)
    finally:
        recorded.reset()
        if vllm_server.proc is None:
            vllm_server.start()

    rerun = subprocess.run(
        [sys.executable, "-c", APP, *args, "--endpoint", vllm_server.url],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    res2 = one_json(rerun.stdout)
    assert (res2["ok"], res2["failed"], res2["cached"]) == (16, 0, len(done))
    assert {i["original_prompt"] for i in res2["items"] if i["cached"]} == {i["original_prompt"] for i in done}
    assert len(read_prompt_file(out).items) == 16


def test_run_with_rewrite_uses_the_rewritten_prompt(
    hyv: Any, vllm_server: vh.VllmServer, tiny_model: Path, tmp_path: Path
) -> None:
    """`hyv run --rewrite normal`: rewrite (real vLLM) -> encode -> render -> decode; manifests keep both texts."""
    r = hyv(
        "run",
        "a cat",
        "--rewrite",
        "normal",
        "--rewrite-endpoint",
        vllm_server.url,
        "--rewrite-api-model",
        "tiny",
        "--model",
        str(tiny_model),
        "--frames",
        "9",
        "--height",
        "32",
        "--width",
        "32",
        "--steps",
        "2",
        "--json",
        "--workdir",
        str(tmp_path / "w"),
    )
    assert r.exit_code == 0, r.stderr
    res = one_json(r.stdout)
    (v,) = res["videos"]
    assert v["status"] == "done" and Path(v["video"]).exists()
    rewritten = [i.prompt for i in read_prompt_file(Path(res["rewrite"]["jsonl"])).items]
    assert v["prompt"] == rewritten[0] != "a cat"
    m = one_json(hyv("inspect", v["latents"], "--json").stdout)["artifacts"][0]["manifest"]
    assert (m["prompt"], m["original_prompt"]) == (rewritten[0], "a cat")
    # and the JSONL `hyv rewrite` wrote is an input of `hyv encode --prompts`
    e = one_json(
        hyv(
            "encode",
            "--prompts",
            res["rewrite"]["jsonl"],
            "--model",
            str(tiny_model),
            "--frames",
            "9",
            "--json",
            "--workdir",
            str(tmp_path / "w"),
        ).stdout
    )
    assert e["embeddings"][0]["prompt"] == rewritten[0] and e["cache_hits"] == 1
