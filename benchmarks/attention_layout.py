"""Does laying q, k, v out heads first (hyv's processor, render/attention.py) pay on this machine? One DiT forward
of a preset with it and without it, alternating in one process, against torch.mm measured between them.

    python benchmarks/attention_layout.py [--preset medium] [--frames 33 --height 256 --width 256] [--rounds 6]

Prints the median forward time of each layout, their ratio, the outputs' relative difference, and the median
torch.mm rate (2048^2 fp32) of the run. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.speed import PROMPT, mm_rate, model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()

    from diffusers.utils import logging

    from render import speed
    from render.engine import Engine
    from render.sample import initial_noise

    logging.set_verbosity_error()
    engine = Engine(model(a.preset), policy="keep-warm")
    s = engine.settings(frames=a.frames, height=a.height, width=a.width, seed=1, device="cpu")
    text = engine.encode_stage()
    tensors, _ = text.encode([PROMPT], text.template(a.frames), s.encode)
    engine.free("encode")
    r = speed.concrete(engine, s.render)
    dit = engine.transformer(r.placement)
    speed.prepare(engine, dit, r, dit.state)
    cond = speed.trim(engine, engine.family.conditioning(tensors), r)
    x = initial_noise(engine.dit_info().latent_shape(r), 1, dit.device)  # [1, C, T, H, W]
    kw = {"hidden_states": x, "timestep": torch.tensor([1000.0]), "guidance": torch.tensor([6000.0]), **cond}
    blocks = [*dit.module.transformer_blocks, *dit.module.single_transformer_blocks]

    def forward(heads_first: bool) -> tuple[float, torch.Tensor]:
        for b in blocks:
            b.attn.processor.heads_first = heads_first
        t0 = time.perf_counter()
        with torch.inference_mode():
            (out,) = dit.module(**kw, return_dict=False)
        return time.perf_counter() - t0, out

    forward(True), forward(False)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    rates, outs = [], {}
    for _ in range(a.rounds):
        for hf in (True, False):
            t, outs[hf] = forward(hf)
            times[hf].append(t)
        rates.append(mm_rate())
    hf, plain = statistics.median(times[True]), statistics.median(times[False])
    res = {
        "preset": a.preset, "shape": [a.frames, a.height, a.width], "rounds": a.rounds,
        "forward_s": {"heads_first": round(hf, 3), "diffusers_layout": round(plain, 3)},
        "ratio_heads_first_to_diffusers_layout": round(hf / plain, 3),
        "outputs_rel_max_diff": float((outs[True] - outs[False]).abs().max() / outs[False].abs().max()),
        "mm_gflops_median": round(statistics.median(rates), 1),
    }  # fmt: skip
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
