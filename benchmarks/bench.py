"""Benchmarks against diffusers' HunyuanVideoPipeline on the same random-weight model, same machine, same session.

    python benchmarks/bench.py stages  [--preset medium] [--frames 33 --height 256 --width 256 --steps 10] [--reps 3]
    python benchmarks/bench.py batch   [--preset medium] [--frames 17 --height 64 --width 64 --steps 10] [--reps 3]

`stages`: each hyv stage as its own process (encode, render, decode) against one diffusers process doing the same.
`batch`:  an 8-item .jsonl batch (4 prompts x 2 seeds) through one `hyv run --prompts` against 8 separate diffusers
          processes that each load the model (what upstream's one-prompt-per-run amounts to).
Every figure is a median over --reps runs; peak memory is each process's peak RSS (wait4). Output: a table and a
JSON file in --out.
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
PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "A red circle moves to the right on a black background.",
    "Rain falls on a quiet street, cinematic lighting.",
    "Two puppies wag their tails in a large cage.",
]


def run_wait4(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) measured with wait4 on the child."""
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:5])}... failed ({p.returncode}): {err_f.read()[-2000:]}")
        return wall, int(ru.ru_maxrss) * 1024, out_f.read()


def hyv_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hunyuan_cli", *args]


def ensure_model(root: Path, preset: str) -> Path:
    d = root / f"model-{preset}"
    if not (d / "model_index.json").exists():
        run_wait4(hyv_cmd("models", "init-tiny", str(d), "--preset", preset, "--force"), dict(os.environ))
    return d


def crop_start(model: Path, frames: int) -> int:
    from render.engine import Engine

    return Engine(model).encode_stage().template(frames).crop_start


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_stages(a: argparse.Namespace, root: Path) -> dict[str, Any]:
    model = ensure_model(root, a.preset)
    size = ["--frames", str(a.frames), "--height", str(a.height), "--width", str(a.width)]
    hy: dict[str, list[float]] = {
        k: []
        for k in (
            "encode",
            "render",
            "decode",
            "encode_rss",
            "render_rss",
            "decode_rss",
            "encode_stage",
            "render_stage",
            "decode_stage",
        )
    }
    df: dict[str, list[float]] = {
        k: [] for k in ("wall", "rss", "load", "encode", "render", "decode", "import")
    }
    cs = crop_start(model, a.frames)
    for rep in range(a.reps):
        work = root / f"stages-{rep}"
        shutil.rmtree(work, ignore_errors=True)  # a fresh workdir and cache: nothing is skipped
        env = {**os.environ, "HYV_CACHE_DIR": str(work / "cache")}
        w, rss, out = run_wait4(
            hyv_cmd(
                "encode",
                PROMPTS[0],
                "--model",
                str(model),
                "--frames",
                str(a.frames),
                "--json",
                "--workdir",
                str(work),
            ),
            env,
        )
        emb = json.loads(out)["embeddings"][0]["path"]
        hy["encode"].append(w)
        hy["encode_rss"].append(rss)
        w, rss, out = run_wait4(
            hyv_cmd(
                "render",
                emb,
                "--model",
                str(model),
                *size,
                "--steps",
                str(a.steps),
                "--json",
                "--workdir",
                str(work),
            ),
            env,
        )
        lat = json.loads(out)["latents"][0]["path"]
        hy["render"].append(w)
        hy["render_rss"].append(rss)
        w, rss, out = run_wait4(
            hyv_cmd("decode", lat, "--model", str(model), "--json", "--workdir", str(work)), env
        )
        hy["decode"].append(w)
        hy["decode_rss"].append(rss)
        for stage, path in (("encode", emb), ("render", lat)):
            m = json.loads(run_wait4(hyv_cmd("inspect", path, "--json"), env)[2])["manifest"]
            hy[f"{stage}_stage"].append(m["wall_seconds"])
        vid = json.loads(out)["videos"][0]["manifest"]
        hy["decode_stage"].append(json.loads(Path(vid).read_text())["wall_seconds"])

        w, rss, out = run_wait4(
            [
                sys.executable,
                str(REPO / "benchmarks" / "diffusers_worker.py"),
                str(model),
                PROMPTS[0],
                *size,
                "--steps",
                str(a.steps),
                "--crop-start",
                str(cs),
            ],
            env,
        )
        d = json.loads(out)
        df["wall"].append(w)
        df["rss"].append(rss)
        for k in ("load", "encode", "render", "decode", "import"):
            df[k].append(d[k])
    return {
        "hyv": {k: med(v) for k, v in hy.items()},
        "diffusers": {k: med(v) for k, v in df.items()},
        "reps": a.reps,
        "preset": a.preset,
        "size": [a.frames, a.height, a.width],
        "steps": a.steps,
    }


def bench_batch(a: argparse.Namespace, root: Path) -> dict[str, Any]:
    model = ensure_model(root, a.preset)
    size = ["--frames", str(a.frames), "--height", str(a.height), "--width", str(a.width)]
    batch = root / "batch.jsonl"
    items = [(p, s) for s in (1, 2) for p in PROMPTS]
    batch.write_text("".join(json.dumps({"prompt": p, "seed": s}) + "\n" for p, s in items))
    cs = crop_start(model, a.frames)
    hyv_wall, hyv_rss, df_wall, df_rss = [], [], [], []
    for rep in range(a.reps):
        work = root / f"batch-{rep}"
        shutil.rmtree(work, ignore_errors=True)
        env = {**os.environ, "HYV_CACHE_DIR": str(work / "cache")}
        w, rss, out = run_wait4(
            hyv_cmd(
                "run",
                "--prompts",
                str(batch),
                "--model",
                str(model),
                *size,
                "--steps",
                str(a.steps),
                "--json",
                "--workdir",
                str(work),
            ),
            env,
        )
        res = json.loads(out)
        assert res["made"] == 8, res
        hyv_wall.append(w)
        hyv_rss.append(rss)
        total, peak = 0.0, 0
        for p, s in items:
            w, rss, _ = run_wait4(
                [
                    sys.executable,
                    str(REPO / "benchmarks" / "diffusers_worker.py"),
                    str(model),
                    p,
                    *size,
                    "--steps",
                    str(a.steps),
                    "--seed",
                    str(s),
                    "--crop-start",
                    str(cs),
                ],
                env,
            )
            total += w
            peak = max(peak, rss)
        df_wall.append(total)
        df_rss.append(peak)
    return {
        "hyv_run_batch_s": med(hyv_wall),
        "hyv_peak_rss": med(hyv_rss),
        "diffusers_8_runs_s": med(df_wall),
        "diffusers_peak_rss": med(df_rss),
        "reps": a.reps,
        "preset": a.preset,
        "size": [a.frames, a.height, a.width],
        "steps": a.steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["stages", "batch"])
    ap.add_argument("--preset", default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "hyv-bench")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    dflt = {"stages": ("medium", 33, 256, 256), "batch": ("medium", 17, 64, 64)}[a.which]
    a.preset = a.preset or dflt[0]
    a.frames = a.frames or dflt[1]
    a.height = a.height or dflt[2]
    a.width = a.width or dflt[3]
    a.root.mkdir(parents=True, exist_ok=True)
    res = bench_stages(a, a.root) if a.which == "stages" else bench_batch(a, a.root)
    res["machine"] = {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()}
    print(json.dumps(res, indent=2))
    out = a.out or a.root / f"{a.which}.json"
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
