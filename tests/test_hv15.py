"""HunyuanVideo 1.5 text-to-video through every stage command, against diffusers' HunyuanVideo15Pipeline on a tiny
folder written with diffusers' own classes (tests/hv15_models.py), with CFG from the model's guider and a prompt
holding quoted text (the glyph stream)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import Cli
from tests.hv15_models import pipeline, write

PROMPT = 'a neon sign that says "OPEN" above a diner at night'
SIZE = ["--frames", "5", "--height", "24", "--width", "40", "--steps", "4", "--seed", "42"]


@pytest.fixture(scope="module")
def hv15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("models") / "hv15", "t2v", guidance=4.5)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _run(cli: Cli, model: Path, workdir: Path, *extra: str) -> dict:
    r = cli("run", PROMPT, "--model", model, *SIZE, "--workdir", workdir, "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["videos"][0]


def test_run_with_cfg_and_quoted_text_equals_diffusers(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    out = _run(cli, hv15, tmp_path / "w", "--format", "png")
    ours = load_file(out["latents"])["latents"]
    pipe = pipeline(hv15)
    kw = {"prompt": PROMPT, "height": 24, "width": 40, "num_frames": 5, "num_inference_steps": 4}
    ref = pipe(**kw, generator=torch.Generator("cpu").manual_seed(42), output_type="latent").frames
    assert ours.shape == ref.shape == (1, 8, 3, 6, 10)
    assert _rel(ours, ref) < 1e-4
    frames = pipe(**kw, generator=torch.Generator("cpu").manual_seed(42), output_type="np").frames[0]
    pngs = sorted(Path(out["video"]).glob("*.png"))
    got = np.stack([np.asarray(Image.open(p)) for p in pngs]).astype(float)
    assert got.shape == frames.shape == (5, 24, 40, 3)
    assert np.abs(got - (frames * 255).round()).max() <= 2
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["render"]["sampling"]["cfg_scale"] == 4.5  # the guider's scale, the model's default
    emb = load_file(out["embeddings"])
    assert set(emb) == {"prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2"}
    assert int(emb["prompt_embeds_mask_2"].sum()) == len('Text "OPEN". ') + 1  # the glyph text and </s>


def test_encode_then_render_then_decode_equals_run(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    run = _run(cli, hv15, tmp_path / "run")
    common = ["--model", hv15, "--workdir", tmp_path / "staged", "-q"]
    emb = cli("encode", PROMPT, *common, "--frames", "5")
    assert emb.exit_code == 0, emb.output
    lat = cli("render", emb.stdout.strip(), *common, *SIZE)
    assert lat.exit_code == 0, lat.output
    a, b = load_file(run["latents"])["latents"], load_file(lat.stdout.strip())["latents"]
    assert torch.equal(a, b)
    vid = cli("decode", lat.stdout.strip(), *common)
    assert vid.exit_code == 0 and vid.stdout.strip().endswith(".mp4")


def test_guidance_is_refused_and_cfg_one_runs_one_forward(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("run", PROMPT, "--model", hv15, *SIZE, "--workdir", tmp_path / "g", "--guidance", "6")
    assert r.exit_code == 2 and "--guidance does not apply to HunyuanVideo-1.5" in r.stderr
    assert not (tmp_path / "g" / "embeddings").exists()
    out = _run(cli, hv15, tmp_path / "one", "--cfg-scale", "1")
    assert not Path(tmp_path / "one" / "negative-embeddings").exists()  # CFG off: no negative prompt encoded
    assert load_file(out["latents"])["latents"].shape == (1, 8, 3, 6, 10)


def test_hv1_embeddings_on_a_hv15_model_are_one_line(hv15: Path, tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    emb = cli("encode", "a cat", "--model", tiny_model, "--workdir", tmp_path, "-q", "--frames", "5")
    assert emb.exit_code == 0, emb.output
    r = cli("render", emb.stdout.strip(), "--model", hv15, *SIZE, "--workdir", tmp_path)
    assert r.exit_code == 2 and "not embeddings of a HunyuanVideo-1.5 model" in r.stderr


# ------------------------------------------------------------------------------------------- what v1 has, on 1.5

PROMPTS = [PROMPT, "a red fox runs through snowy woods at dawn"]


def test_two_ranks_render_what_one_rank_renders(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    """Context parallel (Ulysses over 2 gloo ranks) with 1.5's plan: its blocks, both text streams and the
    refiner's tokens split; CFG from the guider (two forwards a step); within 1e-5 of one process."""
    from tests.test_scaling import _torchrun, assert_same_artifacts

    args = ["run", *PROMPTS, "--model", hv15, *SIZE, "--json", "--workdir"]
    one = cli(*args, tmp_path / "one")
    assert one.exit_code == 0, one.output
    two = _torchrun(2, *args, tmp_path / "two", "--parallel", "ulysses:2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout)["made"] == 2
    assert_same_artifacts(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_two_worker_processes_render_what_one_process_renders(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    from render.scale.workers import cpu_threads
    from tests.test_scaling import assert_same_artifacts, threads

    args = ["run", *PROMPTS, "--model", hv15, *SIZE, "--device", "cpu", "--json", "--workdir"]
    two = cli(*args, tmp_path / "two", "--gpus", "2")
    with threads(cpu_threads(2)):
        one = cli(*args, tmp_path / "one")
    assert one.exit_code == two.exit_code == 0, two.output
    assert json.loads(two.stdout)["made"] == 2
    assert_same_artifacts(tmp_path / "one", tmp_path / "two")


def test_step_caches_act_on_its_blocks(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    """fbcache, teacache and taylorseer hook 1.5's blocks (diffusers registers only v1's: hyv registers 1.5's) and
    skip work (other latents than uncached, a different render key); pab and fastercache are refused."""
    steps = ["--steps", "8"]
    plain = load_file(_run(cli, hv15, tmp_path / "plain", *steps)["latents"])["latents"]
    for cache in ("fbcache:0.3", "teacache:0.3", "taylorseer:2"):
        out = _run(cli, hv15, tmp_path / cache.replace(":", "_"), *steps, "--cache", cache)
        cached = load_file(out["latents"])["latents"]
        assert cached.shape == plain.shape and not torch.equal(cached, plain), cache
        assert json.loads(Path(out["manifest"]).read_text())["render"]["sampling"]["cache"] == cache
    r = cli("run", PROMPT, "--model", hv15, *SIZE, "--cache", "pab", "--workdir", tmp_path / "pab")
    assert r.exit_code == 2 and "not available for HunyuanVideo-1.5" in r.stderr


def test_stop_at_then_resume_equals_an_uninterrupted_render(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    full = _run(cli, hv15, tmp_path / "full")
    stopped = cli("run", PROMPT, "--model", hv15, *SIZE, "--workdir", tmp_path / "w", "--stop-at", "2", "--json")
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.stdout)["videos"][0]["status"] == "stopped"
    resumed = _run(cli, hv15, tmp_path / "w", "--resume")
    a, b = load_file(full["latents"])["latents"], load_file(resumed["latents"])["latents"]
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------- Tencent's layout


def test_original_layout_loads_in_place_and_converts_to_the_same_model(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    """Tencent's layout (DiT and VAE under its names and configs, Qwen2.5-VL whole, byt5-small + Glyph-SDXL-v2) runs
    in place to the same latents as the diffusers layout, bit for bit; `hyv models convert` writes a diffusers folder
    that diffusers loads and that renders the same; a missing Glyph checkpoint is named by `hyv models check`."""
    from diffusers import DiffusionPipeline

    from tests.hv15_original import write as write_original

    ckpts = write_original(hv15, tmp_path / "ckpts")
    check = cli("models", "check", ckpts, "--json")
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["layout"] == "original"
    want = load_file(_run(cli, hv15, tmp_path / "d", "--cfg-scale", "6")["latents"])["latents"]
    got = load_file(_run(cli, ckpts, tmp_path / "o")["latents"])["latents"]  # 480p_t2v: CFG 6 by Tencent's table
    assert torch.equal(got, want)
    conv = cli("models", "convert", ckpts, tmp_path / "converted")
    assert conv.exit_code == 0, conv.output
    pipe = DiffusionPipeline.from_pretrained(str(tmp_path / "converted"))
    assert type(pipe).__name__ == "HunyuanVideo15Pipeline" and pipe.guider.guidance_scale == 6.0
    again = load_file(_run(cli, tmp_path / "converted", tmp_path / "c")["latents"])["latents"]
    assert torch.equal(again, want)
    (ckpts / "text_encoder" / "Glyph-SDXL-v2" / "checkpoints" / "byt5_model.pt").unlink()
    bad = cli("models", "check", ckpts)
    assert bad.exit_code == 2 and "checkpoints/byt5_model.pt" in bad.stdout + bad.stderr


@pytest.mark.skipif("HYV_HV15_CONVERTER" not in __import__("os").environ, reason="set HYV_HV15_CONVERTER")
def test_conversion_equals_diffusers_converter(tmp_path: Path) -> None:
    """hyv's key mapping against diffusers' own scripts/convert_hunyuan_video1_5_to_diffusers.py (not shipped with the
    package: HYV_HV15_CONVERTER names a local copy), on tiny random weights at the depths it hard-codes (54 blocks,
    2 refiner blocks)."""
    import importlib.util
    import os

    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel

    from render.families.hunyuan_video15.original import convert_dit, convert_vae
    from tests.hv15_original import dit_to_original, vae_to_original

    spec = importlib.util.spec_from_file_location("conv", os.environ["HYV_HV15_CONVERTER"])
    assert spec is not None and spec.loader is not None
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    torch.manual_seed(0)
    for meanflow in (False, True):
        dit = HunyuanVideo15Transformer3DModel(
            in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=54,
            num_refiner_layers=2, text_embed_dim=16, text_embed_2_dim=1472, image_embed_dim=12, rope_axes_dim=(2, 2, 4),
            use_meanflow=meanflow,
        )  # fmt: skip
        original = dit_to_original(dit.state_dict())
        ours = convert_dit(original, 16, "test")
        theirs = conv.convert_hyvideo15_transformer_to_diffusers(dict(original), config=dit.config)
        assert sorted(ours) == sorted(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    vae = AutoencoderKLHunyuanVideo15(latent_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
                                      spatial_compression_ratio=4, temporal_compression_ratio=2)  # fmt: skip
    original = vae_to_original(vae.state_dict())
    theirs = conv.convert_hunyuan_video_15_vae_checkpoint_to_diffusers(
        dict(original), block_out_channels=[8, 16, 16], layers_per_block=1
    )
    ours = convert_vae(original)
    assert sorted(ours) == sorted(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
