"""The real CLI end to end on a tiny model: the stages, their JSON output, help, and bad inputs (one line, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from render.files.video import read_mp4
from tests.conftest import SMALL_ARGS, Cli, hyv_proc

PROMPT = "A cat walks on the grass, realistic style."


def test_help_is_light_and_lists_commands() -> None:
    """`hyv --help` imports neither torch nor diffusers (that is what keeps it under half a second)."""
    code = (
        "import sys; from hunyuan_cli.app import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); print(r.output); "
        "print('HEAVY' if {'torch', 'diffusers', 'transformers'} & set(sys.modules) else 'LIGHT')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for cmd in ("encode", "render", "decode", "run", "models", "rewrite", "cache", "inspect"):
        assert cmd in out
    assert out.strip().endswith("LIGHT")


def test_run_json_and_mp4(tiny_model: Path, tmp_path: Path) -> None:
    """`hyv run --json` as a subprocess: exactly one JSON object naming an mp4 of the asked shape and fps."""
    p = hyv_proc(
        "run",
        PROMPT,
        "--model",
        tiny_model,
        *SMALL_ARGS,
        "--seed",
        "42",
        "--json",
        "--workdir",
        tmp_path / "w",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # exactly one JSON object on stdout
    (v,) = out["videos"]
    assert v["status"] == "done" and v["seed"] == 42
    for k in ("embeddings", "latents", "video"):
        assert Path(v[k]).exists()
    frames, fps = read_mp4(Path(v["video"]))
    assert frames.shape == (9, 32, 32, 3) and fps == 24
    assert Path(v["video"] + ".json").is_file()
    lat = load_file(v["latents"])["latents"]
    assert lat.shape == (1, 4, 3, 4, 4)


def test_stages_one_by_one_equal_run(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", a)
    assert r.exit_code == 0, r.output
    whole = json.loads(r.stdout)["videos"][0]

    r = cli("encode", PROMPT, "--model", tiny_model, "--frames", "9", "--json", "--workdir", b)
    assert r.exit_code == 0, r.output
    (e,) = json.loads(r.stdout)["embeddings"]
    r = cli("render", e["path"], "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", b)
    assert r.exit_code == 0, r.output
    (lat,) = json.loads(r.stdout)["latents"]
    r = cli("decode", lat["path"], "--model", tiny_model, "--json", "--workdir", b)
    assert r.exit_code == 0, r.output
    (vid,) = json.loads(r.stdout)["videos"]

    assert torch.equal(load_file(whole["latents"])["latents"], load_file(lat["path"])["latents"])
    assert Path(whole["video"]).read_bytes() == Path(vid["path"]).read_bytes()
    assert (
        Path(whole["latents"]).name == Path(lat["path"]).name
    )  # names are content keys: the same work, same name


def test_png_format_and_fps(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli(
        "run",
        PROMPT,
        "--model",
        tiny_model,
        *SMALL_ARGS,
        "--format",
        "png",
        "--json",
        "--workdir",
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    folder = Path(json.loads(r.stdout)["videos"][0]["video"])
    assert sorted(p.name for p in folder.iterdir())[:2] == ["00000.png", "00001.png"]
    assert len(list(folder.glob("*.png"))) == 9


def test_num_videos_use_seed_plus_i(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli(
        "run",
        PROMPT,
        "--model",
        tiny_model,
        *SMALL_ARGS,
        "--seed",
        "7",
        "--num-videos",
        "2",
        "--json",
        "--workdir",
        tmp_path / "two",
    )
    assert r.exit_code == 0, r.output
    vids = json.loads(r.stdout)["videos"]
    assert [v["seed"] for v in vids] == [7, 8]
    r = cli(
        "run",
        PROMPT,
        "--model",
        tiny_model,
        *SMALL_ARGS,
        "--seed",
        "8",
        "--json",
        "--workdir",
        tmp_path / "one",
    )
    single = json.loads(r.stdout)["videos"][0]
    assert torch.equal(load_file(vids[1]["latents"])["latents"], load_file(single["latents"])["latents"])


def test_safe_unique_file_names(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    nasty = ["a/b\\c: d?*<>| " + "x" * 300, "a/b\\c: d?*<>| " + "x" * 300 + " different"]
    r = cli("encode", *nasty, "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path)
    assert r.exit_code == 0, r.output
    paths = [Path(e["path"]) for e in json.loads(r.stdout)["embeddings"]]
    assert len(set(paths)) == 2
    for p in paths:
        assert p.parent == tmp_path / "embeddings"
        assert ":" not in p.name and "\\" not in p.name and len(p.name) <= 100


def _err(result) -> str:
    """The one error line (progress lines for a log may come before it)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("hyv: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--frames", "10", "--height", "32", "--width", "32"], "4k+1"),
        (["--frames", "9", "--height", "30", "--width", "32"], "multiple of 16"),
        (["--frames", "9", "--height", "32", "--width", "40", "--size", "720p"], "not both"),
        (["--frames", "9", "--size", "480p"], "unknown size"),
        (["--frames", "9", "--height", "32", "--width", "32", "--steps", "0"], "steps"),
    ],
)
def test_bad_settings_exit_2(
    tiny_model: Path, tmp_path: Path, cli: Cli, args: list[str], needle: str
) -> None:
    r = cli("run", PROMPT, "--model", tiny_model, *args, "--workdir", tmp_path)
    assert r.exit_code == 2
    assert needle in _err(r)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.safetensors"))


