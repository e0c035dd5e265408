"""The oracle: diffusers' HunyuanVideoPipeline on the same weights and seed gives the same latents and frames,
whether hyv runs the stages in one `hyv run`, one by one, or over a prompt file, and with a diffusers cache hook
set through the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from render.engine import Engine
from render.families.hunyuan_video.templates import VIDEO_TEMPLATE
from render.model.ref import BUNDLED_DEMO
from tests.conftest import SMALL_ARGS, Cli

PROMPT = "A cat walks on the grass, realistic style."
NEG = "blurry, low quality"


def _pipeline(model: Path) -> Any:
    from diffusers import HunyuanVideoPipeline

    return HunyuanVideoPipeline.from_pretrained(str(model)).to("cpu")


def _template(model: Path, frames: int = 9) -> dict[str, Any]:
    """diffusers' prompt_template with the crop_start hyv measures from the model's tokenizer."""
    return {
        "template": VIDEO_TEMPLATE,
        "crop_start": Engine(model).encode_stage().template(frames).crop_start,
    }


def _latents(out: Any, key: str = "latents") -> torch.Tensor:
    return load_file(out[key])["latents"]


def test_template_matches_diffusers() -> None:
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    assert DEFAULT_PROMPT_TEMPLATE["template"] == VIDEO_TEMPLATE


@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_latents_and_frames_equal_diffusers(tiny_model: Path, tmp_path: Path, cli: Cli, cfg: float) -> None:
    work = tmp_path / "w"
    extra = ["--cfg-scale", str(cfg), "--negative-prompt", NEG] if cfg > 1 else []
    res = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--seed", "42", "--workdir", work, *extra)
    assert res.exit_code == 0, res.output
    ours = load_file(str(next((work / "latents").glob("*.safetensors"))))["latents"]
    emb = load_file(str(next((work / "embeddings").glob("*.safetensors"))))

    pipe = _pipeline(tiny_model)
    template = _template(tiny_model)
    pe, ppe, pam = pipe.encode_prompt(PROMPT, prompt_template=template, device=torch.device("cpu"))
    assert torch.equal(pe, emb["prompt_embeds"])
    assert torch.equal(pam, emb["prompt_attention_mask"])
    assert torch.equal(ppe, emb["pooled_prompt_embeds"])

    kwargs: dict[str, Any] = dict(
        prompt=PROMPT,
        prompt_template=template,
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=4,
        guidance_scale=6.0,
        generator=torch.Generator("cpu").manual_seed(42),
    )
    if cfg > 1:
        kwargs.update(negative_prompt=NEG, true_cfg_scale=cfg)
    ref = pipe(**kwargs, output_type="latent").frames
    assert ours.shape == ref.shape == (1, 4, 3, 4, 4)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)  # padding dropped: rounding only

    # Decoding: diffusers' frames in [0, 1] against ours, through the same VAE.
    from render.stages.decode import decode_frames

    ref_np = pipe(**{**kwargs, "generator": torch.Generator("cpu").manual_seed(42)}, output_type="np").frames[
        0
    ]
    engine = Engine(tiny_model)
    vae = engine.vae(engine.settings().decode.placement, tiling=True)
    frames = decode_frames(vae.module, vae.device, ours, True, engine.family)  # [F, H, W, 3] uint8
    assert frames.shape == ref_np.shape == (9, 32, 32, 3)
    assert abs(frames.astype(float) - (ref_np * 255).round()).max() <= 1.0


@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_encode_then_render_with_cfg_equals_run_and_diffusers(
    which: str, tiny_model: Path, tmp_path: Path, cli: Cli
) -> None:
    """`hyv encode P` + `hyv render EMB --cfg-scale 2 --negative-prompt N` == `hyv run P` with the same flags (the
    negative prompt is encoded with the model's own text length in both), and both equal diffusers' pipeline."""
    model = tiny_model if which == "tiny" else BUNDLED_DEMO
    prompt = PROMPT if which == "tiny" else "a red square moves up on a black background"
    size = [*SMALL_ARGS[:-2], "--steps", "3"] if which == "tiny" else ["--steps", "6"]
    cfg = ["--cfg-scale", "2", "--negative-prompt", NEG, "--seed", "3"]
    r = cli("run", prompt, "--model", model, *size, *cfg, "--json", "--workdir", tmp_path / "run")
    assert r.exit_code == 0, r.output
    (whole,) = json.loads(r.stdout)["videos"]

    frames = size[1] if which == "tiny" else "17"
    r = cli("encode", prompt, "--model", model, "--frames", frames, "--json", "--workdir", tmp_path / "st")
    (emb,) = json.loads(r.stdout)["embeddings"]
    r = cli("render", emb["path"], "--model", model, *size, *cfg, "--json", "--workdir", tmp_path / "st")
    assert r.exit_code == 0, r.output
    (staged,) = json.loads(r.stdout)["latents"]
    assert torch.equal(_latents(whole), _latents(staged, "path"))
    assert Path(whole["latents"]).name == Path(staged["path"]).name  # the same content key

    pipe = _pipeline(model)
    defaults = Engine(model).settings().render
    ref = pipe(
        prompt=prompt,
        negative_prompt=NEG,
        true_cfg_scale=2.0,
        prompt_template=_template(model, defaults.frames),
        max_sequence_length=Engine(model).settings().encode.text_len,
        num_frames=defaults.frames if which == "demo" else 9,
        height=defaults.height if which == "demo" else 32,
        width=defaults.width if which == "demo" else 32,
        num_inference_steps=int(size[-1]),
        guidance_scale=defaults.guidance,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="latent",
    ).frames
    torch.testing.assert_close(_latents(whole), ref, rtol=1e-5, atol=1e-5)  # padding dropped: rounding only


def test_render_prompt_file_equals_run_prompt_file(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """Per-item .jsonl settings (seeds, sizes, steps, negative prompts, several videos) give the same latents
    through `encode --prompts` + `render --prompts` as through `run --prompts`."""
    jl = tmp_path / "p.jsonl"
    items = [
        {"prompt": PROMPT, "seed": 5, "num_videos": 2},
        {"prompt": "Rain on a street.", "frames": 5, "steps": 2, "neg_prompt": "sunny"},
        {"prompt": "A red circle.", "height": 16, "width": 48, "name": "circle"},
    ]
    jl.write_text("\n".join(json.dumps(x) for x in items) + "\n")
    args = ["--prompts", jl, "--model", tiny_model, *SMALL_ARGS, "--cfg-scale", "1.5", "--json"]
    r = cli("run", *args, "--workdir", tmp_path / "run")
    assert r.exit_code == 0, r.output
    whole = json.loads(r.stdout)["videos"]
    assert [v["seed"] for v in whole] == [5, 6, 42, 42]

    enc = cli("encode", *args[:4], "--frames", "9", "--json", "--workdir", tmp_path / "st")
    assert enc.exit_code == 0, enc.output
    r = cli("render", *args, "--workdir", tmp_path / "st")
    assert r.exit_code == 0, r.output
    staged = json.loads(r.stdout)["latents"]
    assert [Path(v["latents"]).name for v in whole] == [Path(s["path"]).name for s in staged]
    for v, s in zip(whole, staged, strict=True):
        assert torch.equal(_latents(v), _latents(s, "path"))
    assert _latents(whole[2]).shape[2] == 2  # 5 frames -> 2 latent frames
    assert Path(whole[3]["latents"]).name.startswith("circle-")


def test_first_block_cache_through_the_engine_equals_diffusers(tiny_model: Path, tmp_path: Path) -> None:
    """A diffusers cache hook set through the engine runs on hyv's loop (inside cache_context) and gives the
    latents diffusers' pipeline gives with the same hook; and it does change them (the hook really acted)."""
    from diffusers import FirstBlockCacheConfig

    steps, threshold = 8, 0.5
    engine = Engine(tiny_model, cache=FirstBlockCacheConfig(threshold=threshold))
    settings = engine.settings(frames=9, height=32, width=32, steps=steps, seed=1)
    report = engine.run([PROMPT], settings, workdir=tmp_path / "fbc")
    (out,) = report.outcomes
    assert out.status == "done", out.error
    assert out.latents is not None
    cached = load_file(str(out.latents))["latents"]

    plain = Engine(tiny_model).run([PROMPT], settings, workdir=tmp_path / "plain").outcomes[0]
    assert plain.latents is not None and plain.latents.name != out.latents.name  # the cache is in the key
    assert not torch.allclose(cached, load_file(str(plain.latents))["latents"], atol=1e-4)

    pipe = _pipeline(tiny_model)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    ref = pipe(
        prompt=PROMPT,
        prompt_template=_template(tiny_model),
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(1),
        output_type="latent",
    ).frames
    torch.testing.assert_close(cached, ref, rtol=1e-5, atol=1e-5)  # padding dropped: rounding only


def test_crop_start_is_measured_not_assumed(tiny_model: Path) -> None:
    """95 is the Llama-3 figure: the tiny tokenizer gives its own, and the crop keeps no template token."""
    st = Engine(tiny_model).encode_stage()
    t = st.template(9)
    assert t.crop_start != 95
    ids = st.text.tokenizer(t.text.format("zebra"))["input_ids"]
    prefix = st.text.tokenizer(t.text.split("{}")[0])["input_ids"]
    assert ids[: t.crop_start] == prefix[: t.crop_start]
    assert st.text.tokenizer.decode(ids[t.crop_start :]).startswith("zebra")
    assert st.template(1).crop_start < t.crop_start  # the image template is shorter
