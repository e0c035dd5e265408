"""`hyv serve` against separate `hyv run` processes: 8 prompts of the bundled demo model at its default settings.

    python benchmarks/serve_bench.py [--repeats 3] [--jobs 8] [--clients 4]

Server: a fresh `hyv serve` (fresh workdir and embedding cache); `--clients` threads submit `--jobs` jobs at once
(one prompt each), then wait for all of them. Reported: the time from the first submission to the last job done
(the server already up, the models not loaded yet), the server's start-up, the DiT loads, the batches the worker
made, and whether each video was rendered once; then the same prompts with another seed on the now warm server.
Sequential: the same prompts as `--jobs` separate `hyv run PROMPT` processes, one after the other (fresh workdir
and cache). The two alternate; medians over the repeats, and the median of the ratios taken within each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

PROMPTS = [
    "a red circle moves up on a black background",
    "a green square moves down on a white background",
    "a blue triangle moves to the left on a yellow background",
    "a yellow circle moves to the right on a blue background",
    "a white square stays still on a red background",
    "a black triangle moves up on a green background",
    "a red square moves to the left on a blue background",
    "a blue circle moves down on a white background",
]
HYV = [sys.executable, "-m", "hunyuan_cli"]


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "HYV_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HYV_MODEL", None)
    return env


def _call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as res:
        return json.loads(res.read())


def server_run(prompts: list[str], clients: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hyv-serve-bench-"))
    log = open(root / "server.log", "w")  # noqa: SIM115
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [*HYV, "serve", "--port", "0", "--workdir", str(root / "w")],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=_env(root / "cache"),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[2].rstrip("/")
        startup = time.perf_counter() - t_start
        ids: list[str] = []
        lock, barrier = threading.Lock(), threading.Barrier(clients)

        def client(n: int) -> None:
            barrier.wait()
            for p in prompts[n::clients]:
                job = _call(url + "/api/jobs", "POST", {"prompt": p})["job"]
                with lock:
                    ids.append(job["id"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while True:
            jobs = [_call(f"{url}/api/jobs/{i}")["job"] for i in ids]
            if all(j["state"] in ("done", "stopped", "failed", "cancelled") for j in jobs):
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        # the same prompts with other seeds on the warm server: no imports, no model loads
        t1 = time.perf_counter()
        warm_ids = [_call(url + "/api/jobs", "POST", {"prompt": p, "seed": 1000})["job"]["id"] for p in prompts]
        while not all(_call(f"{url}/api/jobs/{i}")["job"]["state"] == "done" for i in warm_ids):
            time.sleep(0.05)
        warm = time.perf_counter() - t1
        status = _call(url + "/api/status")
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        log.close()
    videos = [v for j in jobs for v in j["videos"]]
    batches = [line for line in (root / "server.log").read_text().splitlines() if " batch of " in line]
    return {
        "wall_s": wall,
        "warm_wall_s": warm,
        "startup_s": startup,
        "done": sum(j["state"] == "done" for j in jobs),
        "rendered_once": len(videos) == len(prompts) and all(v["rendered"] for v in videos)
        and len({v["latents"] for v in videos}) == len(prompts),
        "dit_loads": status["loads"].get("transformer", 0),
        "batches": [int(b.split(" batch of ")[1].split()[0]) for b in batches],
    }


def sequential_run(prompts: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hyv-run-bench-"))
    t0 = time.perf_counter()
    for p in prompts:
        r = subprocess.run(
            [*HYV, "run", p, "--workdir", str(root / "w"), "--json"],
            capture_output=True,
            text=True,
            env=_env(root / "cache"),
        )
        assert r.returncode == 0, r.stderr
    return {"wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    prompts = (PROMPTS * (args.jobs // len(PROMPTS) + 1))[: args.jobs]
    serve, seq = [], []
    for i in range(args.repeats):
        serve.append(server_run(prompts, args.clients))
        seq.append(sequential_run(prompts))
        print(f"repeat {i + 1}: serve {serve[-1]}, sequential {seq[-1]}", flush=True)
    ratios = [q["wall_s"] / r["wall_s"] for r, q in zip(serve, seq, strict=True)]  # within one repeat
    s = statistics.median(r["wall_s"] for r in serve)
    w = statistics.median(r["warm_wall_s"] for r in serve)
    up = statistics.median(r["startup_s"] for r in serve)
    q = statistics.median(r["wall_s"] for r in seq)
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "clients": args.clients,
                "repeats": args.repeats,
                "serve_median_s": round(s, 2),
                "serve_warm_median_s": round(w, 2),
                "serve_startup_median_s": round(up, 2),
                "sequential_hyv_run_median_s": round(q, 2),
                "speedup": round(q / s, 2),
                "speedup_median_of_repeats": round(statistics.median(ratios), 2),
                "speedup_with_startup": round(q / (s + up), 2),
                "all_done_rendered_once_dit_loaded_once": all(
                    r["done"] == args.jobs and r["rendered_once"] and r["dit_loads"] == 1 for r in serve
                ),
                "batches": [r["batches"] for r in serve],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
