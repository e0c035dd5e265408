"""Batches: prompt files, the embedding cache, resumable runs (real signals), item locks, provenance."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from render.files.artifacts import is_valid
from render.files.batch import read_prompt_file
from render.files.video import read_mp4
from tests.conftest import PENGUIN, SMALL_ARGS, Cli, hyv_cmd, hyv_proc

PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "A red circle moves to the right on a black background.",
    "Ein Hund läuft am Strand entlang, „Abendlicht“.",
    "Rain falls on a quiet street, cinematic lighting.",
]


def _batch(path: Path, steps: int = 4) -> Path:
    """8 items: 4 distinct prompts over 2 seeds."""
    lines = [json.dumps({"prompt": p, "seed": s, "steps": steps}) for s in (1, 2) for p in PROMPTS]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prompt_files(tmp_path: Path) -> None:
    txt = tmp_path / "p.txt"
    txt.write_text("# a comment\n\nfirst prompt\n  second prompt  \n")
    assert [i.prompt for i in read_prompt_file(txt).items] == ["first prompt", "second prompt"]
    assert read_prompt_file(txt).items[1].source.endswith("p.txt:4")

    jl = tmp_path / "p.jsonl"
    jl.write_text(
        '{"prompt": "ok", "seed": 3, "name": "x"}\n{bad json\n{"prompt": ""}\n{"prompt": "s", "seed": "7"}\n'
    )
    f = read_prompt_file(jl)
    assert [(i.prompt, dict(i.overrides), i.name) for i in f.items] == [("ok", {"seed": 3}, "x")]
    assert [e.source.rsplit(":", 1)[1] for e in f.errors] == ["2", "3", "4"]

    c = tmp_path / "p.csv"
    c.write_text('id,prompt\n1,"a, quoted ""comma"" prompt"\n2,\n3,"multi\nline"\n', encoding="utf-8")
    f = read_prompt_file(c)
    assert [i.prompt for i in f.items] == ['a, quoted "comma" prompt', "multi\nline"]
    assert f.errors[0].source.endswith("p.csv:3")


def test_penguin_csv_loads_600_prompts() -> None:
    if not PENGUIN.exists():
        pytest.skip("shared data not present")
    f = read_prompt_file(PENGUIN)
    assert len(f.items) == 600 and not f.errors
    text = " ".join(i.prompt for i in f.items)
    assert '"' in text and any(ord(ch) > 127 for ch in text)


def test_penguin_first_20_encode(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    if not PENGUIN.exists():
        pytest.skip("shared data not present")
    with open(PENGUIN, newline="", encoding="utf-8") as src:
        rows = list(csv.reader(src))[:21]
    sub = tmp_path / "penguin20.csv"
    with open(sub, "w", newline="", encoding="utf-8") as dst:
        csv.writer(dst).writerows(rows)
    r = cli(
        "encode",
        "--prompts",
        sub,
        "--model",
        tiny_model,
        "--frames",
        "9",
        "--json",
        "--workdir",
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["encodes"] == 20 and out["failed"] == 0
    assert all(is_valid(Path(e["path"]), "embeddings") for e in out["embeddings"])


def test_batch_cache_and_rerun(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    batch = _batch(tmp_path / "b.jsonl")
    args = [
        "run",
        "--prompts",
        batch,
        "--model",
        tiny_model,
        "--frames",
        "9",
        "--height",
        "32",
        "--width",
        "32",
    ]
    r = cli(*args, "--json", "--workdir", tmp_path / "w")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["encodes"], out["cache_hits"], out["made"]) == (4, 4, 8)
    assert sorted(v["seed"] for v in out["videos"]) == [1, 1, 1, 1, 2, 2, 2, 2]
    for v in out["videos"]:
        assert read_mp4(Path(v["video"]))[0].shape == (9, 32, 32, 3)

    again = cli(*args, "--workdir", tmp_path / "w")
    assert again.exit_code == 0
    assert "nothing to do: all 8 videos already exist" in again.stdout
    assert again.stdout.count("skipped ") == 8

    # Other seeds and sizes in another workdir: every embedding comes from the cache (no text encoder loaded).
    r = cli(
        *args[:-4],
        "--height",
        "16",
        "--width",
        "16",
        "--seed",
        "9",
        "--json",
        "--workdir",
        tmp_path / "o",
    )
    out = json.loads(r.stdout)
    assert (out["encodes"], out["cache_hits"]) == (0, 8)


def test_bad_line_reported_rest_runs(tiny_model: Path, tmp_path: Path) -> None:
    jl = tmp_path / "mixed.jsonl"
    jl.write_text('{"prompt": "a good prompt"}\nnot json at all\n{"prompt": "another", "frames": 10}\n')
    p = hyv_proc(
        "run", "--prompts", jl, "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", tmp_path / "w"
    )
    assert p.returncode == 3, p.stderr
    assert f"{jl}:2" in p.stderr
    out = json.loads(p.stdout)
    assert out["made"] == 1 and out["failed"] == 2
    assert "4k+1" in p.stderr and f"{jl}:3" in p.stderr


def _wait_for(pred, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _finals(lat: Path) -> list[Path]:
    """Final latents artifacts (not checkpoints, previews or temporary files)."""
    if not lat.is_dir():
        return []
    return [
        p
        for p in lat.iterdir()
        if p.name.endswith(".safetensors")
        and not any(m in p.name for m in (".ckpt", ".preview", ".partial-"))
    ]


def test_kill_9_during_render_then_rerun_completes(tiny_model: Path, tmp_path: Path) -> None:
    batch = _batch(tmp_path / "b.jsonl", steps=16)
    work = tmp_path / "w"
    cmd = hyv_cmd(
        "run",
        "--prompts",
        batch,
        "--model",
        tiny_model,
        *SMALL_ARGS[:-2],
        "--save-every",
        "5",
        "--json",
        "--workdir",
        work,
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    lat = work / "latents"
    _wait_for(lambda: bool(_finals(lat)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finals = _finals(lat)
    assert 1 <= len(finals) < 8, "the kill came after the render stage"
    for p in finals:  # whatever has a final name is whole
        assert is_valid(p, "latents")
    assert not (work / "videos").exists() or not list((work / "videos").glob("*.mp4"))

    p2 = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert p2.returncode == 0, p2.stderr
    out = json.loads(p2.stdout)
    assert len(out["videos"]) == 8 and all(v["status"] == "done" for v in out["videos"])
    assert sum(1 for v in out["videos"] if not v["rendered"]) == len(finals)  # finished renders were kept
    for v in out["videos"]:
        assert read_mp4(Path(v["video"]))[0].shape == (9, 32, 32, 3)
    assert not list(work.rglob("*.partial-*"))


def test_stop_at_then_resume_equals_uninterrupted(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("encode", PROMPTS[0], "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path)
    emb = json.loads(r.stdout)["embeddings"][0]["path"]
    base = [
        "render",
        emb,
        "--model",
        tiny_model,
        "--frames",
        "9",
        "--height",
        "32",
        "--width",
        "32",
        "--steps",
        "8",
    ]
    full = cli(*base, "--json", "--workdir", tmp_path / "full")
    ref = load_file(json.loads(full.stdout)["latents"][0]["path"])["latents"]

    part = cli(*base, "--stop-at", "3", "--json", "--workdir", tmp_path / "part")
    (row,) = json.loads(part.stdout)["latents"]
    assert row["status"] == "stopped" and row["step"] == 3 and row["path"] is None
    assert is_valid(Path(row["preview"]), "latents")  # a decodable preview of the x0 prediction
    dec = cli("decode", row["preview"], "--model", tiny_model, "--workdir", tmp_path / "part")
    assert dec.exit_code == 0, dec.output

    again = cli(*base, "--stop-at", "3", "--json", "--workdir", tmp_path / "part")
    assert json.loads(again.stdout)["latents"][0]["status"] == "stopped"  # nothing more to do up to step 3

    # the same command with --resume added continues past the stop point
    done = cli(*base, "--stop-at", "3", "--resume", "--json", "--workdir", tmp_path / "part")
    (row,) = json.loads(done.stdout)["latents"]
    assert row["status"] == "done"
    out = load_file(row["path"])["latents"]
    assert torch.equal(out, ref)
    assert not (Path(row["path"]).parent / ".checkpoints" / Path(row["path"]).name).exists()


def test_killed_render_continues_from_its_checkpoint(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """kill -9 mid-render with --save-every: the re-run continues from the checkpoint, to the same latents."""
    r = cli("encode", PROMPTS[1], "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path)
    emb = json.loads(r.stdout)["embeddings"][0]["path"]
    args = [
        "render",
        emb,
        "--model",
        str(tiny_model),
        "--frames",
        "9",
        "--height",
        "32",
        "--width",
        "32",
        "--steps",
        "100",
        "--save-every",
        "5",
        "--json",
    ]
    ref = cli(*args, "--workdir", tmp_path / "ref")
    ref_lat = load_file(json.loads(ref.stdout)["latents"][0]["path"])["latents"]
    work = tmp_path / "k"
    proc = subprocess.Popen(hyv_cmd(*args, "--workdir", work), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckdir = work / "latents" / ".checkpoints"
    _wait_for(
        lambda: (
            ckdir.is_dir()
            and any(p.suffix == ".safetensors" and not p.name.startswith(".") for p in ckdir.iterdir())
        )
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    p2 = hyv_proc(*args, "--workdir", work)
    assert p2.returncode == 0, p2.stderr
    assert "continuing from the checkpoint at step" in p2.stderr
    out = json.loads(p2.stdout)["latents"][0]
    assert torch.equal(load_file(out["path"])["latents"], ref_lat)


def test_render_prompts_file_per_item_settings(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    jl = tmp_path / "p.jsonl"
    jl.write_text(
        json.dumps({"prompt": "a [bold]cat[/]", "seed": 5, "num_videos": 2, "frames": 5})
        + "\n"
        + json.dumps({"prompt": "never encoded"})
        + "\n"
    )
    enc = cli("encode", "a [bold]cat[/]", "--model", tiny_model, "--frames", "5", "--workdir", tmp_path)
    assert enc.exit_code == 0
    r = cli("render", "--prompts", jl, "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", tmp_path)
    assert r.exit_code == 3  # one line was not encoded; the other rendered
    rows = json.loads(r.stdout)["latents"]
    assert [(x["seed"], x["status"]) for x in rows] == [(5, "done"), (6, "done"), (42, "failed")]
    assert load_file(rows[0]["path"])["latents"].shape[2] == 2  # 5 frames -> 2 latent frames
    assert f"{jl}:2" in r.stderr and "not encoded yet" in r.stderr


def test_two_processes_split_the_batch(tiny_model: Path, tmp_path: Path) -> None:
    batch = _batch(tmp_path / "b.jsonl", steps=12)
    cmd = hyv_cmd(
        "run",
        "--prompts",
        batch,
        "--model",
        tiny_model,
        *SMALL_ARGS[:-2],
        "--json",
        "--workdir",
        tmp_path / "w",
    )
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    for i in range(8):
        rendered = [o["videos"][i]["rendered"] for o in outs]
        assert sum(rendered) == 1, f"video {i} rendered {sum(rendered)} times"
        assert outs[0]["videos"][i]["video"] == outs[1]["videos"][i]["video"]
        assert read_mp4(Path(outs[0]["videos"][i]["video"]))[0].shape == (9, 32, 32, 3)


def test_cache_commands(tiny_model: Path, tmp_path: Path, cli: Cli, _private_cache: Path) -> None:
    cli("encode", *PROMPTS[:3], "--model", tiny_model, "--frames", "9", "--workdir", tmp_path)
    ls = json.loads(cli("cache", "ls", "--json").stdout)
    assert len(ls["entries"]) == 3 and ls["root"] == str(_private_cache)
    info = json.loads(cli("cache", "info", PROMPTS[1], "--json").stdout)
    (entry,) = info["entries"]
    m = entry["manifest"]
    assert m["prompt"] == PROMPTS[1] and m["template"]["crop_start"] > 0 and m["skip_layers"] == 2
    assert cli("cache", "info", entry["key"][:12], "--json").exit_code == 0
    assert cli("cache", "info", "no such thing").exit_code == 2

    old = time.time() - 40 * 86400
    os.utime(entry["path"], (old, old))
    pr = json.loads(cli("cache", "prune", "--older-than", "30d", "--json").stdout)
    assert pr["removed"] == [entry["key"]]
    pr = json.loads(cli("cache", "prune", "--max-size", "0", "--json").stdout)
    assert len(pr["removed"]) == 2
    assert cli("cache", "prune", "--max-size", "lots").exit_code == 2


def test_cache_key_changes_with_weights(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from render.core.settings import EncodeSettings
    from render.engine import Engine

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    enc = EncodeSettings()
    a = Engine(copy).encode_stage()
    key_a = a.key("x", a.template(9), enc)
    w = copy / "text_encoder" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # one weight byte changed
    w.write_bytes(bytes(data))
    b = Engine(copy).encode_stage()
    assert b.key("x", b.template(9), enc) != key_a
    assert b.key("x", b.template(1), enc) != b.key("x", b.template(9), enc)
    assert b.key("x", b.template(9), EncodeSettings(text_len=64)) != b.key("x", b.template(9), enc)


def test_inspect_provenance(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    r = cli("run", PROMPTS[0], "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir", tmp_path)
    v = json.loads(r.stdout)["videos"][0]
    out = json.loads(cli("inspect", v["embeddings"], v["latents"], v["video"], "--json").stdout)
    assert [a["kind"] for a in out["artifacts"]] == ["embeddings", "latents", "video"]
    for a, stage in zip(out["artifacts"], ("encode", "render", "decode"), strict=True):
        m = a["manifest"]
        assert m["stage"] == stage
        assert {"torch", "diffusers", "transformers", "hyv"} <= set(m["versions"])
        assert m["wall_seconds"] >= 0 and m["peak_rss_bytes"] > 0 and "device" in m
    lat = out["artifacts"][1]["manifest"]
    assert lat["inputs"][0]["sha256"].startswith("sha256:") and lat["seed"] == 42
    assert lat["sampling"]["steps"] == 4 and lat["model"]["identity"].startswith("w1-")
    table = cli("inspect", v["video"])
    assert table.exit_code == 0 and "decode" in table.stdout
