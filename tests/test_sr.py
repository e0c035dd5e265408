"""HunyuanVideo 1.5 super-resolution as a stage (`hyv upscale`, `hyv run --sr`) on tiny models: staged equals one-shot
bit for bit, the output takes the high-resolution bucket, bad inputs are one-line errors, an interrupted upscale
continues from its checkpoint, Tencent's layout loads in place and converts; and the oracle: hyv's stage against
Tencent's own `HunyuanVideo_1_5_SR_Pipeline` (needs a checkout of Tencent's code: HYV_TENCENT_HV15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import REPO, Cli

PROMPT = 'a neon sign that says "OPEN" above a diner at night'
SIZE = ["--frames", "5", "--height", "24", "--width", "40", "--steps", "3", "--seed", "7"]


@pytest.fixture(scope="module")
def sr_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from render.families import init_tiny

    return init_tiny(tmp_path_factory.mktemp("models") / "sr", "HunyuanVideo-1.5", preset="tiny-sr", seed=3)


def _json(r: Any) -> dict[str, Any]:
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _frames(folder: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(Path(folder).glob("*.png"))])


def test_run_with_sr_equals_run_then_upscale_then_decode(sr_model: Path, tmp_path: Path, cli: Cli) -> None:
    one = _json(cli("run", PROMPT, "--model", sr_model, *SIZE, "--sr", "720p", "--format", "png",
                    "--workdir", tmp_path / "one", "--json"))["videos"][0]  # fmt: skip
    common = ["--model", sr_model, "--workdir", tmp_path / "staged", "-q"]
    emb = cli("encode", PROMPT, *common, "--frames", "5")
    lat = cli("render", emb.stdout.strip(), *common, *SIZE)
    up = cli("upscale", lat.stdout.strip(), *common, "--to", "720p")
    assert up.exit_code == 0, up.output
    vid = cli("decode", up.stdout.strip(), *common, "--format", "png")
    assert vid.exit_code == 0, vid.output
    base, high = (load_file(p)["latents"] for p in (one["base_latents"], one["latents"]))
    assert base.shape == (1, 4, 3, 6, 10) and high.shape == (1, 4, 3, 9, 15)  # 24x40 -> its bucket 36x60
    assert torch.equal(base, load_file(lat.stdout.strip())["latents"])
    assert torch.equal(high, load_file(up.stdout.strip())["latents"])
    frames = _frames(one["video"])
    assert frames.shape == (5, 36, 60, 3)
    assert np.array_equal(frames, _frames(vid.stdout.strip()))
    manifest = json.loads(Path(one["manifest"]).read_text())
    assert (manifest["height"], manifest["width"]) == (36, 60)
    render = manifest["render"]
    assert render["stage"] == "upscale" and render["sampling"]["sr"] == "720p" and render["seed"] == 7
    assert render["upscale"]["steps"] == 6 and render["upscale"]["shift"] == 2.0
    assert render["base"]["latent_shape"] == [1, 4, 3, 6, 10]
    # re-running finds everything made (the run index knows --sr); without --sr it is another video
    again = _json(cli("run", PROMPT, "--model", sr_model, *SIZE, "--sr", "720p", "--format", "png",
                      "--workdir", tmp_path / "one", "--json"))  # fmt: skip
    assert again["already_done"] == 1 and again["videos"][0]["video"] == one["video"]


def test_1080p_upscales_the_720p_buckets(sr_model: Path, tmp_path: Path, cli: Cli) -> None:
    """The tiny 1080p model takes the buckets the 720p one makes (as Tencent's 720p -> 1080p): 36x60 -> 56x92."""
    w = ["--model", sr_model, "--workdir", tmp_path, "--json"]
    first = _json(cli("run", PROMPT, *w, *SIZE, "--sr", "720p"))["videos"][0]
    second = _json(cli("upscale", first["latents"], *w, "--to", "1080p"))["latents"][0]
    high = load_file(second["latents"])["latents"]
    assert high.shape == (1, 4, 3, 14, 23)
    assert second["base_latents"] == first["latents"] and second["seed"] == 7
    direct = cli("upscale", first["base_latents"], *w, "--to", "1080p")  # a 24x40 video is no 1080p base
    assert direct.exit_code == 2 and "has no super-resolution bucket" in direct.stderr


def test_bad_inputs_are_one_line_errors(sr_model: Path, tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    from render.families import init_tiny

    v1 = _json(cli("run", "a cat", "--model", tiny_model, "--frames", "5", "--height", "32", "--width", "32",
                   "--steps", "2", "--workdir", tmp_path / "v1", "--json"))["videos"][0]  # fmt: skip
    cases = [
        (["upscale", v1["latents"], "--to", "720p", "--model", sr_model], "embeddings of another model family"),
        (["run", PROMPT, "--model", sr_model, *SIZE[:2], "--height", "24", "--width", "24", "--sr", "720p"],
         "24x24 has no super-resolution bucket"),
        (["upscale", v1["latents"], "--to", "720p", "--model", tiny_model], "not available for HunyuanVideo models"),
        (["run", PROMPT, "--model", sr_model, *SIZE, "--sr", "4k"], "unknown super-resolution target '4k'"),
        (["run", PROMPT, "--model", sr_model, *SIZE[:2], "--height", "36", "--width", "60", "--sr", "1080p",
          "--no-tiling"], "decoded with VAE tiling"),
    ]  # fmt: skip
    base = init_tiny(tmp_path / "no-sr", "HunyuanVideo-1.5", preset="tiny")
    cases.append((["run", PROMPT, "--model", base, *SIZE, "--sr", "720p"], "no super-resolution model for 720p"))
    for n, (args, message) in enumerate(cases):
        wd = tmp_path / f"w{n}"
        r = cli(*args, "--workdir", wd)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not any(p.is_file() for p in wd.rglob("*")), list(wd.rglob("*"))  # nothing written


def test_a_batch_on_two_workers_upscales_what_one_process_does(sr_model: Path, tmp_path: Path, cli: Cli) -> None:
    """--gpus carries --sr and the items' own settings (a seed, two videos of one prompt) through to the upscale."""
    from render.scale.workers import cpu_threads
    from tests.test_scaling import assert_same_artifacts, threads

    batch = tmp_path / "batch.jsonl"
    fox = {"prompt": "a red fox runs through snowy woods", "num_videos": 2}
    batch.write_text(json.dumps({"prompt": PROMPT, "seed": 11}) + "\n" + json.dumps(fox) + "\n")
    args = ["run", "--prompts", batch, "--model", sr_model, *SIZE[:8], "--sr", "720p", "--device", "cpu", "--json"]
    two = _json(cli(*args, "--workdir", tmp_path / "two", "--gpus", "2"))
    with threads(cpu_threads(2)):
        one = _json(cli(*args, "--workdir", tmp_path / "one"))
    assert two["made"] == one["made"] == 3
    assert [v["seed"] for v in two["videos"]] == [11, 42, 43]
    assert all(load_file(v["latents"])["latents"].shape[-2:] == (9, 15) for v in two["videos"])
    assert_same_artifacts(tmp_path / "one", tmp_path / "two")


def test_a_batch_on_ray_upscales_what_one_process_does(sr_model: Path, tmp_path: Path, cli: Cli) -> None:
    """--ray carries --sr: render actors, then the same actors upscale (their DiT freed), then decode."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray")
    from tests.conftest import hyv_proc
    from tests.ray_harness import local_cluster
    from tests.test_scaling import assert_same_artifacts, threads

    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"prompt": PROMPT, "seed": s}) + "\n" for s in (1, 2)))
    args = ["run", "--prompts", batch, "--model", sr_model, *SIZE[:8], "--sr", "720p", "--json", "--workdir"]
    with threads(1):  # Ray gives each actor of 1 CPU one thread
        local = _json(cli(*args, tmp_path / "local"))
    with local_cluster(Path(f"/tmp/hyv-ray-sr-{os.getpid()}")) as cluster:
        p = hyv_proc(*args, tmp_path / "ray", "--ray", cluster.address, env={"HYV_CACHE_DIR": str(tmp_path / "c")})
    assert p.returncode == 0, p.stderr[-3000:]
    on_ray = json.loads(p.stdout)
    assert on_ray["made"] == local["made"] == 2
    assert [v["base_latents"] is not None for v in on_ray["videos"]] == [True, True]
    assert_same_artifacts(tmp_path / "local", tmp_path / "ray")


def test_serve_requests_take_sr(sr_model: Path) -> None:
    """A job may ask for super-resolution ("sr"): it is part of its key and its batch group; jobs without it keep
    their keys."""
    from render.engine import Engine
    from serve.spec import RequestError, parse

    engine = Engine(sr_model)
    plain, sr = parse({"prompt": PROMPT}, engine), parse({"prompt": PROMPT, "sr": "720p"}, engine)
    assert sr.settings.upscale.sr == "720p" and plain.settings.upscale.sr is None
    assert sr.key("m") != plain.key("m") and sr.group() != plain.group()
    assert "upscale" not in json.dumps(plain.request())
    with pytest.raises(RequestError, match="unknown super-resolution target"):
        parse({"prompt": PROMPT, "sr": "8k"}, engine)


class _Interrupt:
    """A progress that interrupts (as Ctrl-C) at its `n`th step."""

    def __init__(self, n: int) -> None:
        self.n = n

    def stage(self, name: str, total: int) -> None: ...
    def item(self, status: str, label: str) -> None: ...
    def steps(self, total: int, label: str) -> None: ...
    def warn(self, message: str) -> None: ...

    def step(self, n: int = 1) -> None:
        self.n -= n
        if self.n == 0:
            raise KeyboardInterrupt


def test_an_interrupted_upscale_continues_from_its_checkpoint(sr_model: Path, tmp_path: Path, cli: Cli) -> None:
    from render.engine import Engine

    lat = _json(cli("run", PROMPT, "--model", sr_model, *SIZE, "--workdir", tmp_path, "--json"))["videos"][0]
    engine = Engine(sr_model)
    settings = engine.settings(sr="720p", save_every=2)
    with pytest.raises(KeyboardInterrupt):
        engine.upscale([Path(lat["latents"])], settings, workdir=tmp_path, progress=_Interrupt(5))  # type: ignore[arg-type]
    assert len(list((tmp_path / "latents" / ".checkpoints").glob("*"))) == 1  # step 4 of 6 kept
    resumed = engine.upscale([Path(lat["latents"])], settings, workdir=tmp_path).outcomes[0]
    assert resumed.status == "done" and resumed.latents is not None
    assert json.loads(_manifest(resumed.latents))["resumed_from"] == 4
    whole = Engine(sr_model).upscale([Path(lat["latents"])], engine.settings(sr="720p"), workdir=tmp_path / "b")
    assert torch.equal(load_file(resumed.latents)["latents"], load_file(whole.outcomes[0].latents)["latents"])


def test_plan_of_the_released_configs_covers_1080p(tmp_path: Path) -> None:
    """The SR DiT at 1072x1904 (247,163 video tokens a step, no dense mask) and the VAE decode at that size, with
    tiling (untiled it would need hundreds of GB: refused above), on the released 1.5 configs."""
    from render.engine import Engine
    from tests.real_configs import write_real_configs_15

    engine = Engine(write_real_configs_15(tmp_path / "real", "720p"))
    settings = engine.settings(size="720p", sr="1080p", device="cuda")
    plan = engine.plan(settings, ("upscale", "decode"))
    assert plan.upscaled == ("1080p", 1072, 1904)
    up, dec = plan.stage("upscale"), plan.stage("decode")
    assert [c.name for c in up.components] == ["transformer", "upsampler"]
    assert 16e9 < up.weights < 17e9  # 8.3B in bf16
    assert up.peaks["group"] < 24e9 < up.peaks["none"] < 48e9  # a 24 GB card streams its blocks, 48 GB holds it
    assert dec.peaks["none"] < 24e9


def _manifest(path: Path) -> str:
    from render.files.artifacts import read_manifest

    return json.dumps(read_manifest(path, "latents")[1])


# ------------------------------------------------------------------------------------------------ the oracle

TENCENT = os.environ.get("HYV_TENCENT_HV15")


def _tencent(*args: str | Path) -> None:
    python = os.environ.get("HYV_TENCENT_PYTHON", sys.executable)
    env = {**os.environ, "HYV_TENCENT_HV15": str(TENCENT)}
    r = subprocess.run([python, str(REPO / "tests" / "tencent_sr.py"), *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


def _config_only_base(root: Path) -> Path:
    """A HunyuanVideo 1.5 folder of configs only (what `hyv upscale` reads of the base model: its family and its
    VAE's factors: 32 channels, 16x): the oracle's SR model comes with --sr-model."""
    for name, cfg in {
        "transformer": {"_class_name": "HunyuanVideo15Transformer3DModel", "target_size": 640},
        "vae": {"_class_name": "AutoencoderKLHunyuanVideo15", "latent_channels": 32,
                "spatial_compression_ratio": 16, "temporal_compression_ratio": 4, "scaling_factor": 1.03682},
    }.items():  # fmt: skip
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps(cfg))
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text('{"shift": 5.0}')
    (root / "model_index.json").write_text('{"_class_name": "HunyuanVideo15Pipeline"}')
    return root


def _base_artifacts(
    workdir: Path, lr_hw: tuple[int, int], text_2_dim: int, seed: int, frames: int = 2
) -> tuple[Path, torch.Tensor, dict[str, torch.Tensor]]:
    """Embeddings (text dims 16 / text_2_dim, some padding) and latents [1, 32, frames, H/16, W/16] written as a
    render writes them: (the latents' path, the latents, the embeddings' tensors)."""
    from render.core.hashing import file_sha256
    from render.files.artifacts import write_artifact

    g = torch.Generator().manual_seed(5)
    mask, mask_2 = torch.zeros(1, 24, dtype=torch.int64), torch.zeros(1, 16, dtype=torch.int64)
    mask[:, :17], mask_2[:, :5] = 1, 1
    tensors = {
        "prompt_embeds": torch.randn(1, 24, 16, generator=g),
        "prompt_embeds_mask": mask,
        "prompt_embeds_2": torch.randn(1, 16, text_2_dim, generator=g),
        "prompt_embeds_mask_2": mask_2,
    }
    emb = write_artifact(workdir / "embeddings" / "e.safetensors", "embeddings", tensors,
                         {"stage": "encode", "prompt": "a tiny test", "cache_key": "emb1-oracle",
                          "encoder": {"text_dim": 16, "text_2_dim": text_2_dim}})  # fmt: skip
    lr = torch.randn(1, 32, frames, lr_hw[0] // 16, lr_hw[1] // 16, generator=g)
    named = [{"kind": "embeddings", "path": str(emb), "sha256": file_sha256(emb)}]
    lat = write_artifact(workdir / "latents" / "l.safetensors", "latents", {"latents": lr},
                         {"stage": "render", "prompt": "a tiny test", "seed": seed, "render_key": "lat1-oracle",
                          "inputs": named})  # fmt: skip
    return lat, lr, tensors


def test_tencents_layout_loads_in_place_and_converts(tmp_path: Path, cli: Cli) -> None:
    """SR weights in Tencent's layout (transformer/720p_sr_distilled, upsampler/720p_sr_distilled) upscale in place;
    `hyv models convert` writes hyv's layout (sr-720p/), which upscales to the same bits; `hyv models check` knows
    both; a truncated file is one line before anything runs; `download --sr` fetches Tencent's folders."""
    from tests.sr_original import write

    orig = write(tmp_path / "orig")
    base = _config_only_base(tmp_path / "base")
    lat, _, _ = _base_artifacts(tmp_path / "w", (480, 848), 8, seed=3)
    args = ["upscale", lat, "--to", "720p", "--model", base, "--json"]
    first = _json(cli(*args, "--sr-model", orig, "--workdir", tmp_path / "w"))["latents"][0]
    ours = load_file(first["latents"])["latents"]
    assert ours.shape == (1, 32, 2, 45, 80)  # 480x848 -> 720x1280
    check = _json(cli("models", "check", orig, "--json"))
    assert check["ok"] and check["super_resolution"] == ["720p"]
    conv_dir = tmp_path / "conv"
    conv = cli("models", "convert", orig, conv_dir)
    assert conv.exit_code == 0 and "super-resolution models (720p) in hyv's layout" in conv.stdout, conv.output
    assert (tmp_path / "conv" / "sr-720p" / "sr.json").is_file()
    second = _json(cli(*args, "--sr-model", tmp_path / "conv", "--workdir", tmp_path / "w2"))["latents"][0]
    # the same weights to the bit; the outputs to float rounding (CPU kernels round by the weights' memory
    # alignment, which differs between a memory-mapped diffusers file and Tencent's renamed tensors)
    from render.families.hunyuan_video15 import sr_models

    a, b = (sr_models.load_dit(sr_models.find(d, "720p"), torch.float32).state_dict() for d in (orig, conv_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    theirs = load_file(second["latents"])["latents"]
    assert float((ours - theirs).norm() / ours.norm()) < 1e-6
    shard = next((tmp_path / "conv" / "sr-720p" / "transformer").glob("*.safetensors"))
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 64)
    bad = cli(*args, "--sr-model", tmp_path / "conv", "--workdir", tmp_path / "w3")
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.output
    assert "super-resolution model" in bad.stderr and not (tmp_path / "w3" / "latents").exists()
    fetch = cli("models", "download", tmp_path / "dl", "--family", "HunyuanVideo-1.5", "--sr", "720p", "--yes")
    assert fetch.exit_code == 2 and "tencent/HunyuanVideo-1.5" in fetch.stderr  # offline here: one line


@pytest.mark.skipif(TENCENT is None, reason="HYV_TENCENT_HV15 (a checkout of Tencent's HunyuanVideo-1.5) not given")
@pytest.mark.parametrize(("target", "lr_hw"), [("720p", (480, 848)), ("1080p", (720, 1280))])
def test_upscale_equals_tencents_sr_pipeline(target: str, lr_hw: tuple[int, int], tmp_path: Path) -> None:
    """hyv's stage (Engine.upscale, the SR model in Tencent's layout with --sr-model) against Tencent's pipeline on
    the same tiny random weights (written by Tencent's classes), the same low-resolution latents and prompt
    embeddings, and hyv's draws (its initial noise and re-noising draw, from the seed) given to Tencent's."""
    from render.engine import Engine

    version = f"{target}_sr_distilled"
    weights = tmp_path / "tencent"
    _tencent("fixture", weights, "--version", version)
    t, seed = 2, 1234
    lat, lr, tensors = _base_artifacts(tmp_path / "w", lr_hw, 1472, seed)
    mask, mask_2 = tensors["prompt_embeds_mask"], tensors["prompt_embeds_mask_2"]
    engine = Engine(_config_only_base(tmp_path / "base"), sr_model=weights)
    out = engine.upscale([lat], engine.settings(sr=target, device="cpu"), workdir=tmp_path / "w").outcomes[0]
    assert out.status == "done", out.error
    ours = load_file(str(out.latents))["latents"]
    hr = ours.shape[-2:]
    assert tuple(x * 16 for x in hr) == {"720p": (720, 1280), "1080p": (1072, 1904)}[target]
    # hyv's draws, as documented: one CPU generator seeded with the seed, the initial noise, then the re-noising
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(ours.shape, generator=gen)
    renoise = torch.randn(ours.shape, generator=gen)
    inputs = {"video_length": 4 * (t - 1) + 1, "lr_latents": lr, "init_noise": noise, "renoise": renoise,
              "prompt_embeds": tensors["prompt_embeds"], "prompt_mask": mask,
              "byt5_embeds": tensors["prompt_embeds_2"], "byt5_mask": mask_2}  # fmt: skip
    torch.save(inputs, tmp_path / "inputs.pt")
    _tencent("run", weights, tmp_path / "inputs.pt", tmp_path / "out.pt", "--version", version)
    ref = torch.load(tmp_path / "out.pt")["hr_latents"]
    rel = float((ours - ref).norm() / ref.norm())
    print(f"{target}: hyv vs Tencent's HunyuanVideo_1_5_SR_Pipeline: relative L2 {rel:.3e}, max abs "
          f"{float((ours - ref).abs().max()):.3e}, |ref| max {float(ref.abs().max()):.3f}")  # fmt: skip
    assert rel < 1e-4


@pytest.mark.skipif(TENCENT is None, reason="HYV_TENCENT_HV15 (a checkout of Tencent's HunyuanVideo-1.5) not given")
def test_image_to_video_inputs_equal_tencents(tmp_path: Path) -> None:
    """The image-to-video seam of the family's SR pass (the reference image's latents in frame 0 of the image
    condition, its SigLIP tokens as the DiT's image tokens), run through hyv's loop, against Tencent's pipeline with
    the same image inputs given (hyv makes them from the first frame: render.run.upscaling.first_frames)."""
    from render.families.hunyuan_video15 import HUNYUAN_VIDEO_15, sr_models
    from render.sampling.sample import denoise

    weights = tmp_path / "tencent"
    _tencent("fixture", weights, "--version", "720p_sr_distilled")
    _, lr, tensors = _base_artifacts(tmp_path / "w", (480, 848), 1472, seed=9)
    g = torch.Generator().manual_seed(6)
    image, vision = torch.randn(1, 32, 1, 45, 80, generator=g), torch.randn(1, 8, 12, generator=g)
    up = sr_models.find(weights, "720p")
    assert up is not None
    dit, ups = HUNYUAN_VIDEO_15.load_upscaler(up, torch.float32)
    first = {"image_latents": image, "image_embeds": vision}  # the image artifact's tensors at the upscaled size
    made = HUNYUAN_VIDEO_15.upscale_inputs(up, tensors, lr, ups, (45, 80), 9, False, torch.device("cpu"),
                                           torch.float32, first)  # fmt: skip
    ours = denoise(dit, made.scheduler, made.latents, made.inputs, cfg_scale=1.0, start=0, end=up.steps)
    gen = torch.Generator("cpu").manual_seed(9)
    noise, renoise = torch.randn(ours.shape, generator=gen), torch.randn(ours.shape, generator=gen)
    torch.save({"video_length": 5, "lr_latents": lr, "init_noise": noise, "renoise": renoise,
                "prompt_embeds": tensors["prompt_embeds"], "prompt_mask": tensors["prompt_embeds_mask"],
                "byt5_embeds": tensors["prompt_embeds_2"], "byt5_mask": tensors["prompt_embeds_mask_2"],
                "image_latents": image, "vision_states": vision}, tmp_path / "inputs.pt")  # fmt: skip
    _tencent("run", weights, tmp_path / "inputs.pt", tmp_path / "out.pt", "--version", "720p_sr_distilled", "--i2v")
    ref = torch.load(tmp_path / "out.pt")["hr_latents"]
    rel = float((ours - ref).norm() / ref.norm())
    print(f"720p image-to-video: hyv vs Tencent's pipeline: relative L2 {rel:.3e}")
    assert rel < 1e-4


def test_image_to_video_upscales_with_its_first_frame(tmp_path: Path, cli: Cli) -> None:
    """An image-to-video video is upscaled with its first frame framed for the upscaled size (its own image
    artifact: latents and SigLIP tokens); run --sr equals the stages one by one; a changed image fails alone."""
    from render.families import init_tiny
    from render.files.artifacts import read_manifest
    from tests.test_i2v import frame

    model = init_tiny(tmp_path / "i2v-sr", "HunyuanVideo-1.5", preset="tiny-i2v-sr", seed=3)
    image = frame(tmp_path / "first.png")
    one = _json(cli("run", PROMPT, "--model", model, *SIZE, "--image", image, "--sr", "720p",
                    "--workdir", tmp_path / "one", "--json"))["videos"][0]  # fmt: skip
    render = json.loads(Path(one["manifest"]).read_text())["render"]
    (first,) = [i for i in render["inputs"] if i["kind"] == "image"]
    _, m = read_manifest(Path(first["path"]), "image")
    assert (m["height"], m["width"]) == (36, 60)  # framed for the upscaled size: an artifact of its own
    common = ["--model", model, "--workdir", tmp_path / "staged", "-q"]
    emb = cli("encode", PROMPT, "--image", image, *common, "--frames", "5", "--height", "24", "--width", "40")
    lat = cli("render", emb.stdout.strip().splitlines()[0], *common, *SIZE)
    up = cli("upscale", lat.stdout.strip(), *common, "--to", "720p")
    assert up.exit_code == 0, up.output
    assert torch.equal(load_file(one["latents"])["latents"], load_file(up.stdout.strip())["latents"])
    frame(image, seed=5)  # the first frame changed since: that video cannot be upscaled as it was made
    again = cli("upscale", lat.stdout.strip(), "--model", model, "--workdir", tmp_path / "later", "--to", "720p")
    assert again.exit_code != 0 and "changed since" in again.output
