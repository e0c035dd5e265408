"""Speed without surprises: attention spared the text padding equals diffusers' masked computation, step caches
by name (in the render key and the manifest, per .jsonl item too), TeaCache's contract, calibration written into
the model and used, resuming with a cache on, regional compilation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from render.engine import Engine
from render.families.hunyuan_video.templates import VIDEO_TEMPLATE
from render.files.artifacts import read_manifest
from tests.conftest import SMALL_ARGS, Cli

PROMPT = "A cat walks on the grass, realistic style."


def _run(cli: Cli, model: Path, work: Path, *extra: str | Path) -> dict[str, Any]:
    r = cli(
        "run", PROMPT, "--model", model, *SMALL_ARGS[:-2], "--steps", "8", "--json", "--workdir", work, *extra
    )
    assert r.exit_code == 0, r.output
    (v,) = json.loads(r.stdout)["videos"]
    return dict(v)


def _lat(v: dict[str, Any]) -> torch.Tensor:
    return load_file(v["latents"])["latents"]


def test_attention_without_padding_equals_the_masked_computation(
    tiny_model: Path, tmp_path: Path, cli: Cli
) -> None:
    """diffusers' pipeline masks 256 text tokens; hyv (auto) drops the padding and the mask. Same latents within
    float rounding; `--attention masked` is diffusers' own computation, to the bit."""
    from diffusers import HunyuanVideoPipeline

    pipe = HunyuanVideoPipeline.from_pretrained(str(tiny_model)).to("cpu")
    crop = Engine(tiny_model).encode_stage().template(9).crop_start
    ref = pipe(
        prompt=PROMPT, prompt_template={"template": VIDEO_TEMPLATE, "crop_start": crop}, num_frames=9, height=32,
        width=32, num_inference_steps=8, generator=torch.Generator("cpu").manual_seed(42), output_type="latent",
    ).frames  # fmt: skip
    auto = _run(cli, tiny_model, tmp_path / "auto")
    masked = _run(cli, tiny_model, tmp_path / "masked", "--attention", "masked")
    assert torch.equal(_lat(masked), ref)
    torch.testing.assert_close(_lat(auto), ref, rtol=1e-4, atol=1e-6)
    assert read_manifest(Path(auto["latents"]))[1]["speed"]["attention"] == "native"
    assert Path(auto["latents"]).name == Path(masked["latents"]).name  # rounding only: the same render key


@pytest.mark.parametrize("padded", [True, False])
def test_heads_first_processor_equals_diffusers(tiny_model: Path, padded: bool) -> None:
    """hyv's processor (q, k, v laid out heads first for the CPU kernel; no mask when nothing is padding) against
    diffusers' own, through a whole DiT forward: double and single blocks, with and without padded text tokens."""
    from diffusers import HunyuanVideoTransformer3DModel

    from render.families.hunyuan_video import HUNYUAN_VIDEO as family
    from render.sampling.attention import install_processors, set_backend

    tr = HunyuanVideoTransformer3DModel.from_pretrained(str(tiny_model / "transformer")).eval()
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(1, 12, dtype=torch.bool)
    if padded:
        mask[:, 7:] = False
    inputs = {
        "hidden_states": torch.randn(1, 4, 3, 6, 8, generator=g),  # [B, C, T, H, W]
        "encoder_hidden_states": torch.randn(1, 12, 16, generator=g),  # [B, L, text_dim]
        "encoder_attention_mask": mask,
        "pooled_projections": torch.randn(1, 8, generator=g),
        "timestep": torch.tensor([500]),
        "guidance": torch.tensor([6000.0]),
        "return_dict": False,
    }
    with torch.no_grad():
        (ref,) = tr(**inputs)
        install_processors(tr, family)
        set_backend(tr, "native", family)
        assert all(b.attn.processor.heads_first for b in [*tr.transformer_blocks, *tr.single_transformer_blocks])
        (ours,) = tr(**inputs)
        set_backend(tr, "masked", family)  # diffusers' layout again: to the bit
        (masked,) = tr(**inputs)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours, torch.zeros_like(ours))
    if padded:
        assert torch.equal(masked, ref)


@pytest.mark.parametrize(
    ("flag", "needle"),
    [("flash", "needs a CUDA GPU"), ("sage", "needs a CUDA GPU"), ("bogus", "unknown attention")],
)
def test_an_unavailable_attention_is_one_line(
    tiny_model: Path, tmp_path: Path, cli: Cli, flag: str, needle: str
) -> None:
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--attention", flag, "--workdir", tmp_path)
    assert r.exit_code == 2 and needle in r.stderr and not (tmp_path / "embeddings").exists()


