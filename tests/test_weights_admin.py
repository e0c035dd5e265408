"""Weight files that are broken are found before any stage runs, in one line naming the file; `hyv models check`,
`prepare-text-encoder` and `download` on real files (download only offline: no hub here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SMALL_ARGS, Cli, hyv_proc
from tests.weight_formats import write_original_layout

PROMPT = "A cat walks on the grass, realistic style."


def _one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_truncated_or_mismatched_weights_fail_before_encoding(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    vae = broken / "vae" / "diffusion_pytorch_model.safetensors"
    vae.write_bytes(vae.read_bytes()[:-1000])
    wd = tmp_path / "w"
    r = cli("run", PROMPT, "--model", broken, "--workdir", wd, *SMALL_ARGS)
    line = _one_line(r.stderr)
    assert r.exit_code == 2 and "truncated" in line and str(vae) in line
    assert not (wd / "embeddings").exists()  # nothing was encoded
    r = cli("models", "check", broken)
    assert r.exit_code == 2 and "vae" in r.stdout and "corrupt" in r.stdout

    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny_model, mismatched)
    cfg_path = mismatched / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["text_embed_dim"] = 32
    cfg_path.write_text(json.dumps(cfg))
    r = cli("run", PROMPT, "--model", mismatched, "--workdir", wd, *SMALL_ARGS)
    line = _one_line(r.stderr)
    assert r.exit_code == 2 and "do not fit the config" in line and "diffusion_pytorch_model.safetensors" in line


def test_original_layout_checks(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    root = write_original_layout(tiny_model, tmp_path / "ckpts")
    r = cli("models", "check", tmp_path, "--json")  # the folder holding ckpts/ works too
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["layout"] == "original" and info["ok"] and info["layers"] == [1, 1]
    assert {c["name"]: c["state"] for c in info["components"]} == dict.fromkeys(
        ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer", "scheduler", "vae"), "ok"
    )
    vae = root / "hunyuan-video-t2v-720p" / "vae" / "pytorch_model.pt"
    vae.write_bytes(vae.read_bytes()[: vae.stat().st_size // 2])
    r = cli("run", PROMPT, "--model", root, "--workdir", tmp_path / "w", *SMALL_ARGS)
    assert r.exit_code == 2 and "pytorch_model.pt" in _one_line(r.stderr)
    assert not (tmp_path / "w" / "embeddings").exists()


def test_check_of_the_real_configs_lists_missing_weights(tmp_path: Path, cli: Cli) -> None:
    from tests.real_configs import write_real_configs

    write_real_configs(tmp_path / "real")
    r = cli("models", "check", tmp_path / "real", "--json")
    assert r.exit_code == 2
    states = {c["name"]: c["state"] for c in json.loads(r.stdout)["components"]}
    assert states["transformer"] == "missing" and states["scheduler"] == "ok"


def test_check_of_the_full_size_13b_layout_takes_seconds(tmp_path: Path, cli: Cli) -> None:
    """The real 13B layout (sparse files: headers of every tensor, full sizes) is checked from headers and shapes
    in seconds; a file cut by 1 KB is found."""
    import time

    from tests.real_configs import write_real_configs, write_sparse_weights

    real = write_real_configs(tmp_path / "real")
    if not write_sparse_weights(real):
        pytest.skip("this file system does not make sparse files")
    t0 = time.perf_counter()
    p = hyv_proc("models", "check", real)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    assert "transformer     ok, 25.64 GB" in p.stdout and "text_encoder    ok, 15.01 GB" in p.stdout
    assert took < 60  # measured 9 s (4 s CPU) on 2 shared cores, imports included
    dit = real / "transformer" / "diffusion_pytorch_model.safetensors"
    os.truncate(dit, dit.stat().st_size - 1024)
    r = cli("run", "a cat", "--model", real, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and str(dit) in _one_line(r.stderr) and "truncated" in r.stderr


def test_download_offline_is_one_line(tmp_path: Path) -> None:
    p = hyv_proc("models", "download", tmp_path / "m", "--yes", env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2 and "hunyuanvideo-community/HunyuanVideo" in _one_line(p.stderr)
    p = hyv_proc("models", "download", tmp_path / "m", "--fp8", env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2 and "--layout original --fp8" in _one_line(p.stderr)
    p = hyv_proc("models", "download", tmp_path / "m", "--layout", "original", "--fp8", env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2 and "tencent/HunyuanVideo" in _one_line(p.stderr)


# ---------------------------------------------------------------------------------------------- LLaVA


def _tiny_llava(src: Path, tokenizer_dir: Path, hidden: int, layers: int, vocab: int, shard: str) -> dict:
    """A LLaVA checkpoint as xtuner/llava-llama-3-8b-v1_1-transformers holds it (transformers < 4.52 names:
    language_model.model.*, language_model.lm_head, vision_tower.*, multi_modal_projector.*), sharded."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlavaConfig

    from render.model.shards import write_shards

    text = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(text)
    tensors = {f"language_model.{k}": v for k, v in lm.state_dict().items()}
    tensors["vision_tower.vision_model.embeddings.patch_embedding.weight"] = torch.randn(32, 3, 14, 14)
    tensors["multi_modal_projector.linear_1.weight"] = torch.randn(hidden, 32)
    src.mkdir()
    write_shards(tensors.items(), src, "model", shard)
    cfg = LlavaConfig(text_config=text.to_dict(), vision_config=vision.to_dict()).to_dict()
    (src / "config.json").write_text(json.dumps(cfg))
    for f in tokenizer_dir.iterdir():
        shutil.copy2(f, src / f.name)
    return {k.removeprefix("model."): v for k, v in lm.model.state_dict().items()}


