"""Every weight format users download, written from init-tiny weights (tests/weight_formats.py) and loaded by hyv:
the original layout and its conversion give the diffusers layout's video exactly; fp8 and GGUF within their
quantisation error (measured, asserted with margin); LoRAs in three formats equal a merged-weights oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import SMALL_ARGS, Cli
from tests.weight_formats import (
    diffusers_to_original,
    make_original_lora,
    merged_weights,
    to_diffusers_lora,
    to_musubi,
    write_gguf,
    write_original_layout,
)

PROMPT = "A cat walks on the grass, realistic style."
RUN = [*SMALL_ARGS, "--seed", "3", "--format", "png", "--json"]


def _run(cli: Cli, model: Path, wd: Path, *extra: str | Path) -> dict[str, Any]:
    r = cli("run", PROMPT, "--model", model, "--workdir", wd, *RUN, *extra)
    assert r.exit_code == 0, r.stderr
    return dict(json.loads(r.stdout)["videos"][0])


def _latents(out: dict[str, Any]) -> torch.Tensor:
    return load_file(out["latents"])["latents"]


def _frames(out: dict[str, Any]) -> list[bytes]:
    return [p.read_bytes() for p in sorted(Path(out["video"]).glob("*.png"))]


def _render_key(out: dict[str, Any]) -> str:
    return str(json.loads(Path(out["manifest"]).read_text())["render"]["render_key"])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def original(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_original_layout(tiny_model, tmp_path_factory.mktemp("ckpts") / "ckpts", fp8=True)


@pytest.fixture(scope="module")
def reference(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import hyv

    return _run(hyv, tiny_model, tmp_path_factory.mktemp("ref"))


def test_original_layout_and_its_conversion_give_the_same_video(
    original: Path, reference: dict[str, Any], tmp_path: Path, cli: Cli
) -> None:
    out = _run(cli, original, tmp_path / "orig")
    assert torch.equal(_latents(out), _latents(reference))
    assert _frames(out) == _frames(reference) and len(_frames(out)) == 9
    r = cli("models", "convert", original, tmp_path / "conv")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "conv" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    out2 = _run(cli, tmp_path / "conv", tmp_path / "conv-run")
    assert _frames(out2) == _frames(reference)
    r = cli("models", "convert", tmp_path / "conv", tmp_path / "again")
    assert r.exit_code == 2 and "already in the diffusers layout" in r.stderr


def test_conversion_matches_diffusers_on_the_real_13b_shapes() -> None:
    """hyv's converter and diffusers' (which hard-codes width 3072, right for the 13B model) agree on every key
    and shape of the real model, on the meta device; and the inferred config is diffusers' default (the 13B)."""
    from diffusers import HunyuanVideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

    from render.families.hunyuan_video.original import convert_dit_state_dict, infer_dit_config

    with torch.device("meta"):
        model = HunyuanVideoTransformer3DModel()
    sd = model.state_dict()
    orig = diffusers_to_original(sd)
    ours = convert_dit_state_dict(orig, 3072, "13B")
    theirs = convert_hunyuan_video_transformer_to_diffusers(dict(orig))
    assert set(ours) == set(theirs) == set(sd)
    assert all(ours[k].shape == theirs[k].shape == sd[k].shape for k in sd)
    cfg = infer_dit_config({k: tuple(v.shape) for k, v in orig.items()}, {}, "13B")
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if k in cfg
    }


