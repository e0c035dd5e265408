"""The weights and memory figures of issue 11, on the medium preset (random weights) at 33x256x256, on the CPU.

    python benchmarks/weights_memory.py [--root DIR] [--steps 10] [--reps 3] [--out DIR]

1. DiT weight variants: the bytes the loaded DiT holds (parameters and buffers, in their storage dtype) for fp32,
   bf16 weights, fp8 (diffusers' layerwise casting, and Tencent's scaled fp8 written from the same weights), GGUF
   Q8_0 and Q4_0 (city96-style, written from the same weights); and the output of each against fp32: PSNR of the
   decoded frames (uint8) and the latents' relative error. Same embeddings, seed and VAE for all. The CPU computes
   in fp32: "bf16" here is bf16-rounded weights computed in fp32 (the weights' precision, not bf16 arithmetic).
2. The memory plan per stage and offload mode (the CPU plan, fp32, and the GPU plan, fp16/bf16), beside the peak RSS
   each stage adds in a fresh `hyv encode` / `hyv render` / `hyv decode` process (median of --reps; on a CPU the
   offload modes do not change RAM: the weights stay in RAM either way).
Output: tables on stdout and weights_memory.json in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PROMPT = "A cat walks on the grass, realistic style."


def hyv(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "hunyuan_cli", *args, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"hyv {' '.join(args[:3])} failed: {p.stderr[-1500:]}")
    return dict(json.loads(p.stdout))


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def dit_bytes(module: Any) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def variants(root: Path, model: Path) -> dict[str, tuple[Path, Any]]:
    """name -> (model folder, DiTVariant) for every weight form, written from the medium model's weights."""
    from safetensors.torch import load_file

    from render.model.variant import DiTVariant
    from tests.weight_formats import diffusers_to_original, write_gguf, write_original_layout

    ckpts = root / "medium-original"
    if not ckpts.exists():
        write_original_layout(model, ckpts, fp8=True, full=False)
    sd = {}
    for f in sorted((model / "transformer").glob("*.safetensors")):
        sd.update(load_file(str(f)))
    orig = diffusers_to_original(sd)
    ggufs = {}
    for q in ("Q8_0", "Q4_0"):
        ggufs[q] = root / f"medium-{q}.gguf"
        if not ggufs[q].exists():
            write_gguf(orig, ggufs[q], q)
    return {
        "fp32": (model, DiTVariant()),
        "bf16 weights": (model, DiTVariant()),
        "fp8 (layerwise)": (model, DiTVariant(fp8=True)),
        "fp8 (Tencent scaled)": (ckpts, DiTVariant(fp8=True)),
        "GGUF Q8_0": (model, DiTVariant(dit_file=ggufs["Q8_0"])),
        "GGUF Q4_0": (model, DiTVariant(dit_file=ggufs["Q4_0"])),
    }


