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

    It plans for a CUDA GPU unless --device says otherwise, whether or not one is here: --memory says how much it has.

    The released models need no download: --model takes their names or hub ids offline (their configs ship)."""
    with reported_errors():
        show_plan(opts)


def show_plan(opts: StageOptions) -> None:
    """The plan of the options' model and settings (render.run.planning: `hyv run --dry-run` gives the same)."""
    from render.run.planning import memory_plan

    quiet_libraries()
    s = memory_plan(opts.model, opts.flags, variant=opts.variant(), memory=opts.memory, sr_model=opts.sr_model)
    if opts.json_out:
        emit_json({"command": "plan", **s})
        return
    _print_table(s)


def _print_table(s: dict[str, Any]) -> None:
    from rich.table import Table

    from hunyuan_cli.console import Console

    modes = list(s["run_peak_bytes"])
    unit, div = ("GB", 1e9) if max(s["run_peak_bytes"].values()) >= 1e9 else ("MB", 1e6)

    def _gb(n: float) -> str:
        return f"{n / div:.2f}"

    title = f"memory plan in {unit} ({unit} = 10^{9 if unit == 'GB' else 6} bytes): {s['model']}, "
    title += f"{s['frames']}x{s['height']}x{s['width']}"
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
        "(no CUDA context, no allocator fragmentation); 1 GiB = 1.074 GB."
    )
    free = s["free_bytes"]
    if free is None:
        typer.echo("free memory unknown (no GPU here): give --memory SIZE (e.g. 24GB or 24GiB) to see which mode fits")
        return
    fits = [m for m, ok in s["fits"].items() if ok]
    typer.echo(
        f"free {free / 1e9:.2f} GB ({free / 2**30:.2f} GiB): fits with a 10% margin: {', '.join(fits) or 'no mode'}; "
        "--offload auto picks " + ", ".join(f"{k}: {v or 'none fits'}" for k, v in s["auto"].items())
    )
