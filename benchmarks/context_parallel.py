"""Context parallel on this machine: the DiT's step time on 1 rank against 2 Ulysses ranks (gloo), same cores.

    python benchmarks/context_parallel.py [--preset medium] [--frames 33 --height 256 --width 256]
                                          [--steps 6] [--reps 3] [--cores 2]

One prompt is encoded once; then, in turn, `torchrun --nproc_per_node=1` renders it with --cores threads, with 1
thread, and `torchrun --nproc_per_node=2 ... --parallel ulysses:2` with --cores/2 threads per rank (the same cores
as the first). The 1-thread run tells apart what the split costs from what threads cost on a shared machine (on
busy cores, OpenMP threads that wait for each other lose far more than one thread does).
Every rank times the interval between the DiT's forwards (one a step) in wall time and in its process's CPU time;
the first interval (warm-up) is dropped. The figures are medians over every timed step of every repetition: rank
0's wall time (the step time a user sees) and the CPU seconds of all ranks together (the work done, which other
jobs on the machine disturb less than the wall time). Output: a table and bench-out/context_parallel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROMPT = "A cat walks on the grass, realistic style."
TEXT_LEN = 8  # fewer tokens than the prompt has


def worker(args: argparse.Namespace) -> None:
    """Under torchrun: load the DiT, time every forward (wall and this process's CPU time), render once, and print
    this rank's intervals between forwards as JSON (rank 0's are the step times)."""
    from render.engine import Engine

    world = int(os.environ.get("WORLD_SIZE", "1"))
    engine = Engine(args.model, parallel=f"ulysses:{world}" if world > 1 else None)
    settings = engine.settings(
        frames=args.frames, height=args.height, width=args.width, steps=args.steps, device="cpu"
    )
    marks: list[tuple[float, float]] = []
    dit = engine.transformer(settings.render.placement)  # the render below finds it loaded, on every rank
    dit.module.register_forward_pre_hook(lambda *_: marks.append((time.perf_counter(), time.process_time())))
    report = engine.render([Path(args.embeddings)], settings, workdir=args.workdir)
    assert report.outcomes[0].status == "done", report.outcomes[0].error
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    rank = engine.parallel.rank if engine.parallel else 0
    print(json.dumps({"rank": rank, "wall": wall[1:], "cpu": cpu[1:]}), flush=True)


def run(
    ranks: int, threads: int, args: argparse.Namespace, embeddings: Path, work: Path
) -> tuple[list[float], list[float]]:
    """(rank 0's step times, the CPU seconds of every rank together in each step)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    cmd += [__file__, "worker", "--model", str(args.model), "--embeddings", str(embeddings)]
    cmd += ["--workdir", str(work), "--frames", str(args.frames), "--height", str(args.height)]
    cmd += ["--width", str(args.width), "--steps", str(args.steps)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    found = [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{"rank"')]
    by_rank = {f["rank"]: f for f in found}
    cpu = [sum(vals) for vals in zip(*(f["cpu"] for f in found), strict=True)]
    return by_rank[0]["wall"], cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="bench", choices=("bench", "worker"))
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--model")
    ap.add_argument("--embeddings")
    ap.add_argument("--workdir")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    if args.mode == "worker":
        return worker(args)
    root = Path(tempfile.mkdtemp(prefix="hyv-cp-bench-"))
    try:
        bench(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # a medium model and its renders: ~0.6 GB


def bench(args: argparse.Namespace, root: Path) -> None:
    os.environ["HYV_CACHE_DIR"] = str(root / "cache")
    from render.engine import Engine
    from render.families import init_tiny

    args.model = init_tiny(root / "model", preset=args.preset, seed=0)
    # A text length the prompt fills: no padding, so both layouts attend over the same tokens (context parallel drops
    # padded text tokens, which alone makes a forward ~10% cheaper at this size).
    engine = Engine(args.model)
    enc = engine.encode([PROMPT], engine.settings(text_len=TEXT_LEN), workdir=root / "enc")
    embeddings = enc.outcomes[0].embeddings
    assert embeddings is not None
    half = max(1, args.cores // 2)
    configs = {
        f"1 rank, {args.cores} threads": (1, args.cores),
        "1 rank, 1 thread": (1, 1),
        f"2 ranks (ulysses:2), {half} thread each": (2, half),
    }
    wall: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    rounds: list[
        dict[str, float]
    ] = []  # each repetition: every configuration's median step, the load before it
    for rep in range(args.reps):  # in turn, so that other load on the machine hits every configuration alike
        this: dict[str, float] = {}
        for name, (ranks, threads) in configs.items():
            this[f"load {name}"] = os.getloadavg()[0]
            w, c = run(ranks, threads, args, embeddings, root / f"w{ranks}-{threads}-{rep}")
            wall[name] += w
            cpu[name] += c
            this[name] = statistics.median(w)
        rounds.append(this)
    result: dict[str, Any] = {
        "preset": args.preset,
        "shape": [args.frames, args.height, args.width],
        "cores": args.cores,
        "step_seconds_median": {n: statistics.median(t) for n, t in wall.items()},
        "cpu_seconds_per_step_all_ranks_median": {n: statistics.median(t) for n, t in cpu.items()},
        "rounds": rounds,
        "all_steps": wall,
        "all_cpu": cpu,
    }
    for name in configs:
        m, c = result["step_seconds_median"][name], result["cpu_seconds_per_step_all_ranks_median"][name]
        print(f"{name:40}{m:>8.3f} s a step, {c:6.3f} CPU-s a step (medians of {len(wall[name])})")
    for n, r in enumerate(rounds, start=1):
        print(
            f"round {n}: " + ", ".join(f"{r[name]:.2f} s (load {r['load ' + name]:.1f})" for name in configs)
        )
    out = REPO / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "context_parallel.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
