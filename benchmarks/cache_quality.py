"""The bundled demo model's 50 held-out captions with and without a step cache: the evaluator's pass rate, the
DiT's time, and PSNR against the uncached videos.

    python benchmarks/cache_quality.py [--cache teacache] [--workdir /tmp/hyv-bench/cache-quality]

The cache's threshold is the calibrated one for 30 dB (render/demo_model/hyv.json) unless given (teacache:0.3).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="teacache")
    ap.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hyv-bench" / "cache-quality"
    )
    a = ap.parse_args()

    from render.demo.evaluate import evaluate_video
    from render.demo.world import held_out_captions
    from render.engine import Engine
    from render.files.video import read_mp4
    from render.run.calibrate import psnr

    shutil.rmtree(a.workdir, ignore_errors=True)
    caps = held_out_captions()
    engine = Engine(policy="keep-warm")
    results = {}
    for cache in ("none", a.cache):
        settings = engine.settings(cache=cache)
        t0 = time.perf_counter()
        report = engine.run(caps, settings, workdir=a.workdir / cache.replace(":", "-"), use_cache=False)
        wall = time.perf_counter() - t0
        videos = [o.video for o in report.outcomes]
        passed = sum(evaluate_video(v, c).passed for v, c in zip(videos, caps, strict=True) if v is not None)
        from render.files.artifacts import read_manifest

        m = read_manifest(report.outcomes[0].latents)[1] if report.outcomes[0].latents else {}
        results[cache] = {"videos": videos, "passed": passed, "wall_s": round(wall, 1),
                          "dit_s": [read_manifest(o.latents)[1]["wall_seconds"] for o in report.outcomes if o.latents],
                          "cache_used": m.get("speed", {}).get("cache")}  # fmt: skip
    plain, cached = results["none"], results[a.cache]
    db = [psnr(read_mp4(x)[0].astype(np.float64), read_mp4(y)[0].astype(np.float64))
          for x, y in zip(cached["videos"], plain["videos"], strict=True)]  # fmt: skip
    print(json.dumps({
        "captions": len(caps), "cache": cached["cache_used"],
        "passed": {"uncached": plain["passed"], "cached": cached["passed"]},
        "psnr_db_mean": round(float(np.mean(db)), 2), "psnr_db_min": round(float(np.min(db)), 2),
        "run_wall_s": {"uncached": plain["wall_s"], "cached": cached["wall_s"]},
        "render_stage_s": {"uncached": max(plain["dit_s"]),
                           "cached": max(cached["dit_s"])},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
