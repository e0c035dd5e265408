"""Does laying q, k, v out heads first (hyv's processor, render/attention.py) pay on this machine? One DiT forward
of a preset with it and without it, alternating in one process, against torch.mm measured between them.

    python -m benchmarks.attention_layout [--preset medium] [--frames 33 --height 256 --width 256] [--rounds 6]

Prints the median forward time of each layout, their ratio, the outputs' relative difference, and the median
torch.mm rate (2048^2 fp32) of the run. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.speed import mm_rate, model, ready_dit, shape_args


def main() -> None:
    ap = shape_args(argparse.ArgumentParser())
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()

    from diffusers.utils import logging

    from render.sampling.sample import initial_noise

    logging.set_verbosity_error()
    engine, r, dit, _, inputs = ready_dit(model(a.preset), a)
    x = initial_noise(engine.dit_info().latent_shape(r), 1, dit.device)  # [1, C, T, H, W]
    kw = {"hidden_states": x, "timestep": torch.tensor([1000.0]), "guidance": torch.tensor([6000.0]), **inputs.cond}
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