def test_teacache_skips_steps_but_never_the_first_or_last(tiny_model: Path) -> None:
    from render.sampling.sample import denoise, initial_noise, set_schedule
    from render.sampling.teacache import TeaCacheConfig, apply_teacache, remove_teacache, skip_counts

    engine = Engine(tiny_model, policy="keep-warm")
    s = engine.settings(frames=9, height=32, width=32, steps=10)
    text = engine.encode_stage()
    tensors = text.encode([PROMPT], text.template(9), s.encode)[0]
    inputs = engine.family.step_inputs(tensors, None, s.render, False, engine.dit_info().config)
    dit = engine.transformer(s.render.placement)
    recipe = engine.family.teacache()
    seen: dict[str, tuple[int, int]] = {}

    def render(threshold: float | None) -> torch.Tensor:
        if threshold is not None:
            apply_teacache(dit.module, TeaCacheConfig(recipe.coefficients, threshold=threshold), recipe)
        sched = engine.scheduler(s.render.shift)
        set_schedule(sched, 10, dit.device)

        def watch(i: int, lat: Any, x0: Any) -> None:
            seen.update(skip_counts(dit.module))

        try:
            noise = initial_noise(engine.dit_info().latent_shape(s.render), 1, dit.device)
            return denoise(dit.module, sched, noise, inputs, cfg_scale=1.0, start=0, end=10, on_step=watch)
        finally:
            if threshold is not None:
                remove_teacache(dit.module)

    plain = render(None)
    assert torch.equal(render(0.0), plain)  # threshold 0: every step computed, the same latents
    assert seen["cond"] == (10, 0)
    skipped = render(1e9)  # everything that may be skipped is
    assert seen["cond"] == (2, 8) and not torch.equal(skipped, plain)


def test_caches_by_name_are_in_the_key_and_the_manifest(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """Per .jsonl item: each cache runs on hyv's loop and makes its own artifact; magcache without a calibration
    fails its item alone, as bad input."""
    kinds = ["none", "fbcache:0.2", "teacache:0.3", "taylorseer:3", "fastercache", "pab"]
    jl = tmp_path / "p.jsonl"
    lines = [{"prompt": PROMPT, "cache": k} for k in kinds] + [{"prompt": PROMPT, "cache": "magcache"}]
    jl.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = cli("run", "--prompts", jl, "--model", tiny_model, *SMALL_ARGS[:-2], "--steps", "10", "--json",
            "--workdir", tmp_path)  # fmt: skip
    assert r.exit_code == 3
    videos = json.loads(r.stdout)["videos"]
    assert [v["status"] for v in videos] == ["done"] * len(kinds) + ["failed"]
    assert "hyv calibrate" in videos[-1]["error"]
    names = {Path(v["latents"]).name for v in videos[:-1]}
    assert len(names) == len(kinds)  # a cached render is another artifact
    for v, kind in zip(videos, kinds, strict=False):
        m = read_manifest(Path(v["latents"]))[1]
        assert m["speed"]["cache"] == kind and m["sampling"].get("cache", "none") == kind
    plain = _lat(videos[0])
    assert any(not torch.allclose(_lat(v), plain) for v in videos[1:-1])


def test_calibration_is_written_and_used(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    r = cli("calibrate", "a cat", "a dog runs", "--model", model, *SMALL_ARGS[:-2], "--steps", "10",
            "--caches", "teacache,magcache", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["teacache_coefficients"]) == 5 and len(out["magcache_ratios"]) == 10
    assert {row["cache"].split(":")[0] for row in out["table"]} == {"teacache", "magcache"}
    assert all(row["psnr_db"] > 0 and row["speedup"] > 0 for row in out["table"])
    cal = json.loads((model / "hyv.json").read_text())["calibration"]
    chosen = cal["choices"]["teacache"]["30db"]
    v = _run(cli, model, tmp_path / "w", "--cache", "teacache")
    assert read_manifest(Path(v["latents"]))[1]["speed"]["cache"] == f"teacache:{chosen:g}"
    assert _run(cli, model, tmp_path / "w2", "--cache", "magcache")["status"] == "done"
    r = cli("run", PROMPT, "--model", model, *SMALL_ARGS, "--cache", "teacache", "--cache-quality", "99db")
    assert r.exit_code == 2 and "no teacache threshold calibrated for quality 99db" in r.stderr


def test_calibration_with_true_cfg_watches_each_branch(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """With true CFG (two DiT calls a step, each branch with its own cache state) the calibration renders as `hyv
    run` does and fits on each branch's own sequence of steps."""
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    r = cli("calibrate", "a cat", "--model", model, *SMALL_ARGS[:-2], "--steps", "6", "--cfg-scale", "2",
            "--caches", "teacache,magcache", "--json", "--no-write")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["teacache_coefficients"]) == 5 and len(out["magcache_ratios"]) == 6
    assert all(0.0 < x < 10.0 for x in out["magcache_ratios"])  # consecutive steps of one branch, not cond vs uncond
    hyv_json = model / "hyv.json"
    assert out["written"] is None and (not hyv_json.exists() or "calibration" not in hyv_json.read_text())


def test_resume_with_a_cache_on(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    args = ("--cache", "teacache:0.3")
    stopped = _run(cli, tiny_model, tmp_path, *args, "--stop-at", "4")
    assert stopped["status"] == "stopped"
    done = _run(cli, tiny_model, tmp_path, *args, "--stop-at", "4", "--resume")
    assert done["status"] == "done"
    speed = read_manifest(Path(done["latents"]))[1]["speed"]
    assert speed["cache"] == "teacache:0.3" and speed["cache_state"].startswith("rebuilt at step 4")


def test_regional_compilation_gives_the_same_latents(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    plain = _run(cli, tiny_model, tmp_path / "a")
    compiled = _run(cli, tiny_model, tmp_path / "b", "--compile")
    torch.testing.assert_close(_lat(compiled), _lat(plain), rtol=1e-4, atol=1e-5)
    assert read_manifest(Path(compiled["latents"]))[1]["speed"]["compile"] is True
