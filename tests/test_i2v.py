"""Image-to-video for HunyuanVideo 1.5: `--image` on run and encode, an `image` column in batches, against diffusers'
HunyuanVideo15ImageToVideoPipeline (with CFG, and the step-distilled model that takes timestep_r) on tiny folders
written with diffusers' classes (tests/hv15_models.py); the image is part of every key; bad images are one line."""

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
ARGS = ["--frames", "5", "--steps", "4", "--seed", "42"]


@pytest.fixture(scope="module")
def i2v(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("models") / "i2v", "i2v", guidance=4.5)


def frame(path: Path, w: int = 72, h: int = 40, seed: int = 0) -> Path:
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 3 + seed) % 256, (y * 6) % 256, ((x + y) * 2) % 256], -1) + g.integers(0, 20, (h, w, 3))
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)
    return path


def _run(cli: Cli, model: Path, workdir: Path, *extra: str | Path) -> dict:
    r = cli("run", PROMPT, "--model", model, *ARGS, "--workdir", workdir, "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["videos"][0]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("kind", ["i2v", "i2v_step_distilled"])
def test_run_with_an_image_equals_diffusers(kind: str, i2v: Path, tmp_path: Path, cli: Cli) -> None:
    """CFG 4.5 from the guider (i2v); the step-distilled model (CFG 1, shift 7, timestep_r = the next timestep)."""
    model = i2v if kind == "i2v" else write(tmp_path / "sd", kind, guidance=1.0, shift=7.0)
    image = frame(tmp_path / "first.png")
    out = _run(cli, model, tmp_path / "w", "--image", image)
    ours = load_file(out["latents"])["latents"]
    pipe = pipeline(model)
    ref = pipe(image=Image.open(image).convert("RGB"), prompt=PROMPT, num_frames=5, num_inference_steps=4,
               generator=torch.Generator("cpu").manual_seed(42), output_type="latent").frames  # fmt: skip
    assert ours.shape == ref.shape == (1, 8, 3, 6, 10)  # the bucket of 72x40 at target 32: 40 x 24
    assert _rel(ours, ref) < 1e-4
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert (manifest["height"], manifest["width"]) == (24, 40)
    assert any(i["kind"] == "image" for i in manifest["render"]["inputs"])


def test_encode_then_render_equals_run_and_a_changed_image_is_a_new_item(i2v: Path, tmp_path: Path, cli: Cli) -> None:
    image = frame(tmp_path / "first.png")
    run = _run(cli, i2v, tmp_path / "run", "--image", image)
    common = ["--model", i2v, "--workdir", tmp_path / "staged", "-q"]
    emb = cli("encode", PROMPT, "--image", image, *common, "--frames", "5")
    assert emb.exit_code == 0, emb.output
    lat = cli("render", emb.stdout.strip().splitlines()[0], *common, *ARGS)
    assert lat.exit_code == 0, lat.output
    assert torch.equal(load_file(run["latents"])["latents"], load_file(lat.stdout.strip())["latents"])
    frame(image, seed=1)  # the same file name, other pixels
    emb2 = cli("encode", PROMPT, "--image", image, *common, "--frames", "5")  # not answered by the stage index
    assert emb2.exit_code == 0 and emb2.stdout.split()[0] != emb.stdout.split()[0], emb2.output
    again = _run(cli, i2v, tmp_path / "run", "--image", image)
    assert again["status"] == "done" and again["latents"] != run["latents"] and again["embeddings"] != run["embeddings"]


def test_a_batch_with_images_runs_resumes_and_reruns_as_a_no_op(i2v: Path, tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "frames").mkdir()
    frame(tmp_path / "frames" / "a.png", seed=2)
    frame(tmp_path / "frames" / "b.png", 64, 48, seed=3)
    batch = tmp_path / "b.jsonl"
    lines = [
        {"prompt": PROMPT, "image": "frames/a.png"},
        {"prompt": "a red fox runs through snow", "image": "frames/b.png", "seed": 5},
        {"prompt": "a cat", "image": "frames/missing.png"},
    ]
    batch.write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = ["run", "--prompts", batch, "--model", i2v, *ARGS, "--workdir", tmp_path / "w", "--json"]
    first = cli(*args, "--stop-at", "2")
    assert first.exit_code == 3, first.output  # the line whose image is missing fails; the others run
    assert "frames/missing.png does not exist" in first.stderr
    assert [v["status"] for v in json.loads(first.stdout)["videos"]] == ["stopped", "stopped"]
    done = cli(*args, "--resume")
    videos = json.loads(done.stdout)["videos"]
    assert [v["status"] for v in videos] == ["done", "done"]
    assert load_file(videos[1]["latents"])["latents"].shape[-2:] == (7, 9)  # 64x48: its own bucket, 36x28
    again = cli(*args)
    assert [v["status"] for v in json.loads(again.stdout)["videos"]] == ["skipped", "skipped"]


def test_bad_images_are_one_line_and_write_nothing(i2v: Path, tmp_path: Path, tiny_model: Path, cli: Cli) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(frame(tmp_path / "whole.png").read_bytes()[:200])
    cases = [
        (i2v, ["--image", tmp_path / "nowhere.png"], "does not exist"),
        (i2v, ["--image", not_image], "is not an image"),
        (i2v, ["--image", truncated], "truncated or corrupt"),
        (i2v, [], "is an image-to-video model: give the first frame"),
        (tiny_model, ["--image", tmp_path / "whole.png"], "is a text-to-video model"),
    ]
    for model, extra, needle in cases:
        w = tmp_path / "w"
        r = cli("run", PROMPT, "--model", model, *ARGS, "--workdir", w, *extra)
        assert r.exit_code == 2, (needle, r.output)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not any(p.is_file() for p in w.rglob("*.safetensors")), needle
