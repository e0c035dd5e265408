"""The engine as a Python user meets it: settings resolved once (flags > hyv.json > hyv's defaults), model
lifetimes under each policy, loading on the placement a job asks for, and the README's snippet."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from render import Engine, Flags, Item, Settings
from render.core.errors import ModelNotFoundError, SettingsError
from render.core.resolve import resolve_settings
from tests.conftest import REPO

PROMPTS = ["A cat walks on the grass.", "Rain falls on a quiet street."]


@pytest.fixture
def model_with_defaults(tiny_model: Path, tmp_path: Path) -> Path:
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    (m / "hyv.json").write_text(
        json.dumps({"defaults": {"frames": 5, "height": 16, "steps": 2, "text_len": 12}})
    )
    return m


def test_flags_win_over_model_defaults_which_win_over_hyvs(model_with_defaults: Path) -> None:
    engine = Engine(model_with_defaults)
    s = engine.settings()
    assert (s.render.frames, s.render.height, s.render.width, s.render.steps) == (5, 16, 1280, 2)
    assert s.encode.text_len == 12 and s.decode.fps == 24
    s = engine.settings(Flags(frames=9, width=32, text_len=20, fps=8, device="cpu"))
    assert (s.render.frames, s.render.width, s.encode.text_len, s.decode.fps) == (9, 32, 20, 8)
    assert s.render.placement == s.encode.placement == s.decode.placement
    assert s.render.placement.device == "cpu"
    assert resolve_settings(Flags(size="540p", aspect="9:16")).render.height == 960


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (Flags(frames=10), "4k+1"),
        (Flags(cfg_scale=float("nan")), "finite"),
        (Flags(guidance=float("inf")), "finite"),
        (Flags(shift=float("nan")), "finite"),
        (Flags(aspect="1:1"), "--aspect goes with --size"),
        (Flags(size="720p", height=720), "not both"),
        (Flags(text_len=0), "text length"),
        (Flags(format="gif"), "mp4 or png"),
    ],
)
def test_bad_settings_are_refused_before_anything_loads(flags: Flags, needle: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(needle)):
        resolve_settings(flags)


@pytest.mark.parametrize(
    ("defaults", "needle"), [({"frame": 5}, "unknown default 'frame'"), ({"steps": "ten"}, "'steps' must be")]
)
def test_a_bad_model_default_is_named(
    tiny_model: Path, tmp_path: Path, defaults: dict[str, object], needle: str
) -> None:
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    (m / "hyv.json").write_text(json.dumps({"defaults": defaults}))
    with pytest.raises(ModelNotFoundError, match=needle):
        Engine(m).settings()


def _small(engine: Engine) -> Settings:
    return engine.settings(frames=9, height=32, width=32, steps=2, device="cpu")


def test_keep_warm_loads_each_model_once_across_calls(tiny_model: Path, tmp_path: Path) -> None:
    engine = Engine(tiny_model, policy="keep-warm")
    settings = _small(engine)
    for n, prompt in enumerate(PROMPTS):
        report = engine.run([prompt], settings, workdir=tmp_path / f"w{n}")
        assert [o.status for o in report.outcomes] == ["done"]
    assert engine.loads == {"text_encoders": 1, "transformer": 1, "vae": 1}
    engine.close()


def test_free_after_stage_reloads_for_each_call(tiny_model: Path, tmp_path: Path) -> None:
    engine = Engine(tiny_model)  # the batch default
    settings = _small(engine)
    for n, prompt in enumerate(PROMPTS):
        engine.run([prompt], settings, workdir=tmp_path / f"w{n}")
    assert engine.loads == {"text_encoders": 2, "transformer": 2, "vae": 2}
    assert not engine._held  # nothing stays in memory between calls


def test_nothing_loads_when_everything_exists(tiny_model: Path, tmp_path: Path) -> None:
    settings = _small(Engine(tiny_model))
    first = Engine(tiny_model).run(PROMPTS, settings, workdir=tmp_path)
    again = Engine(tiny_model)
    report = again.run(PROMPTS, settings, workdir=tmp_path)
    assert [o.status for o in report.outcomes] == ["skipped", "skipped"]
    assert [o.video for o in report.outcomes] == [o.video for o in first.outcomes]
    assert report.encodes == 0 and sum(again.loads.values()) == 0 and again._encode_stage is None
    # Without the run index (another hyv, or it was deleted), the artifacts are found the long way.
    for p in (tmp_path / ".index").iterdir():
        p.unlink()
    third = Engine(tiny_model)
    report = third.run(PROMPTS, settings, workdir=tmp_path)
    assert [o.status for o in report.outcomes] == ["skipped", "skipped"]
    assert report.cache_hits == 2 and sum(third.loads.values()) == 0


def test_a_job_on_another_placement_reloads_the_dit(tiny_model: Path, tmp_path: Path) -> None:
    """The DiT is loaded on the placement each job asks for (not the first job's)."""
    engine = Engine(tiny_model, policy="keep-warm")
    fp32 = engine.settings(frames=9, height=32, width=32, steps=2, dtype="float32")
    bf16 = engine.settings(frames=9, height=32, width=32, steps=2, dtype="bfloat16")
    a = engine.run([PROMPTS[0]], fp32, workdir=tmp_path).outcomes[0]
    b = engine.run([PROMPTS[0]], bf16, workdir=tmp_path).outcomes[0]
    assert engine.loads["transformer"] == 2
    assert a.latents != b.latents  # the dtype is part of the render key
    from render.files.artifacts import read_manifest

    assert b.latents is not None and read_manifest(b.latents)[1]["model"]["dtype"] == "bfloat16"


def test_items_carry_their_own_settings_and_failures(tiny_model: Path, tmp_path: Path) -> None:
    engine = Engine(tiny_model)
    items = [
        Item(prompt=PROMPTS[0], overrides={"seed": 3, "num_videos": 2}),
        Item(prompt=PROMPTS[1], overrides={"frames": 10}, source="p.jsonl:2"),
        "A red circle.",
    ]
    report = engine.run(items, _small(engine), workdir=tmp_path)
    assert [(o.item.prompt, o.seed, o.status) for o in report.outcomes] == [
        (PROMPTS[0], 3, "done"),
        (PROMPTS[0], 4, "done"),
        (PROMPTS[1], 42, "failed"),
        ("A red circle.", 42, "done"),
    ]
    assert "4k+1" in (report.failed[0].error or "")


def test_readme_snippet_renders_two_prompts_with_the_dit_loaded_once(tmp_path: Path) -> None:
    """The README's Python example, run as written (in a fresh interpreter, in an empty directory)."""
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None, "the README has a ```python example"
    (tmp_path / "snippet.py").write_text(code.group(1))
    p = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 0, p.stderr
    videos = sorted((tmp_path / "notebook-out" / "videos").glob("*.mp4"))
    assert len(videos) == 2
    assert "'transformer': 1" in p.stdout


def test_readme_stage_by_stage_commands_run_as_written(tmp_path: Path) -> None:
    """The README's ```bash example, run by bash in an empty directory with the installed `hyv`."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "400",
    }
    p = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("(embeddings)") == p.stdout.count("(latents)") == p.stdout.count("(video)") == 1
    assert len(list((tmp_path / "hyv-out" / "videos").glob("*.mp4"))) == 1