def test_prepare_text_encoder_streams_the_language_model(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    src, dst = tmp_path / "llava", tmp_path / "text_encoder"
    want = _tiny_llava(src, tiny_model / "tokenizer", hidden=384, layers=8, vocab=12000, shard="8MB")
    assert len(list(src.glob("model-*.safetensors"))) >= 8
    r = cli("models", "prepare-text-encoder", src, dst, "--max-shard-size", "6MB")
    assert r.exit_code == 0, r.stderr
    from transformers import AutoTokenizer, LlamaModel

    got = LlamaModel.from_pretrained(dst).state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k].half().float()) for k in want)  # fp16 like upstream, exactly
    assert AutoTokenizer.from_pretrained(dst)("a cat")["input_ids"]
    # peak memory: one shard at a time, not the model (measured in a fresh process, imports done first)
    total = sum(f.stat().st_size for f in src.glob("*.safetensors"))
    script = (
        "import sys; from pathlib import Path; from render.files.manifest import StageMeter; "
        "from render.families.hunyuan_video.admin import prepare_text_encoder; import safetensors.torch; "
        "from transformers import AutoTokenizer, LlamaConfig; "  # code is not what is measured
        "m = StageMeter.start(); "
        "prepare_text_encoder(Path(sys.argv[1]), Path(sys.argv[2]), max_shard_size='6MB'); "
        "print(m.record()['peak_rss_delta_bytes'])"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "again")],
        capture_output=True, text=True, cwd=REPO, env={**os.environ}, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    peak = int(p.stdout.strip().splitlines()[-1])
    assert peak < 0.6 * total, (peak, total)
    r = cli("models", "prepare-text-encoder", tiny_model, tmp_path / "x")
    assert r.exit_code == 2 and "LLaVA" in r.stderr


@pytest.mark.parametrize("spec", ["missing.safetensors", "missing.safetensors:0.5"])
def test_lora_spec_parsing(spec: str, tmp_path: Path) -> None:
    from render.core.errors import UsageError
    from render.model.variant import LoraSpec

    with pytest.raises(UsageError):
        LoraSpec.parse(str(tmp_path / spec))
    f = tmp_path / "x:y.safetensors"
    f.write_bytes(b"")
    assert LoraSpec.parse(f"{f}:0.25") == LoraSpec(f.resolve(), 0.25)
    assert LoraSpec.parse(str(f)) == LoraSpec(f.resolve(), 1.0)
