"""Context parallel on this machine: the DiT's step time on 1 rank against 2 Ulysses ranks (gloo), same cores.

    python benchmarks/context_parallel.py [--preset medium] [--frames 33 --height 256 --width 256]
                                          [--steps 6] [--reps 3] [--cores 2]

One prompt is encoded once; then, in turn, `torchrun --nproc_per_node=1` renders it with --cores threads, with 1
thread, and `torchrun --nproc_per_node=2 ... --parallel ulysses:2` with --cores/2 threads per rank (the same cores
as the first). The 1-thread run tells apart what the split costs from what threads cost on a shared machine (on
busy cores, OpenMP threads that wait for each other lose far more than one thread does).
Each render's steps are timed on rank 0 (the interval between step callbacks; the first step, which includes
warm-up, is dropped); the figure is the median over every timed step of every repetition, and the ratio is
taken within one session. Output: a table and bench-out/context_parallel.json.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROMPT = "A cat walks on the grass, realistic style."


class StepClock:
    """A Progress that records when each denoising step ends."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.warnings: list[str] = []

    def stage(self, name: str, total: int) -> None:
        pass

    def item(self, status: str, label: str) -> None:
        pass

    def steps(self, total: int, label: str) -> None:
        self.times = [time.perf_counter()]

    def step(self, n: int = 1) -> None:
        self.times.append(time.perf_counter())

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def worker(args: argparse.Namespace) -> None:
    """Under torchrun: render once, print rank 0's step times as JSON."""
    from render.engine import Engine

    world = int(os.environ.get("WORLD_SIZE", "1"))
    engine = Engine(args.model, parallel=f"ulysses:{world}" if world > 1 else None)
    settings = engine.settings(
        frames=args.frames, height=args.height, width=args.width, steps=args.steps, device="cpu"
    )
    clock = StepClock()
    report = engine.render([Path(args.embeddings)], settings, workdir=args.workdir, progress=clock)
    if engine.primary:
        assert report.outcomes[0].status == "done", report.outcomes[0].error
        steps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
        print(json.dumps({"steps": steps[1:]}))


def run(ranks: int, threads: int, args: argparse.Namespace, embeddings: Path, work: Path) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    cmd += [__file__, "worker", "--model", str(args.model), "--embeddings", str(embeddings)]
    cmd += ["--workdir", str(work), "--frames", str(args.frames), "--height", str(args.height)]
    cmd += ["--width", str(args.width), "--steps", str(args.steps)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    steps: list[float] = json.loads(p.stdout.strip().splitlines()[-1])["steps"]
    return steps


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
    os.environ["HYV_CACHE_DIR"] = str(root / "cache")
    from render.engine import Engine
    from render.tiny import init_tiny

    args.model = init_tiny(root / "model", preset=args.preset, seed=0)
    enc = Engine(args.model).encode([PROMPT], workdir=root / "enc", progress=None)
    embeddings = enc.outcomes[0].embeddings
    assert embeddings is not None
    configs = {
        f"1 rank, {args.cores} threads": (1, args.cores),
        "1 rank, 1 thread": (1, 1),
        f"2 ranks (ulysses:2), {max(1, args.cores // 2)} thread each": (2, max(1, args.cores // 2)),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    rounds: list[
        dict[str, float]
    ] = []  # per repetition: each configuration's median step and the load before it
    for rep in range(args.reps):  # in turn, so that other load on the machine hits every configuration alike
        this: dict[str, float] = {}
        for name, (ranks, threads) in configs.items():
            this[f"load before {name}"] = os.getloadavg()[0]
            steps = run(ranks, threads, args, embeddings, root / f"w{ranks}-{threads}-{rep}")
            times[name] += steps
            this[name] = statistics.median(steps)
        rounds.append(this)
    med = {name: statistics.median(t) for name, t in times.items()}
    first, _, split = list(configs)
    ratios = [r[split] / r[first] for r in rounds]
    load = [v for r in rounds for k, v in r.items() if k.startswith("load")]
    result: dict[str, Any] = {
        "preset": args.preset,
        "shape": [args.frames, args.height, args.width],
        "cores": args.cores,
        "step_seconds_median": med,
        "load_average_1min": {"min": min(load), "max": max(load)},
        "rounds": rounds,
        "ratio_split_over_threads_per_round": ratios,
        "all_steps": times,
    }
    for name, m in med.items():
        print(f"{name:40}{m:>9.3f} s a step (median of {len(times[name])})")
    print(
        f"load average (1 min) during the runs: {min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores"
    )
    for r, ratio in zip(rounds, ratios, strict=True):
        cells = "  ".join(f"{k.removeprefix('load before ')[:14]}={v:.2f}" for k, v in r.items())
        print(f"round: {cells}  -> 2 ranks / 1 rank {args.cores} threads = {ratio:.2f}")
    out = REPO / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "context_parallel.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
