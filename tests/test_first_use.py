"""What a new user trips on (issue 24): the released models planned offline by name, `run --dry-run` = `plan`, sizes
with their unit, help that lists only what applies, the package metadata, the README's test costs."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, SMALL_ARGS, Cli, hyv_proc

PROMPT = "A cat walks on the grass, realistic style."
HV15 = "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-"


def _plan(cli: Cli, *args: str | Path) -> dict:
    r = cli("plan", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def _stage(plan: dict, name: str) -> dict:
    return next(s for s in plan["stages"] if s["stage"] == name)


# ------------------------------------------------------------------ 1. the released models, offline


def test_the_13b_model_plans_offline_by_hub_id_or_name(cli: Cli) -> None:
    """No snapshot, no network (HF_HUB_OFFLINE): its configs ship with hyv."""
    by_id = _plan(cli, "--model", "hunyuanvideo-community/HunyuanVideo", "--size", "720p", "--memory", "24GB")
    render = _stage(by_id, "render")
    assert (render["device"], render["dtype"]) == ("cuda", "bfloat16")
    assert render["weights_bytes"] == 12_821_012_544 * 2  # the 13B DiT in bf16
    assert (by_id["frames"], by_id["height"], by_id["width"]) == (129, 720, 1280)
    assert by_id["fits"] == {"none": False, "model": False, "group": True, "sequential": True}
    r = cli("run", PROMPT, "--model", "HunyuanVideo", "--size", "720p", "--memory", "24GB", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == by_id  # by its short name (any case), through `run --dry-run`: the same plan


def test_hunyuanvideo_15_plans_offline(cli: Cli) -> None:
    """The 8.3B DiT in bf16, the 1.5 defaults of the variant (121 frames, its target size), the 108 template tokens
    of a config-only folder (no tokenizer)."""
    p = _plan(cli, "--model", f"{HV15}720p_t2v", "--memory", "24GiB")
    assert (p["frames"], p["height"], p["width"]) == (121, 720, 1280)
    assert p["free_bytes"] == 24 * 2**30
    dit = _stage(p, "render")["components"][0]
    assert 8.3e9 * 2 < dit["weights_bytes"] < 8.35e9 * 2
    text = {c["name"]: c["weights_bytes"] for c in _stage(p, "encode")["components"]}
    assert 7.0e9 * 2 < text["text_encoder"] < 7.2e9 * 2  # Qwen2.5-VL-7B's language model
    assert 0.2e9 * 2 < text["text_encoder_2"] < 0.25e9 * 2  # ByT5-small's encoder
    p = _plan(cli, "--model", "hunyuanvideo-1.5-480p_i2v_step_distilled", "--device", "cpu")
    assert (p["frames"], p["height"], p["width"]) == (121, 480, 848)
    assert _stage(p, "render")["dtype"] == "float32"


@pytest.mark.parametrize(
    ("variant", "cfg", "shift", "steps", "size"),
    [
        ("480p_t2v", 6.0, 5.0, 50, (480, 848)),
        ("480p_i2v", 6.0, 5.0, 50, (480, 848)),
        ("720p_t2v", 6.0, 9.0, 50, (720, 1280)),
        ("720p_i2v", 6.0, 7.0, 50, (720, 1280)),
        ("480p_t2v_distilled", 1.0, 5.0, 50, (480, 848)),
        ("480p_i2v_distilled", 1.0, 5.0, 50, (480, 848)),
        ("720p_i2v_distilled", 1.0, 7.0, 50, (720, 1280)),
        ("480p_i2v_step_distilled", 1.0, 7.0, 8, (480, 848)),
    ],
)
def test_the_15_variants_shipped(variant: str, cfg: float, shift: float, steps: int, size: tuple[int, int]) -> None:
    """Each variant's shipped configs give Tencent's defaults for it (guider scale, scheduler shift, steps, the 16:9
    bucket of its target size), and its DiT and VAE are diffusers' defaults of their classes (the released ones)."""
    from render.families import find_released, resolve_model
    from render.run.local import LocalEngine

    released = find_released(f"{HV15}{variant}")
    assert released is not None and released == find_released(f"hunyuanvideo-1.5-{variant}")
    engine = LocalEngine(resolve_model(released.hub_id, configs_only=True))
    s = engine.settings()
    assert (s.render.cfg_scale, s.render.shift, s.render.steps) == (cfg, shift, steps)
    assert (s.render.height, s.render.width, s.render.frames) == (*size, 121)
    dit = engine.family.config(engine.model, "transformer")
    assert dit["target_size"] == (640 if variant.startswith("480p") else 960)
    assert dit["use_meanflow"] == (variant == "480p_i2v_step_distilled")
    assert engine.model.pipeline.endswith("ImageToVideoPipeline") == ("i2v" in variant)
    _matches_diffusers_defaults(engine.model.path, {"target_size", "task_type", "use_meanflow"})