def test_empty_prompt(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("run", "   ", "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path)
    assert r.exit_code == 2 and "empty prompt" in _err(r)
    r = cli("encode", "--model", tiny_model, "--workdir", tmp_path)
    assert r.exit_code == 2 and "no prompt" in _err(r)


def test_missing_and_incomplete_model(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("run", PROMPT, "--model", tmp_path / "nope", *SMALL_ARGS, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and "does not exist" in _err(r)
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    shutil.rmtree(broken / "vae")
    r = cli("run", PROMPT, "--model", broken, *SMALL_ARGS, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and "missing vae" in _err(r)
    (broken / "model_index.json").unlink()
    r = cli("run", PROMPT, "--model", broken, *SMALL_ARGS, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and "model_index.json" in _err(r)


def test_hub_id_offline_is_one_clear_line(tmp_path: Path) -> None:
    p = hyv_proc(
        "encode",
        PROMPT,
        "--model",
        "hunyuanvideo-community/HunyuanVideo",
        "--workdir",
        tmp_path,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert p.returncode == 2
    line = _err(p)
    assert "hunyuanvideo-community/HunyuanVideo" in line and "--model DIR" in line


def test_artifacts_not_ours_or_truncated(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    r = cli(
        "encode",
        PROMPT,
        "--model",
        tiny_model,
        "--frames",
        "9",
        "--json",
        "--workdir",
        tmp_path / "w",
    )
    emb = Path(json.loads(r.stdout)["embeddings"][0]["path"])
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(emb.read_bytes()[:-100])
    for bad, needle in ((foreign, "not a hyv artifact"), (text, "not a readable"), (truncated, "truncated")):
        r = cli("render", bad, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path / "w")
        assert r.exit_code == 2, r.output
        assert needle in _err(r)
    r = cli("decode", emb, "--model", tiny_model, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and "not latents" in _err(r)
    assert not (tmp_path / "w" / "latents").exists() or not any((tmp_path / "w" / "latents").iterdir())


def test_encoder_dim_mismatch(tiny_model: Path, small_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("encode", PROMPT, "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path)
    emb = json.loads(r.stdout)["embeddings"][0]["path"]
    r = cli("render", emb, "--model", small_model, *SMALL_ARGS, "--workdir", tmp_path)
    assert r.exit_code == 2
    assert "text dim 16" in _err(r) and "re-encode" in r.stderr


def test_template_frames_mismatch(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("encode", PROMPT, "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path)
    emb = json.loads(r.stdout)["embeddings"][0]["path"]
    r = cli(
        "render",
        emb,
        "--model",
        tiny_model,
        "--frames",
        "1",
        "--height",
        "32",
        "--width",
        "32",
        "--workdir",
        tmp_path,
    )
    assert r.exit_code == 2 and "--frames 1" in _err(r)


def test_nan_latents_fail_decode_without_output(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", tmp_path)
    lat_path = Path(json.loads(r.stdout)["videos"][0]["latents"])
    from render.files.artifacts import read_artifact, write_artifact

    art = read_artifact(lat_path, "latents")
    bad = tmp_path / "nan.safetensors"
    t = art.tensors["latents"].clone()
    t[0, 0, 0, 0, 0] = float("nan")
    write_artifact(bad, "latents", {"latents": t}, art.manifest)
    r = cli("decode", bad, "--model", tiny_model, "--workdir", tmp_path / "out")
    assert r.exit_code == 1
    assert "NaN" in _err(r)
    assert not (tmp_path / "out" / "videos").exists() or not any((tmp_path / "out" / "videos").iterdir())


def test_debug_shows_traceback(tmp_path: Path) -> None:
    p = hyv_proc("--debug", "run", PROMPT, "--model", tmp_path / "nope", "--workdir", tmp_path)
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_init_tiny_refuses_non_empty_dir(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    r = cli("models", "init-tiny", tmp_path / "x")
    assert r.exit_code == 2 and "--force" in _err(r)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_model_defaults_from_hyv_json(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """A model's hyv.json sets defaults (the bundled demo model needs small ones); flags still win."""
    import shutil

    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    (m / "hyv.json").write_text(
        json.dumps({"defaults": {"frames": 5, "height": 16, "width": 32, "steps": 2, "fps": 8}})
    )
    r = cli("run", PROMPT, "--model", m, "--json", "--workdir", tmp_path / "a")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)["videos"][0]
    frames, fps = read_mp4(Path(v["video"]))
    assert frames.shape == (5, 16, 32, 3) and fps == 8
    r = cli("run", PROMPT, "--model", m, "--frames", "9", "--json", "--workdir", tmp_path / "b")
    assert read_mp4(Path(json.loads(r.stdout)["videos"][0]["video"]))[0].shape == (9, 16, 32, 3)
