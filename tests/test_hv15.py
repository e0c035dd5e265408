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