def _matches_diffusers_defaults(folder: Path, overridden: set[str]) -> None:
    import diffusers
    import torch

    for name in ("transformer", "vae"):
        cfg = json.loads((folder / name / "config.json").read_text())
        with torch.device("meta"):
            defaults = dict(getattr(diffusers, cfg["_class_name"])().config)
        for k, v in defaults.items():
            if not k.startswith("_") and k not in overridden:
                assert json.loads(json.dumps(v)) == cfg[k], (folder.name, name, k)


def test_the_13b_configs_are_the_released_model() -> None:
    from render.families import find_released

    released = find_released("hunyuanvideo")
    assert released is not None and released.hub_id == "hunyuanvideo-community/HunyuanVideo"
    _matches_diffusers_defaults(released.configs, set())
    llama = json.loads((released.configs / "text_encoder" / "config.json").read_text())
    assert (llama["hidden_size"], llama["num_hidden_layers"], llama["vocab_size"]) == (4096, 32, 128320)


def test_an_unknown_model_name_lists_the_known_ones(cli: Cli, tmp_path: Path) -> None:
    """Neither a folder, nor a released model, nor on the hub (offline here): one line naming the known models."""
    for args in (("plan",), ("run", PROMPT, "--workdir", tmp_path / "w")):
        r = cli(*args, "--model", "hunyuanvideo-2.0")
        assert r.exit_code == 2, r.output
        (line,) = r.stderr.strip().splitlines()
        assert "hunyuanvideo-2.0" in line and "hunyuanvideo, hunyuanvideo-1.5-480p_t2v" in line
    assert not (tmp_path / "w").exists()


def test_plan_help_says_which_names_work_offline(cli: Cli) -> None:
    out = _help(cli, "plan")
    assert "hunyuanvideo-1.5-480p_i2v_step_distilled" in out and "offline" in out.lower()


# ------------------------------------------------------------------ 2. one planner, one answer


def test_run_dry_run_and_plan_agree(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """The same flags give the same plan: for a CUDA GPU when no --device is given, with --memory on both."""
    args = ["--model", tiny_model, *SMALL_ARGS]
    r = cli("run", PROMPT, *args, "--workdir", tmp_path / "w", "--dry-run", "--json", "--memory", "24GB")
    assert r.exit_code == 0, r.stderr
    dry = json.loads(r.stdout)
    assert dry == _plan(cli, *args[:2], *SMALL_ARGS[:6], "--memory", "24GB")
    assert {s["device"] for s in dry["stages"]} == {"cuda"} and dry["free_bytes"] == 24 * 10**9
    r = cli("run", PROMPT, *args, "--device", "cpu", "--dry-run", "--json", "--memory", "8GiB")
    assert json.loads(r.stdout) == _plan(cli, *args[:2], *SMALL_ARGS[:6], "--device", "cpu", "--memory", "8GiB")
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------ 3. sizes and their unit


def test_a_size_without_a_unit_is_an_error_showing_the_forms(tiny_model: Path, cli: Cli) -> None:
    for args in (("plan", "--model", tiny_model, "--memory", "24"), ("cache", "prune", "--max-size", "10")):
        r = cli(*args)
        assert r.exit_code == 2, r.output
        (line,) = r.stderr.strip().splitlines()
        assert "no unit" in line and "24GB" in line and "24GiB" in line and "10^9" in line
    r = cli("plan", "--model", tiny_model, "--memory", "24GiB")
    assert r.exit_code == 0, r.stderr
    assert "memory plan in GB (GB = 10^9 bytes)" in r.stdout and "free 25.77 GB (24.00 GiB)" in r.stdout


# ------------------------------------------------------------------ 8. help lists only what applies


def _help(cli: Cli | None, *command: str, width: int = 80) -> str:
    from hunyuan_cli.app import app

    r = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(width)}, terminal_width=width)
    assert r.exit_code == 0, r.output
    return r.stdout


