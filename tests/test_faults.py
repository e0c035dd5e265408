"""Faults a user meets, by class, each fixed at its root: no wrong output ever, bad input found before any work
with the right exit code, environment faults in one line. The real CLI (in-process or as a subprocess) on a
tiny model, real files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from render.files.artifacts import read_artifact, write_artifact
from render.files.video import read_mp4
from tests.conftest import SMALL_ARGS, Cli, hyv_cmd, hyv_proc

PROMPT = "A cat walks on the grass, realistic style."
OTHER = "Rain falls on a quiet street."


def _run(cli: Cli, model: Path, work: Path, *extra: str | Path) -> dict:
    r = cli("run", PROMPT, "--model", model, *SMALL_ARGS, "--json", "--workdir", work, *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["videos"][0]


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("hyv: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _read_only_dir(tmp_path: Path) -> Path:
    """A directory this process cannot write to (root ignores modes: /sys refuses even root)."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    return d


# ------------------------------------------------------------------------------ no wrong output, silently


def test_a_damaged_video_is_made_again(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    v = _run(cli, tiny_model, tmp_path)
    video = Path(v["video"])
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # truncated after it was written
    again = _run(cli, tiny_model, tmp_path)
    assert again["status"] == "done" and not again["rendered"]  # decoded again, from the kept latents
    assert read_mp4(video)[0].shape == (9, 32, 32, 3)
    assert _run(cli, tiny_model, tmp_path)["status"] == "skipped"  # and now it is whole


def test_no_video_without_its_manifest(
    tiny_model: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up as the manifest is written: the video must not stand under its final name."""
    import render.stages.decode

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(render.stages.decode, "write_text_atomic", full)
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path)
    assert r.exit_code == 1 and "No space left" in _error_line(r.stderr)
    assert not list((tmp_path / "videos").iterdir())  # neither the mp4 nor a temporary file


def test_a_cache_entry_holding_another_prompt_is_recomputed(
    tiny_model: Path, tmp_path: Path, cli: Cli, _private_cache: Path
) -> None:
    r = cli(
        "encode", PROMPT, OTHER, "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path / "a"
    )
    mine, other = (json.loads(r.stdout)["embeddings"][i] for i in (0, 1))
    entries = _private_cache / "embeddings"
    shutil.copy(entries / f"{other['key']}.safetensors", entries / f"{mine['key']}.safetensors")
    r = cli("encode", PROMPT, "--model", tiny_model, "--frames", "9", "--json", "--workdir", tmp_path / "b")
    assert r.exit_code == 0
    assert r.stderr.count("holds embeddings of another prompt") == 1
    (row,) = json.loads(r.stdout)["embeddings"]
    assert row["status"] == "done" and not row["cached"]  # encoded again, not taken from the bad entry
    assert read_artifact(Path(row["path"]), "embeddings").manifest["prompt"] == PROMPT
    fresh, first = load_file(row["path"]), load_file(mine["path"])
    assert all((fresh[k] == first[k]).all() for k in first)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--cfg-scale", "nan"), ("--guidance", "inf"), ("--shift", "nan"), ("--guidance", "-inf")],
)
def test_non_finite_numbers_are_refused_up_front(
    tiny_model: Path, tmp_path: Path, flag: str, value: str
) -> None:
    p = hyv_proc("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, flag, value, "--workdir", tmp_path)
    assert p.returncode == 2 and "finite" in _error_line(p.stderr)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.safetensors"))


# ------------------------------------------------------------------------------ found early, right exit code


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--frames", "100001", "--height", "4096", "--width", "4096"], "GB"),
        (["--num-videos", "1000000"], "num-videos"),
    ],
)
def test_impossible_work_is_refused_before_anything_loads(
    tiny_model: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    t0 = time.perf_counter()
    p = hyv_proc("run", PROMPT, "--model", tiny_model, *args, "--steps", "2", "--workdir", tmp_path)
    assert p.returncode == 2 and needle in _error_line(p.stderr)
    assert not any(tmp_path.rglob("*.safetensors")) and time.perf_counter() - t0 < 60


def test_a_long_batch_says_how_long_as_it_starts(tiny_model: Path, tmp_path: Path) -> None:
    """In a log (stderr not a terminal): a line per stage, per item, steps every ~10%, and an estimate."""
    p = hyv_proc(
        "run", PROMPT, OTHER, "--model", tiny_model, *SMALL_ARGS[:-2], "--steps", "20", "--workdir", tmp_path
    )
    assert p.returncode == 0, p.stderr
    err = p.stderr
    for stage in ("encode: 2 item(s)", "render: 2 item(s)", "decode: 2 item(s)", "render 2/2 done"):
        assert stage in err
    assert "step 2/20 of item 1/2 (5% of the batch)" in err and "step 20/20 of item 2/2 (100% of the batch)" in err
    assert "render: 2 item(s) x 20 steps at" in err and "to go" in err and "0:00 to go" not in err


def test_log_lines_are_flushed_as_they_happen(tiny_model: Path, tmp_path: Path) -> None:
    import subprocess

    cmd = hyv_cmd(
        "run", PROMPT, "--model", tiny_model, *SMALL_ARGS[:-2], "--steps", "400", "--workdir", tmp_path
    )
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "step 40/400" in line:
                assert proc.poll() is None, "the step line came only at the end"
                break
        else:
            raise AssertionError("no step line")
    finally:
        proc.kill()
        proc.wait()


def test_workdir_faults_are_one_line_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for workdir, needle in ((a_file, "not a directory"), (a_file / "sub", "not a directory"),
                            (_read_only_dir(tmp_path) / "out", "not writable")):  # fmt: skip
        p = hyv_proc("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--workdir", workdir)
        assert p.returncode == 2, p.stderr
        line = _error_line(p.stderr)
        assert needle in line and "--workdir" in line
        assert "encode:" not in p.stderr  # nothing started


def test_an_unusable_cache_is_a_warning_and_the_run_goes_on(tiny_model: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    for cache in (a_file, _read_only_dir(tmp_path) / "cache"):
        p = hyv_proc(
            "run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path / "w", "--json",
            env={"HYV_CACHE_DIR": str(cache)},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "the embedding cache is not usable" in p.stderr and "running without it" in p.stderr
        assert json.loads(p.stdout)["videos"][0]["status"] in ("done", "skipped")


def test_json_of_the_wrong_shape_is_not_a_hyv_artifact(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    v = _run(cli, tiny_model, tmp_path / "w")
    lat = read_artifact(Path(v["latents"]), "latents")
    emb = read_artifact(Path(v["embeddings"]), "embeddings")
    for shape in ([1, 2], "a string", 3):
        bad_lat, bad_emb = tmp_path / "lat.safetensors", tmp_path / "emb.safetensors"
        write_artifact(bad_lat, "latents", lat.tensors, {})
        write_artifact(bad_emb, "embeddings", emb.tensors, {})
        for f in (bad_lat, bad_emb):  # the manifest replaced by valid JSON that is not an object
            _rewrite_manifest(f, shape)
        where = ("--model", tiny_model, "--workdir", tmp_path / "x")
        for args in (
            ("decode", bad_lat, *where),
            ("render", bad_emb, *SMALL_ARGS, *where),
            ("inspect", bad_lat),
        ):
            r = cli(*args)
            assert r.exit_code == 2, (args, r.output)
            assert "not a hyv artifact" in _error_line(r.stderr)
    side = Path(v["video"] + ".json")
    side.write_text("[1, 2, 3]")
    r = cli("inspect", v["video"])
    assert r.exit_code == 2 and "not a hyv video manifest" in _error_line(r.stderr)


def _rewrite_manifest(path: Path, value: object) -> None:
    """Keep the tensors and hyv's metadata keys; put `value` (JSON) where the manifest object goes."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    meta["manifest"] = json.dumps(value)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("args", [["run", "x", "--steps", "abc"], ["run", "--bogus"], ["decode"], ["nope"]])
def test_a_usage_error_is_one_line(args: list[str]) -> None:
    p = hyv_proc(*args)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("hyv: error:"), p.stderr


# ------------------------------------------------------------------------------ outputs


def test_output_path_random_seed_and_preview_summary(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "mine" / "cat.mp4"
    (tmp_path / "mine").mkdir()
    r = cli(
        "run",
        PROMPT,
        "--model",
        tiny_model,
        *SMALL_ARGS,
        "-o",
        out,
        "--seed",
        "random",
        "--workdir",
        tmp_path,
    )
    assert r.exit_code == 0, r.output
    assert read_mp4(out)[0].shape == (9, 32, 32, 3) and out.with_name("cat.mp4.json").is_file()
    seed = int(r.stderr.split("seed: ")[1].split()[0])
    assert json.loads(out.with_name("cat.mp4.json").read_text())["seed"] == seed
    assert str(out) in r.stdout

    lat = next((tmp_path / "latents").glob("*.safetensors"))
    r = cli("decode", lat, "--model", tiny_model, "-o", tmp_path / "again.mp4", "--workdir", tmp_path)
    assert r.exit_code == 0 and (tmp_path / "again.mp4").is_file()
    r = cli("run", PROMPT, OTHER, "--model", tiny_model, *SMALL_ARGS, "-o", tmp_path / "two.mp4")
    assert r.exit_code == 2 and "one video" in _error_line(r.stderr)
    r = cli(
        "run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "-o", tmp_path / "x.avi", "--workdir", tmp_path
    )
    assert r.exit_code == 2 and ".mp4" in _error_line(r.stderr)

    r = cli("run", OTHER, "--model", tiny_model, *SMALL_ARGS, "--stop-at", "2", "--workdir", tmp_path / "p")
    assert r.exit_code == 0, r.output
    assert "stopped at step 2" in r.stdout and "0 made" not in r.stdout and "preview" in r.stdout


def test_quiet_prints_only_paths_for_scripts(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    emb = cli(
        "encode", PROMPT, "--model", tiny_model, "--frames", "9", "-q", "--workdir", tmp_path
    ).stdout.strip()
    lat = cli("render", emb, "--model", tiny_model, *SMALL_ARGS, "-q", "--workdir", tmp_path).stdout.strip()
    video = cli("decode", lat, "--model", tiny_model, "-q", "--workdir", tmp_path).stdout.strip()
    assert Path(emb).is_file() and Path(lat).is_file() and read_mp4(Path(video))[0].shape == (9, 32, 32, 3)
    r = cli("inspect", emb, lat, video, "--json")
    assert [a["kind"] for a in json.loads(r.stdout)["artifacts"]] == ["embeddings", "latents", "video"]


def test_a_no_op_rerun_imports_neither_torch_nor_diffusers(
    tiny_model: Path, tmp_path: Path, cli: Cli
) -> None:
    _run(cli, tiny_model, tmp_path)
    p = hyv_proc("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path,
                 env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert p.returncode == 0 and "nothing to do" in p.stdout
    imported = {
        ln.rsplit("|", 1)[-1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")
    }
    assert imported and not imported & {"torch", "diffusers", "transformers", "safetensors.torch"}


def test_files_modes_locks_and_leftovers(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    old = os.umask(0o022)
    try:
        v = _run(cli, tiny_model, tmp_path)
    finally:
        os.umask(old)
    for key in ("embeddings", "latents", "video"):
        assert stat.S_IMODE(Path(v[key]).stat().st_mode) == 0o644, key
    assert not list((tmp_path / ".locks").iterdir())  # lock files go with their lock

    lat = tmp_path / "latents"
    dead = lat / ".x.partial-999999999-abcd1234.safetensors"  # a pid that cannot run
    fresh = lat / f".y.partial-{os.getpid()}-abcd1234.safetensors"  # a writer at work
    stale_lock = tmp_path / ".locks" / "z.safetensors.lock"
    for p in (dead, fresh, stale_lock):
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))
    r = cli("clean", "--workdir", tmp_path, "--dry-run")
    assert r.exit_code == 0 and dead.exists() and str(dead) in r.stdout and str(fresh) not in r.stdout
    r = cli("clean", "--workdir", tmp_path)
    assert r.exit_code == 0 and not dead.exists() and not stale_lock.exists() and fresh.exists()
    assert Path(v["latents"]).exists() and Path(v["video"]).exists()


def test_help_shows_defaults_and_no_python_types(cli: Cli) -> None:
    os.environ.setdefault("COLUMNS", "200")
    for cmd in (["run"], ["render"], ["encode"], ["decode"], ["rewrite"], ["inspect"], ["clean"],
                ["models", "init-tiny"], ["cache", "prune"]):  # fmt: skip
        out = cli(*cmd, "--help").stdout
        for bad in ("<bool>", "<list[", "<int>", "<str>", "<path>", " .\n", " . "):
            assert bad not in out, (cmd, bad)
    out = cli("run", "--help").stdout
    assert "--negative-prompt" in out and "[default: 129, or the model's (the demo model: 17)]" in " ".join(
        out.split()
    )


def test_sigterm_unwinds_like_ctrl_c(tiny_model: Path, tmp_path: Path) -> None:
    """A batch system's SIGTERM: one line, exit 143, no temporary file left, and the re-run continues."""
    import signal
    import subprocess

    args = ("run", PROMPT, "--model", tiny_model, *SMALL_ARGS[:-2], "--steps", "400", "--save-every", "20")
    proc = subprocess.Popen(hyv_cmd(*args, "--workdir", tmp_path), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the event: a checkpoint is behind us
        if "step 80/400" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated; finished artifacts are kept" in _error_line(err)
    assert not list(tmp_path.rglob("*.partial-*"))
    p = hyv_proc(*args, "--workdir", tmp_path)
    assert p.returncode == 0 and "continuing from the checkpoint at step" in p.stderr


def test_one_bad_item_is_bad_input(tiny_model: Path, tmp_path: Path) -> None:
    """A .jsonl whose only line has a setting out of range: exit 2 (bad input), naming the line; in a batch the
    other lines run and the exit code is 3."""
    one = tmp_path / "one.jsonl"
    one.write_text('{"prompt": "a cat", "seed": -1}\n')
    p = hyv_proc("run", "--prompts", one, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path)
    assert p.returncode == 2 and f"{one}:1" in _error_line(p.stderr) and "seed" in p.stderr
    two = tmp_path / "two.jsonl"
    two.write_text('{"prompt": "a cat", "seed": -1}\n{"prompt": "a dog"}\n')
    p = hyv_proc("run", "--prompts", two, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path)
    assert p.returncode == 3 and "1 made" in p.stdout
