"""The bundled demo model follows prompts, judged by the evaluator; and breaking the sampler, the prompt or the
latent scale on purpose makes the evaluator fail (so this test can fail).

`hyv run` is called with no --model and no sampling flags: the bundled model and its hyv.json defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from render.model.ref import BUNDLED_DEMO
from tests.conftest import Cli


def test_the_demo_model_ships() -> None:
    """The package carries the model (not skipped when missing: a lost package-data rule must fail here)."""
    assert (BUNDLED_DEMO / "model_index.json").is_file()
    assert json.loads((BUNDLED_DEMO / "hyv.json").read_text())["defaults"]["frames"] == 17


# Two seen in training, three held out (blue triangle; green on yellow; red square moving left).
PROMPTS = [
    "a blue circle moves to the left on a yellow background",
    "a green square moves up on a white background",
    "a blue triangle moves to the right on a black background",
    "a green circle moves down on a yellow background",
    "a red square moves to the left on a white background",
]
MIN_PASS = 4


def test_hyv_run_follows_prompts(cli: Cli, tmp_path: Path) -> None:
    from render.demo.evaluate import evaluate_video

    res: Any = cli("run", *PROMPTS, "--workdir", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [v["prompt"] for v in out["videos"]] == PROMPTS
    results = [evaluate_video(v["video"], v["prompt"]) for v in out["videos"]]
    passed = [r for r in results if r.passed]
    report = "\n".join(f"{'PASS' if r.passed else 'FAIL'} {r.caption}: {r.reason}" for r in results)
    assert len(passed) >= MIN_PASS, report


def test_bundled_model_is_announced_once_and_foreign_prompts_warned(cli: Cli, tmp_path: Path) -> None:
    res = cli("encode", PROMPTS[0], "a cat walks on the grass", "--workdir", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    assert "using the bundled demo model" not in res.stderr  # never with --json (tests/test_first_use.py: once)
    assert "1 prompt(s) are not, e.g. 'a cat walks on the grass'" in res.stderr
    assert len(json.loads(res.stdout)["embeddings"]) == 2  # a warning, not an error
    res = cli("encode", PROMPTS[0], "--workdir", tmp_path / "out")
    assert res.exit_code == 0 and res.stderr.count("using the bundled demo model") == 1, res.output


# ----------------------------------------------------------------------------- broken on purpose

BROKEN_PROMPTS = PROMPTS[:3]


class Demo:
    """The library pieces `hyv run` composes, loaded once through one engine, so a test can break one of them."""

    def __init__(self) -> None:
        from render.engine import Engine

        self.engine = Engine(policy="keep-warm")  # the bundled demo model
        self.settings = self.engine.settings()
        s = self.settings.render
        self.text = self.engine.encode_stage()
        self.template = self.text.template(s.frames)
        self.dit = self.engine.transformer(s.placement)
        self.scheduler = self.engine.scheduler(s.shift)
        self.vae = self.engine.vae(self.settings.decode.placement, tiling=True)

    def cond(self, prompt: str) -> Any:
        t, _ = self.text.encode([prompt], self.template, self.settings.encode)
        return self.engine.family.step_inputs(t, None, self.settings.render, False, self.engine.dit_info().config)

    def latents(self, cond: Any, seed: int = 42, reverse: bool = False) -> Any:
        from render.sampling.sample import denoise, initial_noise, set_schedule

        s = self.settings.render
        shape = self.engine.dit_info().latent_shape(s)
        set_schedule(self.scheduler, s.steps, self.dit.device)
        if reverse:  # sampling from sigma=0 up to 1: upstream without --flow-reverse
            sig = self.scheduler.sigmas.flip(0)  # [steps + 1]: 0 ... 1
            self.scheduler.sigmas = sig
            self.scheduler.timesteps = sig[:-1] * 1000.0
        return denoise(
            self.dit.module,
            self.scheduler,
            initial_noise(shape, seed, self.dit.device),
            cond,
            cfg_scale=1.0,
            start=0,
            end=s.steps,
        )

    def frames(self, latents: Any) -> np.ndarray:
        from render.stages.decode import decode_frames

        return np.asarray(decode_frames(self.vae.module, self.vae.device, latents, True, self.engine.family))


@pytest.fixture(scope="module")
def demo() -> Demo:
    return Demo()


def _passes(frames: list[np.ndarray], prompts: list[str]) -> int:
    from render.demo.evaluate import evaluate_frames

    return sum(evaluate_frames(f, p).passed for f, p in zip(frames, prompts, strict=True))


def test_library_path_passes(demo: Demo) -> None:
    """The unbroken pieces pass, so the failures below come from the breakage, not from the harness."""
    frames = [demo.frames(demo.latents(demo.cond(p))) for p in BROKEN_PROMPTS]
    assert _passes(frames, BROKEN_PROMPTS) >= len(BROKEN_PROMPTS) - 1


def test_reversed_sampler_fails(demo: Demo) -> None:
    frames = [demo.frames(demo.latents(demo.cond(p), reverse=True)) for p in BROKEN_PROMPTS]
    assert _passes(frames, BROKEN_PROMPTS) == 0


def test_ignored_prompt_fails(demo: Demo) -> None:
    """The DiT conditioned on the empty prompt (what a pipeline that drops the prompt gives): the videos no longer
    show the prompted colours and motions."""
    empty = demo.cond("")
    frames = [demo.frames(demo.latents(empty)) for _ in BROKEN_PROMPTS]
    assert _passes(frames, BROKEN_PROMPTS) <= 1


def test_swapped_prompt_fails(demo: Demo) -> None:
    """Each video rendered from another prompt's embeddings fails its own caption: the prompt drives the video."""
    conds = [demo.cond(p) for p in BROKEN_PROMPTS]
    frames = [demo.frames(demo.latents(conds[(i + 1) % len(conds)])) for i in range(len(conds))]
    assert _passes(frames, BROKEN_PROMPTS) == 0


@pytest.mark.parametrize("factor", ["unscaled", "x2"])
def test_wrong_latent_scale_fails(demo: Demo, factor: str) -> None:
    """Decoding without dividing by the VAE's scaling factor (or with latents twice too large) breaks the video."""
    sf = float(demo.vae.module.config.scaling_factor)
    lat = [demo.latents(demo.cond(p)) for p in BROKEN_PROMPTS]
    mult = sf if factor == "unscaled" else 2.0  # decode_frames divides by sf: x sf undoes it
    frames = [demo.frames(x * mult) for x in lat]
    assert _passes(frames, BROKEN_PROMPTS) <= 1