def quality(root: Path, model: Path, a: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from render.core.items import Item
    from render.engine import Engine
    from render.stages.decode import decode_frames

    wd = root / "quality"
    settings_kw = {"frames": a.frames, "height": a.size, "width": a.size, "steps": a.steps, "device": "cpu"}
    base = Engine(model)
    emb = base.encode([PROMPT], base.settings(**settings_kw), workdir=wd).outcomes[0].embeddings
    vae = base.vae(base.settings(**settings_kw).decode.placement, tiling=True)
    rows, ref_frames, ref_lat = [], None, None
    for name, (folder, variant) in variants(root, model).items():
        e = Engine(folder, variant=variant)
        s = e.settings(**settings_kw)
        dit = e.transformer(s.render.placement)
        if name == "bf16 weights":
            with torch.no_grad():
                for p in dit.module.parameters():
                    p.copy_(p.to(torch.bfloat16).float())
        nbytes = dit_bytes(dit.module)
        if name == "bf16 weights":
            nbytes //= 2  # what the same tensors take stored in bf16
        t = time.perf_counter()
        out = e.render([Item(embeddings=emb)], s, workdir=wd / name.replace(" ", "_")).outcomes[0]
        render_s = time.perf_counter() - t
        assert out.latents is not None, out.error
        from safetensors.torch import load_file

        lat = load_file(str(out.latents))["latents"]
        frames = decode_frames(vae.module, vae.device, lat, True, base.family)
        if ref_frames is None:
            ref_frames, ref_lat = frames, lat
        rows.append(
            {
                "variant": name,
                "dit_bytes": nbytes,
                "psnr_db": psnr(frames, ref_frames),
                "latents_rel_err": float((lat - ref_lat).norm() / ref_lat.norm()),
                "render_s": round(render_s, 1),
            }
        )
        e.close()
        print(rows[-1], flush=True)
    return rows


def measured_peaks(root: Path, model: Path, a: argparse.Namespace) -> dict[str, list[int]]:
    """Peak RSS each stage adds, in fresh processes (hyv encode, render, decode on the CPU)."""
    peaks: dict[str, list[int]] = {"encode": [], "render": [], "decode": []}
    for rep in range(a.reps):
        wd = root / f"rss-{rep}"
        common = ["--model", str(model), "--workdir", str(wd), "--device", "cpu"]
        enc = hyv("encode", PROMPT, *common, "--frames", str(a.frames), "--no-cache")
        emb = enc["embeddings"][0]["path"]
        size = ["--frames", str(a.frames), "--height", str(a.size), "--width", str(a.size), "--steps", "2"]
        ren = hyv("render", emb, *common, *size)
        lat = ren["latents"][0]["path"]
        dec = hyv("decode", lat, *common)
        from render.files.artifacts import read_manifest

        peaks["encode"].append(read_manifest(Path(emb))[1]["peak_rss_delta_bytes"])
        peaks["render"].append(read_manifest(Path(lat))[1]["peak_rss_delta_bytes"])
        peaks["decode"].append(json.loads(Path(dec["videos"][0]["manifest"]).read_text())["peak_rss_delta_bytes"])
    return peaks


def plans(model: Path, a: argparse.Namespace) -> dict[str, Any]:
    from render.engine import Engine
    from render.plan import summary

    out = {}
    for device in ("cpu", "cuda"):
        e = Engine(model)
        s = e.settings(frames=a.frames, height=a.size, width=a.size, device=device)
        out[device] = summary(e.plan(s), None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("/tmp/hyv-bench-weights"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    a.root.mkdir(parents=True, exist_ok=True)
    model = a.root / "medium"
    if not (model / "model_index.json").exists():
        from render.families import init_tiny

        init_tiny(model, preset="medium", seed=0, force=True)
    result: dict[str, Any] = {"settings": vars(a) | {"root": str(a.root), "out": str(a.out)}}
    result["plans"] = plans(model, a)
    result["measured_peak_rss_delta"] = measured_peaks(model.parent, model, a)
    result["quality"] = quality(a.root, model, a)
    print("\nDiT weights and output against fp32")
    for r in result["quality"]:
        print(f"  {r['variant']:22} {r['dit_bytes'] / 1e6:8.1f} MB  PSNR {r['psnr_db']:6.1f} dB  "
              f"latents rel. err {r['latents_rel_err']:.2e}")
    print("\nplan (MB) per offload mode | measured CPU peak RSS added (median of reps)")
    for device, s in result["plans"].items():
        for st in s["stages"]:
            meas = statistics.median(result["measured_peak_rss_delta"][st["stage"]]) if device == "cpu" else None
            peaks = "  ".join(f"{m} {v / 1e6:8.1f}" for m, v in st["peak_bytes"].items())
            extra = f" | measured {meas / 1e6:8.1f}" if meas is not None else ""
            print(f"  {device:4} {st['stage']:6} {st['dtype']:8} {peaks}{extra}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "weights_memory.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
