"""HunyuanVideo 1.5's DiT speed: hyv's sampling loop against diffusers' HunyuanVideo15Pipeline, alternating.

    python -m benchmarks.speed15 [--preset medium] [--frames 33 --height 256 --width 256] [--steps 3] [--rounds 3]
                                 [--cfg 6]

Both run the same random medium 1.5 model (`hyv models init-tiny --family HunyuanVideo-1.5 --preset medium`) from the
same embeddings, with CFG (two forwards a step); diffusers' pipeline has no step callback, so a step's time is the
loop's time over its steps (the embeddings are given: no text encoding is timed). Reported: the median time per step
of each, their ratio (round by round), hyv's latents against diffusers' (relative max error), and the tokens each
attends over (diffusers: the video tokens + 729 + 256 + 1000 text and image tokens under a dense [S, S] mask; hyv:
the video tokens + the prompt's valid tokens, no mask). Run it on an idle machine: timings compare only within a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from benchmarks.speed import ROOT, shape_args

PROMPT = 'A red car drives along a coastal road at sunset past a sign that says "OPEN", cinematic lighting.'


def model(preset: str) -> Any:
    d = ROOT / f"model15-{preset}"
    if not (d / "model_index.json").exists():
        cmd = [sys.executable, "-m", "hunyuan_cli", "models", "init-tiny", str(d), "--family", "HunyuanVideo-1.5",
               "--preset", preset, "--force"]  # fmt: skip
        subprocess.run(cmd, check=True)
    return d


def main() -> None:
    ap = shape_args(argparse.ArgumentParser())
    ap.set_defaults(preset="medium")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cfg", type=float, default=6.0)
    a = ap.parse_args()

    from diffusers import HunyuanVideo15Pipeline
    from diffusers.utils import logging

    from render.engine import Engine
    from render.sampling.sample import denoise, initial_noise, set_schedule
    from render.stages import speed

    logging.set_verbosity_error()
    path = model(a.preset)
    engine = Engine(path, policy="keep-warm")
    s = engine.settings(frames=a.frames, height=a.height, width=a.width, steps=a.steps, cfg_scale=a.cfg, seed=1,
                        device="cpu")  # fmt: skip
    st = engine.encode_stage()
    template = st.template(a.frames)
    cond, _ = st.encode([PROMPT], template, s.encode)
    uncond, _ = st.encode([""], template, s.encode)
    engine.free("encode")
    r = engine.concrete(s.render)
    dit = engine.transformer(r.placement)
    speed.prepare(dit, r, engine.family, engine.calibration(), lambda: int(engine.clock))
    config = engine.dit_info().config
    inputs = engine.family.step_inputs(cond, uncond, r, True, config)

    pipe: Any = HunyuanVideo15Pipeline.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    pipe.prompt_template_encode_start_idx = template.crop_start
    pipe.guider = pipe.guider.new(guidance_scale=a.cfg)
    pipe.scheduler = pipe.scheduler.from_config(pipe.scheduler.config, shift=r.shift)
    del pipe.text_encoder, pipe.text_encoder_2  # the embeddings are given

    def run_hyv() -> tuple[float, torch.Tensor]:
        sched = engine.scheduler(r.shift)
        set_schedule(sched, r.steps, dit.device)
        noise = initial_noise(engine.dit_info().latent_shape(r), 1, dit.device, dit.module.dtype)
        t0 = time.perf_counter()
        out = denoise(dit.module, sched, noise, inputs, cfg_scale=a.cfg, start=0, end=r.steps)
        return (time.perf_counter() - t0) / r.steps, out

    def run_diffusers() -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe(
                prompt_embeds=cond["prompt_embeds"], prompt_embeds_mask=cond["prompt_embeds_mask"],
                prompt_embeds_2=cond["prompt_embeds_2"], prompt_embeds_mask_2=cond["prompt_embeds_mask_2"],
                negative_prompt_embeds=uncond["prompt_embeds"],
                negative_prompt_embeds_mask=uncond["prompt_embeds_mask"],
                negative_prompt_embeds_2=uncond["prompt_embeds_2"],
                negative_prompt_embeds_mask_2=uncond["prompt_embeds_mask_2"], num_frames=a.frames, height=a.height,
                width=a.width, num_inference_steps=r.steps, generator=torch.Generator("cpu").manual_seed(1),
                output_type="latent",
            ).frames  # fmt: skip
        return (time.perf_counter() - t0) / r.steps, out

    run_hyv()  # warm-up of both (first-call allocations, kernel selection)
    run_diffusers()
    hyv_steps, ref_steps, ratios = [], [], []
    for _ in range(a.rounds):
        t_ref, ref = run_diffusers()
        t_hyv, ours = run_hyv()
        ref_steps.append(t_ref)
        hyv_steps.append(t_hyv)
        ratios.append(t_hyv / t_ref)
    _, _, t, h, w = engine.dit_info().latent_shape(r)
    video = t * h * w
    valid = int(cond["prompt_embeds_mask"].sum()) + int(cond["prompt_embeds_mask_2"].sum())
    res = {
        "preset": a.preset, "shape": [a.frames, a.height, a.width], "steps": a.steps, "rounds": a.rounds, "cfg": a.cfg,
        "tokens": {"diffusers": video + 729 + 256 + 1000, "hyv": video + valid},
        "diffusers_step_s": [round(x, 3) for x in ref_steps], "hyv_step_s": [round(x, 3) for x in hyv_steps],
        "ratios": [round(x, 3) for x in ratios], "ratio_median": round(statistics.median(ratios), 3),
        "latents_rel_max_err": float((ours - ref).abs().max() / ref.abs().max()),
    }  # fmt: skip
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
