"""HunyuanVideo 1.5 image-to-video: the step-distilled model against the 50-step model, a whole video each.

    python -m benchmarks.i2v_steps [--frames 17] [--rounds 3]

Two random medium 1.5 image-to-video models of the same size (`hyv models init-tiny --family HunyuanVideo-1.5
--preset medium-i2v` and `medium-i2v-step-distilled`) each make one video from the same image with their own
defaults (the 50-step model: 50 steps with CFG 6, two DiT forwards a step; the step-distilled one: 8 steps, CFG 1,
timestep_r), through `hyv run --image` in a fresh process and work directory (no cache), alternating, `--rounds`
times. Reported: the median wall time of each (imports and loading included) and of its render stage (from the
video's manifest), and their ratios. Run it on an idle machine: timings compare only within a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.speed import ROOT

PROMPT = "A red car drives along a coastal road at sunset, cinematic lighting."
PRESETS = ("medium-i2v", "medium-i2v-step-distilled")


def model(preset: str) -> Path:
    d = ROOT / f"model15-{preset}"
    if not (d / "model_index.json").exists():
        cmd = [sys.executable, "-m", "hunyuan_cli", "models", "init-tiny", str(d), "--family", "HunyuanVideo-1.5",
               "--preset", preset, "--force"]  # fmt: skip
        subprocess.run(cmd, check=True)
    return d


def one(path: Path, image: Path, frames: int, work: Path) -> tuple[float, float, int]:
    """(wall seconds, render stage seconds, steps) of one video."""
    cmd = [sys.executable, "-m", "hunyuan_cli", "run", PROMPT, "--model", str(path), "--image", str(image),
           "--frames", str(frames), "--workdir", str(work), "--no-cache", "--json"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    video = json.loads(out.stdout)["videos"][0]
    render = json.loads(Path(video["manifest"]).read_text())["render"]
    return wall, float(render["wall_seconds"]), int(render["step"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    paths = {p: model(p) for p in PRESETS}
    times: dict[str, list[tuple[float, float, int]]] = {p: [] for p in PRESETS}
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "first.png"
        y, x = np.mgrid[0:270, 0:480]
        Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)).save(image)
        for r in range(a.rounds):
            for p in PRESETS if r % 2 == 0 else PRESETS[::-1]:
                times[p].append(one(paths[p], image, a.frames, Path(tmp) / f"{p}-{r}"))
                print(f"round {r + 1}: {p}: {times[p][-1][0]:.1f} s wall, {times[p][-1][1]:.1f} s render", flush=True)
    med = {p: (statistics.median(w for w, _, _ in t), statistics.median(s for _, s, _ in t)) for p, t in times.items()}
    base, fast = PRESETS
    print(json.dumps({
        "frames": a.frames, "rounds": a.rounds,
        **{p: {"wall_s": round(med[p][0], 2), "render_s": round(med[p][1], 2), "steps": times[p][0][2]}
           for p in PRESETS},
        "wall_ratio": round(med[fast][0] / med[base][0], 3),
        "render_ratio": round(med[fast][1] / med[base][1], 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
