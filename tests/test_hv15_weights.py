"""HunyuanVideo 1.5's DiT in its weight variants: a LoRA in diffusers' names and one in Tencent's equal the merged
weights (the oracle: diffusers' class with W += scale * B @ A); fp8 storage runs; a GGUF file is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import Cli
from tests.hv15_models import write


@pytest.fixture(scope="module")
def hv15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("models") / "hv15", "t2v")


def _forward(dit: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = dit.config
    kw = {
        "timestep": torch.tensor([500.0]),
        "encoder_hidden_states": torch.randn(1, 5, c.text_embed_dim, generator=g),
        "encoder_attention_mask": torch.ones(1, 5),
        "encoder_hidden_states_2": torch.randn(1, 3, c.text_embed_2_dim, generator=g),
        "encoder_attention_mask_2": torch.ones(1, 3),
        "image_embeds": torch.zeros(1, 0, c.image_embed_dim),
    }
    with torch.no_grad():
        return dit(hidden_states=torch.randn(1, c.in_channels, 2, 4, 6, generator=g), **kw, return_dict=False)[0]


def test_loras_in_diffusers_and_tencents_names_equal_the_merged_weights(hv15: Path, tmp_path: Path) -> None:
    from diffusers import HunyuanVideo15Transformer3DModel

    from render.core.settings import Placement
    from render.families import family_of, resolve_model
    from render.model.loading import load_transformer
    from render.model.variant import DiTVariant, LoraSpec

    model = resolve_model(hv15)
    family = family_of(model)
    assert family.module_map is not None
    sd = load_file(str(hv15 / "transformer" / "diffusion_pytorch_model.safetensors"))
    hidden = int(sd["x_embedder.proj.weight"].shape[0])
    g = torch.Generator().manual_seed(1)
    diffusers_lora, tencent_lora, merged = {}, {}, dict(sd)
    for original in family.module_map.linear_modules(family.config(model, "transformer")):
        (target,) = family.module_map.map_module(original, hidden) or []
        out_f, in_f = sd[f"{target.name}.weight"].shape
        a, b = torch.randn(2, in_f, generator=g) * 0.3, torch.randn(out_f, 2, generator=g) * 0.3
        names = ((diffusers_lora, f"transformer.{target.name}"), (tencent_lora, f"diffusion_model.{original}"))
        for lora, prefix in names:
            lora |= {f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b}
        merged[f"{target.name}.weight"] = sd[f"{target.name}.weight"] + 0.7 * b @ a
    oracle = HunyuanVideo15Transformer3DModel.from_pretrained(hv15 / "transformer")
    base = _forward(oracle)
    oracle.load_state_dict(merged)
    want = _forward(oracle)
    assert float((base - want).abs().max() / want.abs().max()) > 0.05  # the LoRA changes the output
    for name, lora in (("diffusers", diffusers_lora), ("tencent", tencent_lora)):
        path = tmp_path / f"{name}.safetensors"
        save_file(lora, str(path))
        variant = DiTVariant(loras=(LoraSpec(path, 0.7),))
        got = _forward(load_transformer(model, family, Placement(device="cpu"), variant).module)
        assert float((got - want).abs().max() / want.abs().max()) < 1e-5, name


def test_fp8_storage_runs_and_gguf_is_one_line(hv15: Path, tmp_path: Path, cli: Cli) -> None:
    size = ["--frames", "5", "--height", "32", "--width", "48", "--steps", "2"]
    r = cli("run", "a cat", "--model", hv15, *size, "--workdir", tmp_path / "fp8", "--fp8", "-q")
    assert r.exit_code == 0, r.output
    fake = tmp_path / "dit.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    r = cli("run", "a cat", "--model", hv15, *size, "--workdir", tmp_path / "g", "--dit", fake)
    assert r.exit_code == 2 and "GGUF" in r.stderr and r.stderr.count("\n") == 1, r.output
    assert not any((tmp_path / "g").rglob("*.safetensors"))  # refused before any stage ran