def test_tencent_fp8_and_fp8_storage(
    original: Path, tiny_model: Path, reference: dict[str, Any], tmp_path: Path, cli: Cli
) -> None:
    """Tencent's scaled fp8 checkpoint keeps fp8 weights and applies the scales; --fp8 on the full-precision
    weights stores them in fp8. Measured on this tiny model: latents rel. error 0.0023 (scaled) and 0.015
    (unscaled storage)."""
    from render.core.settings import Placement
    from render.engine import Engine
    from render.model.variant import DiTVariant

    engine = Engine(original, variant=DiTVariant(fp8=True))
    tr = engine.transformer(Placement(device="cpu")).module
    q = tr.transformer_blocks[0].attn.to_q
    assert q.weight.dtype == torch.float8_e4m3fn and float(q.scale) > 0
    assert tr.x_embedder.proj.weight.dtype == torch.float32  # outside the blocks: full precision
    engine.close()
    scaled = _run(cli, original, tmp_path / "scaled", "--fp8")
    assert 0 < _rel(_latents(scaled), _latents(reference)) < 0.02
    manifest = json.loads(Path(scaled["manifest"]).read_text())
    assert manifest["render"]["sampling"]["weights"] == {"fp8": "tencent-scaled"}
    assert _render_key(scaled) != _render_key(reference)
    storage = _run(cli, tiny_model, tmp_path / "storage", "--fp8")
    assert 0 < _rel(_latents(storage), _latents(reference)) < 0.1
    assert json.loads(Path(storage["manifest"]).read_text())["render"]["sampling"]["weights"] == {
        "fp8": "layerwise"
    }
    only_fp8 = tmp_path / "only-fp8"
    write_original_layout(tiny_model, only_fp8, fp8=True, full=False)
    r = cli("run", PROMPT, "--model", only_fp8, "--workdir", tmp_path / "x", *SMALL_ARGS)
    assert r.exit_code == 2 and "pass --fp8" in r.stderr


def test_gguf_dit_files(small_model: Path, tmp_path: Path, cli: Cli) -> None:
    """city96-style GGUF (original names, quantised 2-D weights) through diffusers' GGUF quantiser: weights stay
    quantised. Measured on the small model: latents rel. error 2e-4 (Q8_0), 4e-3 (Q4_0)."""
    from diffusers.quantizers.gguf.utils import GGUFParameter

    from render.core.settings import Placement
    from render.families import family_of, resolve_model
    from render.model.loading import load_transformer
    from render.model.variant import DiTVariant

    sd = load_file(str(small_model / "transformer" / "diffusion_pytorch_model.safetensors"))
    orig = diffusers_to_original(sd)
    files = {q: write_gguf(orig, tmp_path / f"dit-{q}.gguf", q) for q in ("Q8_0", "Q4_0")}
    model = resolve_model(small_model)
    variant = DiTVariant(dit_file=files["Q4_0"])
    tr = load_transformer(model, family_of(model), Placement(device="cpu"), variant).module
    assert isinstance(tr.transformer_blocks[0].attn.to_q.weight, GGUFParameter)
    del tr
    args: list[str] = []
    ref = _run(cli, small_model, tmp_path / "full", *args)
    errors = {}
    for q, f in files.items():
        out = _run(cli, small_model, tmp_path / q, *args, "--dit", f)
        errors[q] = _rel(_latents(out), _latents(ref))
        weights = json.loads(Path(out["manifest"]).read_text())["render"]["sampling"]["weights"]
        assert weights["dit_file"]["name"] == f.name
    assert 0 < errors["Q8_0"] < 2e-3 and errors["Q8_0"] < errors["Q4_0"] < 0.05
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(files["Q8_0"].read_bytes()[:100_000])
    r = cli("run", PROMPT, "--model", small_model, "--workdir", tmp_path / "cut", *SMALL_ARGS, "--dit", truncated)
    assert r.exit_code == 2 and "cut.gguf" in r.stderr and r.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def loras(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("loras")
    sd = load_file(str(tiny_model / "transformer" / "diffusion_pytorch_model.safetensors"))
    lora = make_original_lora(diffusers_to_original(sd), rank=2, seed=0)
    files = {
        "original": d / "original.safetensors",
        "musubi": d / "musubi.safetensors",
        "diffusers": d / "diffusers.safetensors",
    }
    save_file(lora, str(files["original"]))
    save_file(to_musubi(lora, alpha=1.0), str(files["musubi"]))
    save_file(to_diffusers_lora(lora, hidden=20), str(files["diffusers"]))
    return {"sd": sd, "lora": lora, "files": files}


def test_loras_in_every_format_equal_the_merged_weights(tiny_model: Path, loras: dict[str, Any]) -> None:
    from diffusers import HunyuanVideoTransformer3DModel

    from render.core.settings import Placement
    from render.families import family_of, resolve_model
    from render.model.loading import load_transformer
    from render.model.variant import DiTVariant, LoraSpec

    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 8, 8)
    kw = {
        "timestep": torch.tensor([500.0]),
        "encoder_hidden_states": torch.randn(1, 6, 16),
        "encoder_attention_mask": torch.ones(1, 6),
        "pooled_projections": torch.randn(1, 8),
        "guidance": torch.tensor([6000.0]),
    }
    oracle = HunyuanVideoTransformer3DModel.from_pretrained(tiny_model / "transformer")
    oracle.load_state_dict(merged_weights(loras["sd"], loras["lora"], 0.7))
    with torch.no_grad():
        want = oracle(hidden_states=x, **kw, return_dict=False)[0]
        plain = HunyuanVideoTransformer3DModel.from_pretrained(tiny_model / "transformer")
        base = plain(hidden_states=x, **kw, return_dict=False)[0]
    assert _rel(base, want) > 0.05  # the LoRA changes the output
    model = resolve_model(tiny_model)
    for name, f in loras["files"].items():
        variant = DiTVariant(loras=(LoraSpec(f, 0.7),))
        tr = load_transformer(model, family_of(model), Placement(device="cpu"), variant).module
        with torch.no_grad():
            got = tr(hidden_states=x, **kw, return_dict=False)[0]
        assert _rel(got, want) < 1e-5, name


