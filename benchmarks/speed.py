"""The DiT's speed: hyv's sampling loop against diffusers' HunyuanVideoPipeline, one process, alternating.

    python benchmarks/speed.py [--preset medium] [--frames 33 --height 256 --width 256] [--steps 4] [--rounds 3]
                               [--attention auto] [--compile] [--profile]

Per-step wall time of each (medians over rounds, the first step of a run left out as warm-up), hyv's latents
against diffusers' (relative max error), the DiT's FLOP per forward (torch.utils.flop_counter) and the FLOP/s
each reaches as a fraction of this machine's torch.mm rate (2048^2 fp32, the median of one measure each round).
--profile adds the operators where hyv's forward spends its time. Run it on an idle machine: timings are only
comparable within one run.
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
from typing import Any

import torch

ROOT = Path(tempfile.gettempdir()) / "hyv-bench"
PROMPT = (
    "A red car drives along a coastal road at sunset, waves below the cliffs, cinematic lighting, 35mm film."
)


def mm_rate(n: int = 2048, reps: int = 10) -> float:
    """fp32 GFLOP/s of torch.mm at n x n (median of `reps`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def model(preset: str) -> Path:
    d = ROOT / f"model-{preset}"
    if not (d / "model_index.json").exists():
        subprocess.run([sys.executable, "-m", "hunyuan_cli", "models", "init-tiny", str(d), "--preset", preset,
                        "--force"], check=True)  # fmt: skip
    return d


def flops(transformer: Any, kwargs: dict[str, Any], attention: bool = True) -> float:
    """FLOP of one forward by torch.utils.flop_counter; `attention` adds what it does not count on a CPU:
    PyTorch's CPU flash-attention kernel (QK^T and AV: 4 * B * H * Sq * Sk * D)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(q: Any, k: Any, v: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
        return int(sdpa_flop_count(q, k, v))  # flop_counter passes the shapes

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash} if attention else {}
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        transformer(**kwargs, return_dict=False)
    return float(fc.get_total_flops())


def shape_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The model preset and video size options every DiT benchmark takes."""
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    return ap


def ready_dit(path: Path, a: argparse.Namespace, **settings: Any) -> tuple[Any, Any, Any, dict[str, Any], Any]:
    """The engine, its concrete render settings, the loaded DiT prepared for them, PROMPT's embeddings and the
    DiT's inputs (padding dropped unless the attention is "masked"), at `a`'s size on the CPU."""
    from render.engine import Engine
    from render.stages import speed

    engine = Engine(path, policy="keep-warm")
    s = engine.settings(frames=a.frames, height=a.height, width=a.width, seed=1, device="cpu", **settings)
    text = engine.encode_stage()
    tensors, _ = text.encode([PROMPT], text.template(a.frames), s.encode)
    engine.free("encode")
    r = engine.concrete(s.render)
    dit = engine.transformer(r.placement)
    speed.prepare(dit, r, engine.family, engine.calibration(), lambda: int(engine.clock))
    inputs = engine.family.step_inputs(tensors, None, r, r.attention != "masked", engine.dit_info().config)
    return engine, r, dit, tensors, inputs


def main() -> None:
    ap = shape_args(argparse.ArgumentParser())
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attention", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()

    from diffusers import HunyuanVideoPipeline
    from diffusers.utils import logging

    from render.families.hunyuan_video.templates import VIDEO_TEMPLATE
    from render.sampling.sample import denoise, initial_noise, set_schedule

    logging.set_verbosity_error()
    path = model(a.preset)
    engine, r, dit, tensors, inputs = ready_dit(path, a, steps=a.steps, attention=a.attention, compile=a.compile)
    template = engine.encode_stage().template(a.frames)
    used = int(tensors["prompt_attention_mask"].sum())

    pipe = HunyuanVideoPipeline.from_pretrained(str(path)).to("cpu")
    pipe.set_progress_bar_config(disable=True)
    del pipe.text_encoder, pipe.text_encoder_2  # the embeddings are given: keep the memory for the DiTs

    def run_hyv() -> tuple[list[float], torch.Tensor]:
        stamps = [time.perf_counter()]
        sched = engine.scheduler(r.shift)
        set_schedule(sched, r.steps, dit.device)
        noise = initial_noise(engine.dit_info().latent_shape(r), 1, dit.device)
        out = denoise(dit.module, sched, noise, inputs, cfg_scale=1.0, start=0, end=r.steps,
                      on_step=lambda i, lat, x0: stamps.append(time.perf_counter()))  # fmt: skip
        return [b - a_ for a_, b in zip(stamps, stamps[1:], strict=False)], out

    def run_diffusers() -> tuple[list[float], torch.Tensor]:
        stamps = [time.perf_counter()]

        def on_end(p: Any, i: int, t: Any, kw: dict[str, Any]) -> dict[str, Any]:
            stamps.append(time.perf_counter())
            return kw

        with torch.inference_mode():
            out = pipe(
                prompt_embeds=tensors["prompt_embeds"], pooled_prompt_embeds=tensors["pooled_prompt_embeds"],
                prompt_attention_mask=tensors["prompt_attention_mask"], prompt_template={"template": VIDEO_TEMPLATE,
                "crop_start": template.crop_start}, num_frames=a.frames, height=a.height, width=a.width,
                num_inference_steps=r.steps, guidance_scale=r.guidance, generator=torch.Generator("cpu").manual_seed(1),
                output_type="latent", callback_on_step_end=on_end,
            ).frames  # fmt: skip
        return [b - a_ for a_, b in zip(stamps, stamps[1:], strict=False)], out

    pipe.scheduler = pipe.scheduler.from_config(pipe.scheduler.config, shift=r.shift)
    hyv_steps: list[float] = []
    ref_steps: list[float] = []
    rates = []  # torch.mm between the runs: the machine's rate moves from minute to minute
    for _ in range(a.rounds):
        t, ref = run_diffusers()
        ref_steps += t[1:]
        t, ours = run_hyv()
        hyv_steps += t[1:]
        rates.append(mm_rate())
    rel = float((ours - ref).abs().max() / ref.abs().max())

    x = initial_noise(engine.dit_info().latent_shape(r), 1, dit.device)
    g = torch.tensor([r.guidance * 1000.0])
    t = torch.tensor([1000.0])
    ours_kw = {"hidden_states": x, "timestep": t, "guidance": g, **inputs.cond}
    ref_kw = {"hidden_states": x, "timestep": t, "guidance": g, **engine.family.conditioning(tensors)}
    # Counted on diffusers' (uncompiled) copy of the same DiT: hyv's FLOP are its own inputs' (padding dropped).
    ours_flop, ref_flop = flops(pipe.transformer, ours_kw), flops(pipe.transformer, ref_kw)
    counted_flop = flops(pipe.transformer, ref_kw, attention=False)  # what flop_counter alone reports
    rate = statistics.median(rates)
    hyv_step, ref_step = statistics.median(hyv_steps), statistics.median(ref_steps)
    res = {
        "preset": a.preset, "shape": [a.frames, a.height, a.width], "steps": a.steps, "rounds": a.rounds,
        "text_tokens_used": used, "attention": r.attention, "compile": a.compile,
        "diffusers_step_s": round(ref_step, 3), "hyv_step_s": round(hyv_step, 3),
        "ratio_hyv_to_diffusers": round(hyv_step / ref_step, 3), "latents_rel_max_err": rel,
        "mm_gflops": round(rate, 1),
        "dit_gflop_per_forward": {"hyv": round(ours_flop / 1e9, 1), "diffusers": round(ref_flop / 1e9, 1),
                                  "diffusers_without_attention": round(counted_flop / 1e9, 1)},
        "hyv_gflops": round(ours_flop / hyv_step / 1e9, 1), "diffusers_gflops": round(ref_flop / ref_step / 1e9, 1),
        "hyv_fraction_of_mm": round(ours_flop / hyv_step / 1e9 / rate, 3),
        "diffusers_fraction_of_mm": round(ref_flop / ref_step / 1e9 / rate, 3),
    }  # fmt: skip
    print(json.dumps(res, indent=2))
    if a.profile:
        profile(dit.module, ours_kw)


def profile(transformer: Any, kwargs: dict[str, Any]) -> None:
    """Where one forward's CPU time goes, by operator (self time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    with torch.inference_mode():
        transformer(**kwargs, return_dict=False)
        with prof(activities=[ProfilerActivity.CPU]) as p:
            transformer(**kwargs, return_dict=False)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