def _options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", text))


def test_each_command_shows_only_its_options(cli: Cli) -> None:
    plan = _options(_help(cli, "plan"))
    assert not plan & {"--seed", "--fps", "--format", "--save-every", "--stop-at", "--quiet", "--workdir",
                       "--offload", "--steps", "--cfg-scale"}  # fmt: skip
    assert {"--model", "--size", "--memory", "--fp8", "--device", "--text-encoder-device"} <= plan
    decode = _options(_help(cli, "decode"))
    assert not decode & {"--text-encoder-device", "--seed", "--steps", "--frames"}
    assert {"--vae-device", "--fps", "--output"} <= decode
    assert "--vae-device" not in _options(_help(cli, "encode"))
    run = _help(cli, "run")
    assert "…" not in run and "--neg-prompt" not in _options(run.replace("(also --neg-prompt)", ""))
    assert {"--dry-run", "--memory", "--negative-prompt"} <= _options(run)


def test_one_naming_scheme_for_arguments(cli: Cli) -> None:
    commands = [("encode",), ("render",), ("decode",), ("run",), ("rewrite",), ("models", "init-tiny"),
                ("models", "check"), ("inspect",), ("cache", "info")]  # fmt: skip
    for command in commands:
        text = _help(cli, *command, width=200)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        args = usage.split("[OPTIONS]")[1].split()
        assert args, usage
        for a in args:
            assert re.fullmatch(r"\[?[A-Z][A-Z_-]*\]?(\.\.\.)?", a), usage
        panel = text.split("Arguments")[1].split("╰")[0]
        names = re.findall(r"│ [* ]\s+(\S+)", panel)
        assert names and all(n.isupper() for n in names), (command, names)
    assert "PROMPT" in _help(cli, "rewrite")


def test_rewrite_is_a_stage_and_its_llm_flag_is_not_model(cli: Cli, tmp_path: Path) -> None:
    top = _help(cli, width=120)
    stages = top[top.index("Stages") :].split("╰")[0]
    assert re.findall(r"│ (\w+) ", stages)[:6] == ["rewrite", "encode", "render", "upscale", "decode", "run"]
    rewrite = _options(_help(cli, "rewrite"))
    assert "--rewrite-model" in rewrite and "--model" not in rewrite


