"""The reference: one prompt through diffusers' HunyuanVideoPipeline in one process (all components loaded).

Prints one JSON line with the time of each phase. Run by benchmarks/bench.py, which measures the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--crop-start", type=int, required=True)
    a = ap.parse_args()

    t0 = time.perf_counter()
    from diffusers import HunyuanVideoPipeline
    from diffusers.utils import logging

    logging.disable_progress_bar()
    from render.families.hunyuan_video.templates import VIDEO_TEMPLATE

    t_import = time.perf_counter()
    pipe = HunyuanVideoPipeline.from_pretrained(a.model).to("cpu")
    pipe.set_progress_bar_config(disable=True)
    pipe.vae.enable_tiling()
    t_load = time.perf_counter()
    template = {"template": VIDEO_TEMPLATE, "crop_start": a.crop_start}
    with torch.inference_mode():
        pe, ppe, pam = pipe.encode_prompt(a.prompt, prompt_template=template, device=torch.device("cpu"))
        t_enc = time.perf_counter()
        lat = pipe(
            prompt_embeds=pe,
            pooled_prompt_embeds=ppe,
            prompt_attention_mask=pam,
            num_frames=a.frames,
            height=a.height,
            width=a.width,
            num_inference_steps=a.steps,
            generator=torch.Generator("cpu").manual_seed(a.seed),
            output_type="latent",
        ).frames
        t_den = time.perf_counter()
        video = pipe.vae.decode(lat / pipe.vae.config.scaling_factor, return_dict=False)[0]
        t_dec = time.perf_counter()
    print(
        json.dumps(
            {
                "import": t_import - t0,
                "load": t_load - t_import,
                "encode": t_enc - t_load,
                "render": t_den - t_enc,
                "decode": t_dec - t_den,
                "total_in_process": t_dec - t0,
                "shape": list(video.shape),
            }
        )
    )


if __name__ == "__main__":
    main()
