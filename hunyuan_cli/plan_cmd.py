"""`hyv plan` (and `hyv run --dry-run`): the memory plan as a table, or one JSON object."""

from __future__ import annotations

from typing import Any

import typer

from hunyuan_cli.common import emit_json, quiet_libraries, reported_errors
from hunyuan_cli.options import StageOptions, stage_options


@stage_options("plan")
def plan(*, opts: StageOptions) -> None:
    """Each stage's peak device memory under each offload mode, before anything loads (real modules on meta
    tensors: configs only, no weights), and which mode fits the free memory.

    With no GPU here, --device auto plans for a CUDA GPU (its dtypes); give --memory to say how much it has."""
    with reported_errors():
        from render.core.resolve import Flags
        from render.engine import Engine

        flags = opts.flags
        if flags.device is None:
            import torch

            if not torch.cuda.is_available():
                flags = Flags(**{**vars(flags), "device": "cuda"})
        engine = Engine(opts.model, variant=opts.variant(), sr_model=opts.sr_model)
        quiet_libraries()
        show_plan(engine, engine.settings(flags), opts)


def show_plan(engine: Any, settings: Any, opts: StageOptions) -> None:
    from render.files.cache import parse_size
    from render.plan import free_memory, summary

    p = engine.plan(settings)
    devices = {s.device for s in p.stages}
    free = parse_size(opts.memory) if opts.memory else free_memory("cuda" if "cuda" in devices else "cpu")
    s = summary(p, free)
    if opts.json_out:
        emit_json({"command": "plan", "model": engine.model.source, **s})
        return
    _print_table(engine.model.source, s)


def _print_table(source: str, s: dict[str, Any]) -> None:
    from rich.table import Table

    from hunyuan_cli.console import Console

    modes = list(s["run_peak_bytes"])
    unit, div = ("GB", 1e9) if max(s["run_peak_bytes"].values()) >= 1e9 else ("MB", 1e6)

    def _gb(n: Any) -> str:
        return f"{n / div:.2f}"

    title = f"memory plan ({unit}): {source}, {s['frames']}x{s['height']}x{s['width']}"
    if s.get("sr"):
        title += f" -> --sr {s['sr']['to']}: {s['sr']['height']}x{s['sr']['width']}"
    if s["weights_variant"]:
        title += f", DiT {s['weights_variant']}"
    t = Table("stage", "device", "weights", "activ.", *modes, title=title, caption="peak per --offload mode")
    for st in s["stages"]:
        dtype = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(st["dtype"], st["dtype"])
        peaks = [_gb(st["peak_bytes"][m]) for m in modes]
        sizes = _gb(st["weights_bytes"]), _gb(st["activations_bytes"])
        t.add_row(st["stage"], f"{st['device']} {dtype}", *sizes, *peaks)
    t.add_row("run", "", "", "", *[_gb(s["run_peak_bytes"][m]) for m in modes], style="bold")
    Console().print(t)
    typer.echo(
        f"run = the largest stage (each stage's models are freed after it); every model resident at once "
        f"(upstream's way): {_gb(s['all_resident_bytes'])} {unit}. Peaks are tensor bytes as torch allocates them "
        "(no CUDA context, no allocator fragmentation)."
    )
    free = s["free_bytes"]
    if free is None:
        typer.echo("free memory unknown (no GPU here): give --memory SIZE to see which mode fits")
        return
    fits = [m for m, ok in s["fits"].items() if ok]
    typer.echo(
        f"free {free / 1e9:.2f} GB: fits with a 10% margin: {', '.join(fits) or 'no mode'}; --offload auto picks "
        + ", ".join(f"{k}: {v or 'none fits'}" for k, v in s["auto"].items())
    )
