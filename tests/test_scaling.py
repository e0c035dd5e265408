"""Scaling out, with real processes: context parallel under torchrun (gloo, 2 CPU ranks), data parallel over local
worker processes (--gpus), and a batch on a real local Ray cluster (a head and a worker node) with a node killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from render.sampling.parallel import ParallelSpec, parse_parallel
from render.scale.workers import cpu_threads
from tests.conftest import SMALL_ARGS, Cli, hyv_cmd, hyv_proc

PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "Rain falls on a quiet street at night, cinematic lighting, the camera pans slowly to the left.",
]
# What differs between any two runs: timings, memory, cache hits, and the hashes of files whose manifests hold them.
VOLATILE = {"wall_seconds", "peak_rss_bytes", "peak_rss_delta_bytes", "peak_rss_scope", "cache_hit", "sha256"}


def _torchrun(n: int, *args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, *hyv_cmd(*args)[1:]], capture_output=True, text=True, env=env, timeout=timeout
    )


def _artifacts(workdir: Path) -> dict[str, Path]:
    """Every artifact under a work directory by its relative name (not locks or temporary files)."""
    return {
        str(p.relative_to(workdir)): p
        for p in workdir.rglob("*")
        if p.is_file() and not {".locks", ".index"} & set(p.parts) and ".partial-" not in p.name
    }


def _manifest(p: Path, workdir: Path) -> dict[str, object]:
    if p.suffix == ".json":
        text = p.read_text()
    elif p.suffix == ".safetensors":
        with safe_open(str(p), "pt") as f:
            text = f.metadata()["manifest"]
    else:
        return {}
    text = text.replace(str(workdir), "WORKDIR")
    return _stable(json.loads(text))


def _stable(m: object) -> object:
    if isinstance(m, dict):
        return {k: _stable(v) for k, v in m.items() if k not in VOLATILE}
    if isinstance(m, list):
        return [_stable(v) for v in m]
    return m


@contextmanager
def threads(n: int) -> Iterator[None]:
    """A reference run in this process with `n` torch threads, as each worker has: the CPU's matrix kernels can
    round differently with another number of threads (seen with AVX-512), so only equal counts compare exactly."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def assert_same_artifacts(a: Path, b: Path, atol: float = 0.0) -> None:
    """The same files by name; the same tensors (within atol); the same manifests but for timings and paths."""
    fa, fb = _artifacts(a), _artifacts(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name.endswith(".safetensors"):
            ta, tb = load_file(fa[name]), load_file(fb[name])
            for k in ta:
                assert torch.allclose(ta[k], tb[k], rtol=0, atol=atol), (name, k)
        if name.endswith((".safetensors", ".json")):
            assert _manifest(fa[name], a) == _manifest(fb[name], b), name


# ------------------------------------------------------------------------------------------- context parallel


def test_parallel_specs() -> None:
    assert parse_parallel("ulysses:2") == ParallelSpec(2, 1)
    assert parse_parallel("ring:4") == ParallelSpec(1, 4)
    assert parse_parallel("ulysses:2,ring:2").degree == 4
    for bad in ("ulysses", "ulysses:1", "tp:2", "ulysses:2,ulysses:2", "ring:0"):
        with pytest.raises(Exception, match="--parallel"):
            parse_parallel(bad)


def test_parallel_needs_torchrun_and_ring_needs_a_backend(
    tiny_model: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli("render", "x.safetensors", "--model", tiny_model, "--parallel", "ulysses:2")
    assert r.exit_code == 2 and "torchrun --nproc_per_node=2 -m hunyuan_cli" in r.stderr
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(k, v)
    r = cli("render", "x.safetensors", "--model", tiny_model, "--parallel", "ring:2")
    assert r.exit_code == 2 and "log-sum-exp" in r.stderr and "use ulysses:N" in r.stderr
    monkeypatch.setenv("WORLD_SIZE", "4")
    r = cli("render", "x.safetensors", "--model", tiny_model, "--parallel", "ulysses:2,ring:2")
    assert r.exit_code == 2 and "unified" in r.stderr


def test_two_ranks_render_what_one_rank_renders(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """Ulysses over 2 gloo ranks (torchrun): the same artifacts as one process, latents within 1e-5, true CFG
    (two forwards a step) and prompts of different lengths included; one report, from rank 0."""
    args = ["run", *PROMPTS, "--model", tiny_model, *SMALL_ARGS, "--cfg-scale", "2.0", "--json", "--workdir"]
    one = cli(*args, tmp_path / "one")
    assert one.exit_code == 0, one.output
    two = _torchrun(2, *args, tmp_path / "two", "--parallel", "ulysses:2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert len(two.stdout.strip().splitlines()) == 1  # rank 1 printed nothing
    report = json.loads(two.stdout)
    assert report["made"] == 2 and report["failed"] == 0
    assert "hyv" not in two.stderr.replace("hunyuan_cli", "")  # no warning or error line from any rank
    assert_same_artifacts(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_a_bad_input_fails_every_rank_with_one_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-embeddings.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    start = time.time()
    p = _torchrun(2, "render", bogus, "--parallel", "ulysses:2", timeout=120)
    assert p.returncode != 0 and time.time() - start < 100
    assert (p.stdout + p.stderr).count("hyv: error:") == 1, p.stderr[-3000:]
    assert "exitcode  : 2" in p.stderr  # torchrun's summary: the ranks exited with hyv's bad-input code


# ------------------------------------------------------------------------------------------- data parallel


def test_two_worker_processes_render_each_item_once(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    batch = tmp_path / "b.jsonl"
    lines = [
        {"prompt": PROMPTS[0], "seed": 3},
        {"prompt": PROMPTS[1], "num_videos": 2},
        {"prompt": "A dog runs."},
    ]
    batch.write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = ["run", "--prompts", batch, "--model", tiny_model, *SMALL_ARGS, "--device", "cpu", "--json"]
    two = cli(*args, "--workdir", tmp_path / "two", "--gpus", "2")  # first: the workers encode (an empty cache)
    with threads(cpu_threads(2)):
        one = cli(*args, "--workdir", tmp_path / "one")
    assert one.exit_code == two.exit_code == 0, two.output
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert [(v["source"], v["seed"]) for v in a["videos"]] == [(v["source"], v["seed"]) for v in b["videos"]]
    assert b["made"] == 4 and b["encodes"] == 3 and all(v["rendered"] for v in b["videos"])
    assert_same_artifacts(tmp_path / "one", tmp_path / "two")
    r = cli("run", "--prompts", batch, "--model", tiny_model, "--gpus", "2")
    assert r.exit_code == 2 and "add --device cpu" in r.stderr  # no GPU here


def test_worker_processes_load_the_same_dit_weights(tiny_model: Path, tmp_path: Path, cli: Cli) -> None:
    """--fp8 (a weight variant of the engine, not a setting) reaches both worker processes too."""
    args = ["run", *PROMPTS, "--model", tiny_model, *SMALL_ARGS, "--device", "cpu", "--fp8", "--json"]
    with threads(cpu_threads(2)):
        one = cli(*args, "--workdir", tmp_path / "one")
    two = cli(*args, "--workdir", tmp_path / "two", "--gpus", "2")
    assert one.exit_code == two.exit_code == 0, two.output
    a, b = json.loads(one.stdout)["videos"], json.loads(two.stdout)["videos"]
    assert [Path(v["latents"]).name for v in a] == [Path(v["latents"]).name for v in b]  # the variant is in the key
    assert_same_artifacts(tmp_path / "one", tmp_path / "two")


def _cached_engine(model: Path) -> Any:
    """An engine with a step cache given to it (not a --cache setting): part of the engine's spec."""
    from diffusers import FirstBlockCacheConfig

    from render.engine import Engine

    return Engine(model, cache=FirstBlockCacheConfig(threshold=0.5))


def _latents(report: Any) -> list[torch.Tensor]:
    assert not report.failed, [o.error for o in report.failed]
    return [load_file(str(o.latents))["latents"] for o in report.outcomes]


def test_an_engines_step_cache_reaches_the_worker_processes(tiny_model: Path, tmp_path: Path) -> None:
    """`Engine(cache=...)` over --gpus 2 renders what it renders in one process, and the cache acts (the latents
    differ from an uncached render): worker processes rebuild the engine from its spec, nothing dropped."""
    engine = _cached_engine(tiny_model)
    s = engine.settings(frames=9, height=32, width=32, steps=8, device="cpu")
    two = _latents(engine.run(PROMPTS, s, workdir=tmp_path / "two", gpus=2))
    with threads(cpu_threads(2)):
        one = _latents(engine.run(PROMPTS, s, workdir=tmp_path / "one"))
        from render.engine import Engine

        plain = Engine(tiny_model)
        uncached = _latents(plain.run(PROMPTS, plain.settings(**_SMALL8), workdir=tmp_path / "plain"))
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(one, uncached, strict=True))


_SMALL8 = {"frames": 9, "height": 32, "width": 32, "steps": 8, "device": "cpu"}


# ------------------------------------------------------------------------------------------- Ray


def test_ray_flag_without_ray_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "noray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is not installed')\n")
    p = hyv_proc("run", "a cat", "--model", tiny_model, "--ray", "auto", env={"PYTHONPATH": str(blocker)})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == "hyv: error: --ray needs Ray: pip install 'hyv[ray]'"


def test_ray_batch_survives_a_killed_node_and_equals_a_local_run(
    tiny_model: Path, tmp_path: Path, cli: Cli
) -> None:
    """An 8-item batch on a real 2-node Ray cluster (127.0.0.1, 1 CPU a node); the worker node is killed while the
    batch renders: every video is made, and every artifact equals a local `hyv run`'s."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray")
    from tests.ray_harness import local_cluster

    batch = tmp_path / "b.jsonl"
    batch.write_text(
        "".join(json.dumps({"prompt": p, "seed": s}) + "\n" for s in (1, 2, 3, 4) for p in PROMPTS)
    )
    args = ["run", "--prompts", batch, "--model", tiny_model, *SMALL_ARGS, "--json", "--workdir"]
    with threads(1):  # Ray gives each actor of 1 CPU one thread
        local = cli(*args, tmp_path / "local")
    assert local.exit_code == 0, local.output
    with local_cluster(Path(f"/tmp/hyv-ray-{os.getpid()}")) as cluster:
        env = {**os.environ, "HYV_CACHE_DIR": str(tmp_path / "c2")}
        proc = subprocess.Popen(
            hyv_cmd(*args, tmp_path / "ray", "--ray", cluster.address),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        worker = cluster.nodes[1]
        deadline = time.time() + 120
        while not cluster.running(worker, "ray::StageActor.render") and time.time() < deadline:
            time.sleep(0.02)
        cluster.kill_node(worker)  # while its actor renders an item
        out, err = proc.communicate(timeout=240)
        # The head node is left: an engine's own step cache reaches its actors (the engine's spec travels whole).
        engine = _cached_engine(tiny_model)
        s = engine.settings(**_SMALL8)
        on_ray = _latents(engine.run(PROMPTS, s, workdir=tmp_path / "ray-cached", ray=cluster.address))
    with threads(1):
        here = _latents(engine.run(PROMPTS, s, workdir=tmp_path / "here-cached"))
    assert all(torch.equal(a, b) for a, b in zip(here, on_ray, strict=True))
    assert proc.returncode == 0, err[-3000:]
    assert "Ray worker was lost during render" in err
    report = json.loads(out)
    assert report["made"] == 8 and report["failed"] == 0
    assert_same_artifacts(tmp_path / "local", tmp_path / "ray")


def test_ray_encode_shares_keep_each_prompt_in_one_task() -> None:
    """Two Ray tasks encoding one prompt at once would both write its embeddings (their manifests naming different
    batch lines): a prompt's lines go to one share, which encodes it by its first line, as a local run does."""
    from render.core.items import Item
    from render.scale.raycluster import _shares

    items = [Item(prompt=p, source=f"b.jsonl:{n + 1}") for n, p in enumerate(["a", "b", "a", "c", "b"])]
    assert _shares(items, 2) == [[0, 2, 3], [1, 4]]
    assert _shares(items, 8) == [[0, 2], [1, 4], [3]]  # no empty share
