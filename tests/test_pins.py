"""HunyuanVideo's latents pinned: the layers and family refactor (issue 19) moved every module the sampling runs
through; these renders must stay what they were before it, bit for bit, on the init-tiny model (plain, true CFG,
diffusers' masked attention, TeaCache) and on the bundled demo model.

The pins were written on one machine (its CPU model and kernel ISA are recorded in them). The same inputs give the
same bits only on the same kind of CPU (matrix kernels are chosen by ISA and cache sizes), so the comparison is
bitwise where the CPU matches the recorded one and within 1e-5 elsewhere. `HYV_WRITE_PINS=1` rewrites them.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.conftest import REPO

PINS = REPO / "tests" / "data" / "pins"
CASES: dict[str, tuple[bool, dict[str, Any], str]] = {  # (on the demo model?, settings, prompt)
    "tiny": (False, {"frames": 9, "height": 32, "width": 32, "steps": 4, "seed": 42},
             "A cat walks on the grass, realistic style."),
    "tiny_cfg": (False, {"frames": 9, "height": 32, "width": 32, "steps": 4, "seed": 42, "cfg_scale": 2.0},
                 "A cat walks on the grass, realistic style."),
    "tiny_masked": (False, {"frames": 9, "height": 32, "width": 32, "steps": 4, "seed": 3, "attention": "masked"},
                    "A dog runs along the beach at sunset."),
    "tiny_teacache": (False, {"frames": 9, "height": 32, "width": 32, "steps": 8, "seed": 5, "cache": "teacache:0.3"},
                      "A dog runs along the beach at sunset."),
    "demo_v1": (True, {"seed": 7}, "a blue circle moves to the left on a yellow background"),
}  # fmt: skip


def _cpu() -> str:
    """The CPU (model, family, cache, the kernel ISA torch picks) and torch: what decides the rounding."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model", "stepping", "cache size"):
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        fields["model name"] = platform.processor() or platform.machine()
    cpu = ", ".join(f"{k} {v}" for k, v in fields.items())
    return f"{cpu} / {torch.backends.cpu.get_cpu_capability()} / torch {torch.__version__} / {os.cpu_count()} cores"


def _render(name: str, tiny_model: Path, workdir: Path) -> torch.Tensor:
    from render.engine import Engine
    from tests.conftest import V1_DEMO

    demo, settings, prompt = CASES[name]
    engine = Engine(V1_DEMO if demo else tiny_model)
    out = engine.run([prompt], engine.settings(**settings), workdir=workdir).outcomes[0]
    assert out.status == "done", out.error
    return load_file(str(out.latents))["latents"]


@pytest.mark.parametrize("name", list(CASES))
def test_hunyuan_video_latents_are_pinned(name: str, tiny_model: Path, tmp_path: Path) -> None:
    got = _render(name, tiny_model, tmp_path)
    pin = PINS / f"{name}.safetensors"
    if os.environ.get("HYV_WRITE_PINS") == "1":
        PINS.mkdir(parents=True, exist_ok=True)
        save_file({"latents": got.contiguous()}, str(pin), metadata={"cpu": _cpu()})
    with safe_open(str(pin), "pt") as f:
        recorded_on = f.metadata()["cpu"]
        want = f.get_tensor("latents")
    if recorded_on == _cpu():
        assert torch.equal(got, want), f"{name}: the latents changed (max diff {(got - want).abs().max():.3g})"
    else:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