def test_neg_prompt_still_works(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    args = ["run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "--cfg-scale", "2", "--json"]
    a = cli(*args, "--neg-prompt", "blurry", "--workdir", tmp_path / "a")
    b = cli(*args, "--negative-prompt", "blurry", "--workdir", tmp_path / "b")
    assert a.exit_code == b.exit_code == 0, a.stderr + b.stderr
    la, lb = (Path(json.loads(r.stdout)["videos"][0]["latents"]) for r in (a, b))
    assert la.name == lb.name  # the same render key: the same negative prompt


# ------------------------------------------------------------------ 9. the package's metadata


def test_pyproject_license_is_an_spdx_string() -> None:
    """setuptools (what `pip install -e .` builds with) has nothing to deprecate in the project table."""
    import tomllib
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert not [w for w in caught if "deprecat" in str(w.message).lower()], [str(w.message)[:200] for w in caught]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    (req,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.findall(r">=(\d+)", req)[0]) >= 77  # the first setuptools that reads an SPDX string


# ------------------------------------------------------------------ 10. the README states the test command's cost


def test_readme_states_what_the_tests_cost() -> None:
    """The cost of `bash scripts/test.sh` (measured on 2 cores: minutes, ~3.5 GB for the vLLM venv), how to run
    the fast part and how to free the space, where the harness keeps it."""
    harness = (REPO / "tests" / "rewrite" / "vllm_harness.py").read_text()
    assert 'Path.home() / ".cache" / "hyv-test"' in harness
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Test") : readme.index("## Quick start")]
    cache = "~/.cache/hyv-test"
    assert re.search(r"about \d+ minutes", section) and "3.5 GB" in section and cache in section
    assert "HYV_SKIP_VLLM=1 bash scripts/test.sh" in section and f"rm -rf {cache}" in section


# ------------------------------------------------------------------ 4. stage commands with nothing to do


def test_stage_commands_with_nothing_to_do_import_no_torch(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """`encode`, `render` and `decode` whose artifacts exist answer as `run` does: without torch (well under a
    second on an idle machine; imports, not seconds, are asserted here), with the outcomes the full path gives."""
    wd = ["--model", tiny_model, "--workdir", tmp_path]
    stages = {
        "encode": ["encode", PROMPT, *wd, "--frames", "9", "--json"],
        "render": ["render", "EMB", *wd, *SMALL_ARGS, "--seed", "3", "--json"],
        "decode": ["decode", "LAT", *wd, "--json"],
    }
    first: dict[str, dict] = {}
    for name, args in stages.items():
        args = [first["encode"]["path"] if a == "EMB" else first["render"]["path"] if a == "LAT" else a for a in args]
        stages[name] = args
        r = cli(*args)
        assert r.exit_code == 0, r.stderr
        first[name] = json.loads(r.stdout)[{"encode": "embeddings", "render": "latents", "decode": "videos"}[name]][0]
        again = cli(*args)  # the full path checks it all, and finds it made (the same answer as the fast path)
        assert json.loads(again.stdout)[{"encode": "embeddings", "render": "latents", "decode": "videos"}[name]][0][
            "status"] in ("cached", "skipped")  # fmt: skip
    for name, args in stages.items():
        p = hyv_proc(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert p.returncode == 0, p.stderr
        imported = {ln.rsplit("|", 1)[-1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")}
        assert imported and not imported & {"torch", "diffusers", "transformers", "safetensors.torch"}, name
        (row,) = json.loads(p.stdout)[{"encode": "embeddings", "render": "latents", "decode": "videos"}[name]]
        assert row["path"] == first[name]["path"] and row["status"] == ("cached" if name == "encode" else "skipped")
        assert row["prompt"] == PROMPT and (name == "encode" or row["seed"] == 3)


def test_the_stage_index_never_answers_for_other_work(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """Another seed, other text settings or damaged artifacts take the full path: nothing is reported as made
    that is not."""
    wd = ["--model", tiny_model, "--workdir", tmp_path, "--json"]
    emb = json.loads(cli("encode", PROMPT, *wd, "--frames", "9").stdout)["embeddings"][0]["path"]
    lat = json.loads(cli("render", emb, *wd, *SMALL_ARGS).stdout)["latents"][0]["path"]
    r = json.loads(cli("encode", PROMPT, *wd, "--frames", "9", "--text-len", "12").stdout)["embeddings"][0]
    assert r["status"] == "done" and r["path"] != emb
    r = json.loads(cli("render", emb, *wd, *SMALL_ARGS, "--seed", "5").stdout)["latents"][0]
    assert r["status"] == "done" and r["path"] != lat
    Path(lat).write_bytes(Path(lat).read_bytes()[:-8])  # truncated: rendered again, under its name
    r = json.loads(cli("render", emb, *wd, *SMALL_ARGS).stdout)["latents"][0]
    assert (r["status"], r["path"]) == ("done", lat)
    Path(emb).unlink()
    r = json.loads(cli("encode", PROMPT, *wd, "--frames", "9").stdout)["embeddings"][0]
    assert r["status"] == "cached" and r["path"] == emb and Path(emb).is_file()  # back from the cache


# ------------------------------------------------------------------ 5. messages that say what happened


def test_an_empty_prompt_file_says_the_file_has_no_prompts(tmp_path: Path, cli: Cli) -> None:
    for name, text in (("empty.txt", ""), ("comments.txt", "# a comment\n\n  # another\n"), ("e.jsonl", "\n"),
                       ("header.csv", "prompt\n")):  # fmt: skip
        f = tmp_path / name
        f.write_text(text)
        for command in ("encode", "run", "render"):
            r = cli(command, "--prompts", f, "--workdir", tmp_path / "w")
            assert r.exit_code == 2, r.output
            (line,) = r.stderr.strip().splitlines()
            assert f"prompt file {f} has no prompts" in line and "no prompt given" not in line
    assert not (tmp_path / "w").exists()


def test_bad_input_lines_are_listed_to_fix_not_retried(tiny_model: Path, tmp_path: Path) -> None:
    """A batch whose failures are bad lines says which lines to fix (re-running would not help), in one list at
    the end with the items that failed."""
    jl = tmp_path / "batch.jsonl"
    jl.write_text(f'{{"prompt": "{PROMPT}"}}\n{{"prompt": oops}}\n{{"prompt": "a dog", "steps": -2}}\n')
    p = hyv_proc("run", "--prompts", jl, "--model", tiny_model, *SMALL_ARGS, "--workdir", tmp_path / "w")
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert "re-run the same command" not in lines[-1] and "retry" not in lines[-1]
    assert f"{jl} lines 2, 3" in lines[-1] and "fix them" in lines[-1] and "1 done" in lines[-1]
    listed = [ln for ln in lines if f"{jl}:" in ln]
    assert len(listed) == 2 and lines.index(listed[0]) > max(i for i, ln in enumerate(lines) if "decode" in ln)
    assert "not valid JSON" in listed[0] and "steps" in listed[1]


# ------------------------------------------------------------------ 6. the time estimate


def test_log_progress_gives_the_batchs_time_and_never_0_00(tiny_model: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "two.txt"
    prompts.write_text("a cat\na dog\n")
    p = hyv_proc("run", "--prompts", prompts, "--model", tiny_model, *SMALL_ARGS[:6], "--steps", "10",
                 "--workdir", tmp_path / "w")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "0:00 to go" not in p.stderr
    steps = [ln for ln in p.stderr.splitlines() if " step " in ln]
    assert "step 10/10 of item 1/2 (50% of the batch)" in steps[9] and "left for the batch" in steps[9]
    assert "step 10/10 of item 2/2 (100% of the batch)" in steps[-1]


# ------------------------------------------------------------------ 7. the demo model's notice


def test_the_demo_notice_comes_once_per_workdir_never_with_quiet(tmp_path: Path, cli: Cli) -> None:
    caption = "a red circle moves up on a black background"
    notice = "using the bundled demo model"
    r = cli("encode", caption, "-q", "--workdir", tmp_path / "a")
    assert r.exit_code == 0 and notice not in r.stderr
    r = cli("encode", caption, "--workdir", tmp_path / "a")
    assert r.exit_code == 0 and notice in r.stderr  # the first time it is said here (-q said nothing)
    r = cli("encode", caption, "--workdir", tmp_path / "a")
    assert r.exit_code == 0 and notice not in r.stderr
    r = cli("encode", caption, "--workdir", tmp_path / "b")
    assert notice in r.stderr


# ------------------------------------------------------------------ 9. nothing left behind


def test_bad_input_leaves_no_empty_workdir(tiny_model: Path, tmp_path: Path, cli: Cli,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    adir = tmp_path / "adir"
    adir.mkdir()
    r = cli("decode", adir, "--model", tiny_model)
    assert r.exit_code == 2 and "directory" in r.stderr
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "-o", adir, "--workdir", tmp_path / "w")
    assert r.exit_code == 2 and ".mp4" in r.stderr
    r = cli("run", PROMPT, "--model", tiny_model, *SMALL_ARGS, "-o", tmp_path / "new" / "v.mp4", "--workdir",
            tmp_path / "w", "--cfg-scale", "nan")  # fmt: skip
    assert r.exit_code == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name in ("hyv-out", "w", "new")]
    assert not list(adir.iterdir())
