"""HunyuanVideo-I2V (the v1 family's image model) against diffusers' HunyuanVideoImageToVideoPipeline on the same
folders, images and seeds, in both of its modes (token_replace, with embedded guidance; latent_concat, with true
CFG on a negative prompt, whose 4 leading frames are dropped); staged == run; the memory plan counts the image
half; what the model does not take is one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from render.core.buckets import crop_sizes, nearest
from render.families.hunyuan_video.templates import I2V_TEMPLATE, compute_crop_start
from render.files.artifacts import read_manifest
from tests.conftest import Cli

PROMPT = "a cat walks on the grass"
NEG = "deformation, a poor composition and deformed video"
SIZE = ["--frames", "9", "--height", "64", "--width", "48", "--steps", "3", "--seed", "42"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from render.families import init_tiny

    root = tmp_path_factory.mktemp("i2v")
    return {
        "token_replace": init_tiny(root / "tr", "HunyuanVideo-I2V", "tiny-i2v"),
        "latent_concat": init_tiny(root / "lc", "HunyuanVideo-I2V", "tiny-i2v-33ch"),
    }


def picture(path: Path, w: int = 80, h: int = 60, seed: int = 0) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def reference(model: Path, image: Path, cfg: float) -> torch.Tensor:
    """The pipeline's latents (a template dict that fits the tiny tokenizer and its 64 image tokens)."""
    from diffusers import HunyuanVideoImageToVideoPipeline

    pipe = HunyuanVideoImageToVideoPipeline.from_pretrained(model)
    llava = pipe.text_encoder.config
    start = pipe.tokenizer(I2V_TEMPLATE.format("a"))["input_ids"].index(llava.image_token_index)
    n = (llava.vision_config.image_size // llava.vision_config.patch_size) ** 2
    template = {"template": I2V_TEMPLATE, "crop_start": compute_crop_start(pipe.tokenizer, I2V_TEMPLATE),
                "image_emb_start": start, "image_emb_end": start + n, "image_emb_len": n}  # fmt: skip
    return pipe(
        image=Image.open(image).convert("RGB"), prompt=PROMPT, height=64, width=48, num_frames=9,
        num_inference_steps=3, guidance_scale=6.0, true_cfg_scale=cfg, negative_prompt=NEG if cfg > 1 else None,
        generator=torch.Generator("cpu").manual_seed(42), output_type="latent", prompt_template=template,
    ).frames  # fmt: skip


def _run(cli: Cli, model: Path, workdir: Path, *extra: str | Path) -> dict:
    r = cli("run", PROMPT, "--model", model, *SIZE, "--workdir", workdir, "--json", "--no-cache", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["videos"][0]


@pytest.mark.parametrize(("mode", "cfg"), [("token_replace", 1.0), ("latent_concat", 4.0)])
def test_run_with_an_image_equals_diffusers(mode: str, cfg: float, models: dict, tmp_path: Path, cli: Cli) -> None:
    image = picture(tmp_path / "first.png")
    extra = ["--cfg-scale", str(cfg), "--neg-prompt", NEG] if cfg > 1 else []
    out = _run(cli, models[mode], tmp_path / "w", "--image", image, *extra)
    ours = load_file(out["latents"])["latents"]  # [1, 4, 3, 8, 6]: frame 0 included
    ref = reference(models[mode], image, cfg)
    if mode == "latent_concat":  # the pipeline's latent output leaves out frame 0 (the image's)
        ours = ours[:, :, 1:]
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-4
    video = json.loads(Path(out["manifest"]).read_text())
    assert video["frames"] == (5 if mode == "latent_concat" else 9)  # latent_concat: the image's 4 frames dropped
    if cfg > 1:  # the negative prompt saw a black image, with every 2nd image token (the pipeline's default)
        neg = load_file(next((tmp_path / "w").rglob("negative-embeddings/*.safetensors")))
        pos = load_file(out["embeddings"])
        assert neg["prompt_embeds"].shape[1] == 64 // 2 + 256 - 4 == pos["prompt_embeds"].shape[1]


def test_the_real_template_layout_equals_diffusers_defaults(tmp_path: Path, cli: Cli) -> None:
    """With 576 image tokens (the real LLaVA's) and a Llama-3-like tokenizer, the pipeline's own default template
    numbers (crop_start 103, image tokens at 5..581) hold, and hyv, which measures them, gives the same latents."""
    from diffusers import HunyuanVideoImageToVideoPipeline

    from render.families.hunyuan_video.tiny_i2v import build_components

    model = tmp_path / "real-layout"
    pipe = HunyuanVideoImageToVideoPipeline(**build_components("token_replace", 1, image_side=48))
    pipe.save_pretrained(str(model))
    image = picture(tmp_path / "first.png", seed=3)
    out = _run(cli, model, tmp_path / "w", "--image", image)
    ref = pipe(image=Image.open(image).convert("RGB"), prompt=PROMPT, height=64, width=48, num_frames=9,
               num_inference_steps=3, guidance_scale=6.0, generator=torch.Generator("cpu").manual_seed(42),
               output_type="latent").frames  # fmt: skip
    ours = load_file(out["latents"])["latents"]
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-4
    _, manifest = read_manifest(Path(out["embeddings"]), "embeddings")
    assert manifest["template"]["crop_start"] == 103  # measured; the pipeline's default assumes it
    assert load_file(out["embeddings"])["prompt_embeds"].shape[1] == 576 // 4 + 256 - 4


def test_encode_then_render_equals_run(models: dict, tmp_path: Path, cli: Cli) -> None:
    model, image = models["token_replace"], picture(tmp_path / "first.png", seed=1)
    run = _run(cli, model, tmp_path / "run", "--image", image)
    common = ["--model", model, "--workdir", tmp_path / "staged", "-q", "--no-cache"]
    emb = cli("encode", PROMPT, "--image", image, *common, "--frames", "9", "--height", "64", "--width", "48")
    assert emb.exit_code == 0, emb.output
    lat = cli("render", emb.stdout.strip().splitlines()[0], *common, *SIZE)
    assert lat.exit_code == 0, lat.output
    assert torch.equal(load_file(run["latents"])["latents"], load_file(lat.stdout.strip())["latents"])
    assert load_file(run["embeddings"])["prompt_embeds"].shape[1] == 64 // 4 + 256 - 4  # token_replace: k = 4


def test_what_the_model_does_not_take_is_one_line(models: dict, tmp_path: Path, cli: Cli) -> None:
    image = picture(tmp_path / "first.png")
    for args, words in [
        ([], "is an image-to-video model: give the first frame with --image"),
        (["--image", image, "--guidance", "4"], "latent_concat DiT has no embedded guidance"),
        (["--image", image, "--cache", "teacache"], "not available for HunyuanVideo-I2V"),
    ]:
        r = cli("run", PROMPT, "--model", models["latent_concat"], *SIZE, "--workdir", tmp_path / "w", *args)
        assert r.exit_code == 2, r.output
        errors = [line for line in r.output.splitlines() if line.startswith("hyv: error")]
        assert len(errors) == 1 and words in errors[0], r.output
    assert not any((tmp_path / "w").rglob("*.safetensors"))


def test_the_plan_counts_the_image_half(models: dict, cli: Cli) -> None:
    r = cli("plan", "--model", models["token_replace"], *SIZE[:6], "--json")
    assert r.exit_code == 0, r.output
    encode = next(s for s in json.loads(r.stdout)["stages"] if s["stage"] == "encode")
    names = [c["name"] for c in encode["components"]]
    assert names == ["text_encoder", "text_encoder_2", "vae"]
    vae = encode["components"][2]["weights_bytes"]
    assert vae > 0 and encode["peak_bytes"]["none"] >= vae
    assert encode["weights_bytes"] == sum(c["weights_bytes"] for c in encode["components"])


def test_sizes_follow_the_image_as_tencents_720p_buckets() -> None:
    sizes = crop_sizes(960, 32)  # sides multiples of 32: a 16:9 image makes 704 x 1248 (Tencent's I2V does too)
    assert nearest(1080, 1920, sizes) == (704, 1248)
    assert nearest(1920, 1080, sizes) == (1248, 704)
    assert nearest(600, 800, sizes) == (832, 1088)
    assert nearest(600, 600, sizes) == (960, 960)


def test_serve_takes_an_uploaded_first_frame(models: dict, tmp_path: Path) -> None:
    """POST /api/images, then a job naming the upload; what is not an upload of an image is one 400 or 415."""
    from tests.serve_harness import Server

    server = Server(tmp_path / "work", tmp_path / "cache", "--model", str(models["token_replace"]))
    try:
        assert server.get("/api/status")["image"] == "required"
        data = picture(tmp_path / "first.png").read_bytes()
        status, up, _ = server.request("POST", "/api/images", raw=data, headers={"Content-Type": "image/png"})
        assert status == 201 and up["image"].endswith(".png") and (up["width"], up["height"]) == (80, 60)
        size = {"frames": 9, "height": 64, "width": 48, "steps": 3, "seed": 42}
        job = server.wait(server.submit({"prompt": PROMPT, "image": up["image"], **size})["id"])
        assert job["state"] == "done", job
        (video,) = job["videos"]
        assert load_file(video["latents"])["latents"].shape == (1, 4, 3, 8, 6)
        inputs = json.loads(Path(video["video"] + ".json").read_text())["render"]["inputs"]
        assert any(i["kind"] == "image" for i in inputs)
        for body, headers, code, words in [
            (None, {"Content-Type": "image/png"}, 400, "not an image hyv can read"),
            (None, {"Content-Type": "application/json"}, 415, "Content-Type: image/"),
            ({"prompt": PROMPT, **size}, None, 400, "give an `image`"),
            ({"prompt": PROMPT, "image": "/etc/passwd", **size}, None, 400, "must be the id of an upload"),
            ({"prompt": PROMPT, "image": "0" * 64 + ".png", **size}, None, 400, "no uploaded image"),
        ]:
            path = "/api/images" if body is None else "/api/jobs"
            raw = b"GIF89a not really" if body is None else None
            status, err, _ = server.request("POST", path, body, raw=raw, headers=headers)
            assert status == code and words in err["error"], err
    finally:
        assert server.stop() == 0, server.log()


def test_tencents_original_layout_loads_in_place_and_converts(models: dict, tmp_path: Path, cli: Cli) -> None:
    """tencent/HunyuanVideo-I2V's ckpts/ (the DiT under hunyuan-video-i2v-720p/, the whole LLaVA with its image
    processor in text_encoder_i2v/), made here from the tiny diffusers folder: run in place == the diffusers folder ==
    `hyv models convert`'s output (to float rounding); `hyv models check` reads it."""
    import shutil

    from tests.weight_formats import write_original_layout

    src = models["token_replace"]
    ckpts = write_original_layout(src, tmp_path / "ckpts")
    (ckpts / "hunyuan-video-t2v-720p").rename(ckpts / "hunyuan-video-i2v-720p")
    (ckpts / "text_encoder").rename(ckpts / "text_encoder_i2v")
    shutil.copy2(src / "image_processor" / "preprocessor_config.json", ckpts / "text_encoder_i2v")
    check = cli("models", "check", ckpts)
    assert check.exit_code == 0 and "HunyuanVideo-I2V, original layout" in check.output, check.output
    converted = tmp_path / "converted"
    conv = cli("models", "convert", ckpts, converted)
    assert conv.exit_code == 0, conv.output
    image = picture(tmp_path / "first.png", seed=4)
    latents = [load_file(_run(cli, m, tmp_path / f"w{i}", "--image", image)["latents"])["latents"]
               for i, m in enumerate((src, ckpts, converted))]  # fmt: skip
    for other in latents[1:]:  # the same weights; fused original tensors split by views: float rounding at most
        assert float((other - latents[0]).abs().max() / latents[0].abs().max()) < 1e-5