def test_lora_key_manifest_and_mismatch(
    tiny_model: Path,
    small_model: Path,
    original: Path,
    loras: dict[str, Any],
    reference: dict[str, Any],
    tmp_path: Path,
    cli: Cli,
) -> None:
    f = loras["files"]["musubi"]
    a = _run(cli, tiny_model, tmp_path / "a", "--lora", f"{f}:0.5")
    b = _run(cli, tiny_model, tmp_path / "b", "--lora", f"{f}:0.8")
    assert len({_render_key(a), _render_key(b), _render_key(reference)}) == 3
    # on Tencent's fp8 weights the LoRA keeps its own precision: only the fp8 error remains
    c = _run(cli, original, tmp_path / "c", "--lora", f"{f}:0.5", "--fp8")
    assert 0 < _rel(_latents(c), _latents(a)) < 0.02
    weights = json.loads(Path(a["manifest"]).read_text())["render"]["sampling"]["weights"]
    assert weights["loras"][0]["name"] == f.name and weights["loras"][0]["scale"] == 0.5
    r = cli("run", PROMPT, "--model", small_model, "--workdir", tmp_path / "c", *SMALL_ARGS, "--lora", f)
    assert r.exit_code == 2 and "does not fit this DiT" in r.stderr and "transformer_blocks.0" in r.stderr
    junk = tmp_path / "junk.safetensors"
    save_file({"foo.bar": torch.zeros(2)}, str(junk))
    r = cli("run", PROMPT, "--model", tiny_model, "--workdir", tmp_path / "e", *SMALL_ARGS, "--lora", junk)
    assert r.exit_code == 2 and "not a LoRA" in r.stderr and "foo.bar" in r.stderr
    r = cli("run", PROMPT, "--model", tiny_model, "--workdir", tmp_path / "f", *SMALL_ARGS, "--lora", "nope.pt:2")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_pt_files_never_unpickle_objects(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """A .pt holding anything but tensors and containers is refused (weights_only=True), in one line."""
    import collections

    evil = tmp_path / "evil.pt"
    torch.save({"module": collections.OrderedDict(a=torch.zeros(1)), "args": Path("/etc/passwd")}, evil)
    r = cli("run", PROMPT, "--model", tiny_model, "--workdir", tmp_path / "w", *SMALL_ARGS, "--dit", evil)
    assert r.exit_code == 2 and "does not unpickle" in r.stderr and "evil.pt" in r.stderr
