"""Rewrite throughput (prompts per second) through vLLM's OpenAI server and through the in-process engine.

    .venv/bin/python benchmarks/rewrite_throughput.py [--prompts 32] [--runs 3] [--max-tokens 64]

Uses the test harness's vLLM venv and tiny random Llama (built or reused under ~/.cache/hyv-test), or
--vllm-python / --model. The server is started once; each configuration is measured --runs times on 32
distinct prompts with the cache off, after one warm-up batch, and the median is reported. Start-up (server
health, engine load) is not counted. The in-process engine runs in the vLLM venv (this file re-executed
there with --inprocess-worker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rewrite.settings import Backend

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "rewrite")]

SUBJECTS = ["a cat", "a red car", "an astronaut", "a lighthouse", "a fox", "a chef", "a train", "a kite"]
PLACES = ["at dawn", "in the rain", "on a beach", "in a city at night"]


def prompts(n: int) -> list[tuple[str, str]]:
    return [(f"bench:{i + 1}", f"{SUBJECTS[i % 8]} {PLACES[(i // 8) % 4]} #{i}") for i in range(n)]


def measure(backend: Backend, n: int, runs: int, max_tokens: int) -> list[float]:
    from rewrite.api import rewrite_batch
    from rewrite.settings import RewriteSettings, SamplingSettings

    sampling = SamplingSettings(max_tokens=max_tokens)
    settings = RewriteSettings(mode="normal", use_cache=False, sampling=sampling)
    rewrite_batch(prompts(n), settings, backend)  # warm-up
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        report = rewrite_batch(prompts(n), settings, backend)
        dt = time.perf_counter() - t0
        if report.failed:
            raise SystemExit(f"{len(report.failed)} items failed: {report.failed[0].error}")
        rates.append(n / dt)
    return rates


def inprocess_worker(args: argparse.Namespace) -> None:
    from rewrite.settings import InProcessBackend

    backend = InProcessBackend(model_dir=Path(args.model), max_model_len=2048, enforce_eager=True)
    t0 = time.perf_counter()
    from rewrite.api import open_engine
    from rewrite.inprocess import InProcessEngine

    engine = open_engine(backend)
    assert isinstance(engine, InProcessEngine)
    engine._load()
    startup = time.perf_counter() - t0
    rates = measure(backend, args.prompts, args.runs, args.max_tokens)
    print("BENCH " + json.dumps({"rates": rates, "startup": startup}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--vllm-python", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--inprocess-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["HYV_CACHE_DIR"] = os.environ.get("HYV_BENCH_CACHE") or tempfile.mkdtemp(prefix="hyv-bench-")
    if args.inprocess_worker:
        return inprocess_worker(args)

    import vllm_harness as vh

    from rewrite.settings import EndpointBackend

    python = args.vllm_python or vh.vllm_venv()
    model = args.model or vh.tiny_model(python)
    rows: list[tuple[str, list[float], str]] = []

    log = Path(tempfile.mkdtemp(prefix="hyv-bench-")) / "server.log"
    server = vh.VllmServer(python=python, model_dir=model, log_path=log)
    t0 = time.perf_counter()
    server.start()
    startup = time.perf_counter() - t0
    try:
        for conc in (1, 8):
            backend = EndpointBackend(url=server.url, model=vh.SERVED_NAME, concurrency=conc, retries=0)
            rates = measure(backend, args.prompts, args.runs, args.max_tokens)
            rows.append((f"server, concurrency {conc}", rates, f"server healthy after {startup:.0f} s"))
    finally:
        server.kill()

    cmd = [str(python), __file__, "--inprocess-worker", "--model", str(model), "--prompts", str(args.prompts)]
    cmd += ["--runs", str(args.runs), "--max-tokens", str(args.max_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"in-process worker failed:\n{proc.stderr[-3000:]}")
    res = json.loads(line[6:])
    rows.append(("in-process vllm.LLM", res["rates"], f"engine loaded in {res['startup']:.0f} s"))

    print(
        f"\n{args.prompts} prompts, max_tokens {args.max_tokens}, median of {args.runs} runs, tiny random Llama"
    )
    print(f"{'backend':<26} {'prompts/s':>10}  {'runs':<24} note")
    for name, rates, note in rows:
        runs = ", ".join(f"{r:.1f}" for r in rates)
        print(f"{name:<26} {statistics.median(rates):>10.1f}  {runs:<24} {note}")


if __name__ == "__main__":
    main()
