"""The rewrite stage without vLLM: instructions, cleaning, cache keys, JSONL, usage errors, HTTP retries."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from render.files.batch import read_prompt_file
from rewrite.api import ItemResult, RewriteReport, rewrite_batch, write_jsonl
from rewrite.cache import cache_get, cache_key, cache_put
from rewrite.clean import clean_rewrite
from rewrite.errors import InstructionError, ItemFailure, RewriteUsageError
from rewrite.instructions import file_instruction, load_instruction, packaged_instruction
from rewrite.settings import EndpointBackend, RewriteSettings, SamplingSettings, make_backend, resolve_mode

# --- modes and instructions ----------------------------------------------------------------------------


def test_modes_and_alias() -> None:
    assert resolve_mode("normal") == "normal"
    assert resolve_mode("Director") == "director"
    assert resolve_mode("master") == "director"
    assert RewriteSettings(mode="MASTER").mode == "director"
    with pytest.raises(RewriteUsageError) as e:
        resolve_mode("poet")
    assert e.value.exit_code == 2


@pytest.mark.parametrize(("mode", "title"), [("normal", "Normal mode"), ("director", "Director mode")])
def test_packaged_instruction_shape(mode: str, title: str) -> None:
    ins = packaged_instruction(mode)
    assert ins.version == f"{mode}-v1"
    lines = ins.text.splitlines()
    assert lines[0].startswith(title)
    assert "rewrite" in lines[2]  # the role sentence
    assert [n for n in range(1, 6) if any(line.startswith(f"{n}. ") for line in lines)] == [1, 2, 3, 4, 5]
    text = ins.render('a {curly} "cat"')
    assert text.endswith('Given Input:\ninput: "a {curly} "cat""\n')
    assert len(ins.sha256) == 64


def test_modes_differ_only_where_they_should() -> None:
    n, d = packaged_instruction("normal").text, packaged_instruction("director").text
    assert n != d
    assert "camera movement" in d and "camera movement" not in n
    assert "one or two words" in n


def test_instruction_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("Rewrite this: {input}\n")
    ins = load_instruction("normal", f)
    assert ins.version == "file:" + ins.sha256[:12]
    assert ins.render("a cat") == "Rewrite this: a cat\n"
    f.write_text("no placeholder")
    with pytest.raises(InstructionError) as e:
        file_instruction(f)
    assert e.value.exit_code == 2
    with pytest.raises(InstructionError):
        file_instruction(tmp_path / "missing.txt")


# --- cleaning ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  A cat on a mat.  ", "A cat on a mat."),
        ('"A cat on a mat."', "A cat on a mat."),
        ("“A cat on a mat.”", "A cat on a mat."),
        ("Output: A cat on a mat.", "A cat on a mat."),
        ('**Rewritten prompt:** "A cat on a mat."', "A cat on a mat."),
        ('input: "A cat on a mat."', "A cat on a mat."),
        ("<think>the user wants a cat</think>\nA cat on a mat.", "A cat on a mat."),
        ("the user wants a cat</think> A cat on a mat.", "A cat on a mat."),
        ("Un café à Paris, golden light.", "Un café à Paris, golden light."),
        ('He said "hi" to her', 'He said "hi" to her'),
    ],
)
def test_clean(raw: str, clean: str) -> None:
    assert clean_rewrite(raw) == clean


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ('  ""  ', "empty"),
        ("Output:", "empty"),
        ("<think>still thinking", "unfinished reasoning"),
        ("一只小狗在草地上奔跑。", "not English"),
        ("... 123 !!!", "no letters"),
    ],
)
def test_clean_failures(raw: str, reason: str) -> None:
    with pytest.raises(ItemFailure, match=reason):
        clean_rewrite(raw)


# --- cache ---------------------------------------------------------------------------------------------

BASE: dict[str, Any] = dict(
    model={"backend": "openai", "model": "tiny"},
    mode="normal",
    instruction_sha256="ab" * 32,
    chat=True,
    sampling=SamplingSettings().as_dict(),
    prompt="a cat",
)


def test_cache_key_is_versioned_and_sensitive() -> None:
    k = cache_key(**BASE)
    assert k.startswith("rw1-") and len(k) == 4 + 64
    assert cache_key(**BASE) == k
    variants = [
        {"model": {"backend": "openai", "model": "other"}},
        {"mode": "director"},
        {"instruction_sha256": "cd" * 32},
        {"chat": False},
        {"sampling": SamplingSettings(seed=1).as_dict()},
        {"sampling": SamplingSettings(temperature=0.2).as_dict()},
        {"prompt": "a cat "},
    ]
    keys = {cache_key(**{**BASE, **v}) for v in variants}
    assert k not in keys and len(keys) == len(variants)


def test_cache_roundtrip(tmp_path: Path) -> None:
    k = cache_key(**BASE)
    assert cache_get(k, tmp_path) is None
    cache_put(k, {"prompt": "A cat."}, tmp_path)
    assert cache_get(k, tmp_path) == {"prompt": "A cat.", "key": k}
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_dir_from_env(tmp_path: Path) -> None:
    k = cache_key(**BASE)
    cache_put(k, {"prompt": "A cat."})
    assert list((tmp_path / "cache" / "rewrites").rglob(f"{k}.json"))


# --- settings ------------------------------------------------------------------------------------------


def test_defaults_are_hunyuan_large() -> None:
    s = SamplingSettings()
    assert (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.seed) == (0.7, 0.6, 20, 1.05, None)


@pytest.mark.parametrize(
    "kw", [{"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"top_k": 0}, {"max_tokens": 0}]
)
def test_bad_sampling(kw: dict[str, Any]) -> None:
    with pytest.raises(RewriteUsageError):
        SamplingSettings(**kw)


def test_make_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYV_API_KEY", "sk-unit-secret")
    b = make_backend(endpoint="http://h:1/v1", api_model="m", model_dir=None, concurrency=2)
    assert isinstance(b, EndpointBackend) and b.concurrency == 2 and b.api_key == "sk-unit-secret"
    assert "sk-unit-secret" not in repr(b)
    for kw in [
        {"endpoint": None, "api_model": None, "model_dir": None},
        {"endpoint": "http://h:1/v1", "api_model": None, "model_dir": None},
        {"endpoint": "http://h:1/v1", "api_model": "m", "model_dir": tmp_path},
        {"endpoint": "ftp://h", "api_model": "m", "model_dir": None},
    ]:
        with pytest.raises(RewriteUsageError):
            make_backend(**kw)


# --- the JSONL artifact --------------------------------------------------------------------------------


def test_jsonl_is_a_prompt_file(tmp_path: Path) -> None:
    report = RewriteReport(
        items=[
            ItemResult(0, "p.txt:1", "a cat", "A tabby cat naps on a sunny mat."),
            ItemResult(1, "p.txt:2", "a dog", None, error="the model returned an empty rewrite"),
            ItemResult(2, "p.txt:4", "a car", "A red car.", cached=True),
        ],
        mode="director",
        model="tiny",
        model_identity={"backend": "openai", "model": "tiny"},
        instruction_version="director-v1",
        instruction_sha256="ab" * 32,
        chat=True,
        sampling=SamplingSettings().as_dict(),
        seconds=1.0,
    )
    out = write_jsonl(report, tmp_path / "r" / "out.jsonl")
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs[0]["prompt"] == "A tabby cat naps on a sunny mat." and recs[0]["original_prompt"] == "a cat"
    assert recs[0]["mode"] == "director" and recs[0]["instruction_version"] == "director-v1"
    assert recs[0]["sampling"]["top_k"] == 20 and recs[0]["cached"] is False and recs[2]["cached"] is True
    assert recs[1]["ok"] is False and "prompt" not in recs[1]

    pf = read_prompt_file(out)
    assert [(i.prompt, i.original_prompt) for i in pf.items] == [
        ("A tabby cat naps on a sunny mat.", "a cat"),
        ("A red car.", "a car"),
    ]
    assert [e.source for e in pf.errors] == [f"{out}:2"]
    assert "empty rewrite" in pf.errors[0].message


# --- the CLI without a server --------------------------------------------------------------------------


def test_cli_usage_errors(hyv: Any, tmp_path: Path) -> None:
    r = hyv("rewrite", "a cat")
    assert r.exit_code == 2 and r.stderr.startswith("hyv: error: no rewrite model")
    r = hyv("rewrite", "a cat", "--mode", "poet", "--endpoint", "http://127.0.0.1:9/v1", "--api-model", "x")
    assert r.exit_code == 2 and "unknown mode 'poet'" in r.stderr
    r = hyv("rewrite", "--endpoint", "http://127.0.0.1:9/v1", "--api-model", "x")
    assert r.exit_code == 2 and "no prompts" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing to fill in")
    r = hyv(
        "rewrite",
        "a",
        "--instruction-file",
        str(bad),
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--api-model",
        "x",
    )
    assert r.exit_code == 2 and "{input}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_model_without_vllm(hyv: Any, tmp_path: Path) -> None:
    import importlib.util

    from rewrite.inprocess import INSTALL_HINT

    assert importlib.util.find_spec("vllm") is None  # hyv's own venv has no vLLM: it lives in its own venv
    r = hyv("rewrite", "a cat", "--rewrite-model", str(tmp_path))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"hyv: error: {INSTALL_HINT}"]
    assert "pip install '.[rewrite]'" in INSTALL_HINT
    # an endpoint from the environment does not get in the way of an explicit --rewrite-model
    r = hyv(
        "rewrite", "a cat", "--rewrite-model", str(tmp_path), env={"HYV_REWRITE_ENDPOINT": "http://127.0.0.1:9/v1"}
    )
    assert r.exit_code == 2 and r.stderr.strip() == f"hyv: error: {INSTALL_HINT}"
    # the old spelling (--model names the video model in every other command) still works, and says so
    r = hyv("rewrite", "a cat", "--model", str(tmp_path))
    assert r.exit_code == 2
    deprecation, error = [line for line in r.stderr.splitlines() if line.strip()]
    assert "--model` is deprecated; use --rewrite-model" in deprecation and error == f"hyv: error: {INSTALL_HINT}"


def test_cli_refused_connection(hyv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HYV_API_KEY", "sk-never-shown")
    r = hyv(
        "rewrite",
        "a cat",
        "--api-model",
        "tiny",
        "--json",
        env={"HYV_REWRITE_ENDPOINT": f"http://127.0.0.1:{port}/v1"},
    )
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith(f"hyv: error: cannot reach the rewrite server at http://127.0.0.1:{port}/v1")
    assert "sk-never-shown" not in r.output


# --- retries against a scripted HTTP server (the client's own logic; vLLM is tested for real elsewhere) --


class _Scripted(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(404, {"error": {"message": "no listing here"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        if status != 200:
            self._send(status, {"error": {"message": f"scripted {status}"}})
        else:
            self._send(
                200, {"choices": [{"message": {"content": 'Output: "A cat."'}, "finish_reason": "stop"}]}
            )


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("H", (_Scripted,), {"statuses": [], "seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", handler
    srv.shutdown()
    srv.server_close()


def test_retries_then_success_and_no_retry_on_400(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.statuses = [503, 429, 200, 400]
    backend = EndpointBackend(url=url, model="m", concurrency=1, retries=2, backoff=0.01)
    report = rewrite_batch([("a:1", "a cat"), ("a:2", "a dog")], RewriteSettings(), backend)
    assert [r.prompt for r in report.items] == ["A cat.", None]
    assert report.items[1].error == "the server answered HTTP 400: scripted 400"
    assert len(handler.seen) == 4  # 3 attempts for the first, 1 for the second


def test_retries_exhausted(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.statuses = [500, 500, 500]
    backend = EndpointBackend(url=url, model="m", concurrency=1, retries=2, backoff=0.01)
    report = rewrite_batch([("a:1", "a cat")], RewriteSettings(), backend)
    assert report.items[0].error == "the server answered HTTP 500: scripted 500"
    assert len(handler.seen) == 3
