"""`hyv calibrate`: measure what each step cache costs on this model, and keep the thresholds in its hyv.json."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from hunyuan_cli.common import emit_json, quiet_libraries, reported_errors
from hunyuan_cli.console import err_console
from hunyuan_cli.options import PromptArgs, StageOptions, stage_options

CachesOpt = Annotated[
    str | None,
    typer.Option(
        "--caches", help="Which caches to measure, e.g. teacache,fbcache [default: all].", show_default=False
    ),
]
WriteOpt = Annotated[
    bool,
    typer.Option("--write/--no-write", help="Keep the calibration in the model's hyv.json [default: write]."),
]


@stage_options("calibrate")
def calibrate(
    prompts: PromptArgs = None, caches: CachesOpt = None, write: WriteOpt = True, *, opts: StageOptions
) -> None:
    """Render a few prompts uncached and with each step cache over a grid of thresholds; print speed-up, PSNR and
    SSIM against uncached (and the demo model's evaluator pass rate); fit TeaCache's polynomial and MagCache's
    ratios; write the table and the threshold for each quality into the model's hyv.json, so that
    `--cache teacache` with no threshold uses it (`--cache-quality 30db`)."""
    with reported_errors():
        from render.core.errors import UsageError
        from render.engine import Engine
        from render.run.calibrate import GENERIC_PROMPTS, GRID, calibrate
        from render.run.calibrate import write as keep

        engine = Engine(opts.model, policy="keep-warm")
        settings = engine.settings(opts.flags)
        if caches is not None:
            unknown = sorted(set(caches.split(",")) - set(GRID))
            if unknown:
                raise UsageError(f"unknown cache(s) {', '.join(unknown)}; use some of {', '.join(GRID)}")
        grid = {k: v for k, v in GRID.items() if caches is None or k in caches.split(",")}
        if not prompts:
            if engine.model.bundled:
                from render.demo.world import held_out_captions

                prompts = held_out_captions()[::10]  # 5 held-out captions
            else:
                prompts = list(GENERIC_PROMPTS)
        quiet_libraries()
        say = (lambda _: None) if opts.json_out else (lambda line: err_console.print(line, markup=False))
        cal = calibrate(engine, settings, prompts, grid, say)
        path = keep(engine.model.path, cal) if write else None
        if opts.json_out:
            emit_json({"command": "calibrate", **cal.as_json(), "written": str(path) if path else None})
            return
        typer.echo(f"uncached: {cal.uncached_dit_seconds:.2f} s for {len(prompts)} prompt(s)" + (
            f", {cal.uncached_passed}/{len(prompts)} pass the evaluator" if cal.uncached_passed is not None else ""
        ))  # fmt: skip
        typer.echo(f"{'cache':18} {'speed-up':>8} {'PSNR dB':>8} {'SSIM':>7} {'passed':>7}")
        for row in cal.table:
            r = asdict(row)
            passed = "" if r["passed"] is None else f"{r['passed']}/{len(prompts)}"
            typer.echo(
                f"{r['cache']:18} {r['speedup']:>7.2f}x {r['psnr_db']:>8.2f} {r['ssim']:>7.4f} {passed:>7}"
            )
        for kind, chosen in cal.choices.items():
            typer.echo(f"{kind}: " + ", ".join(f"{q} -> {t:g}" for q, t in sorted(chosen.items())))
        if path is not None:
            typer.echo(f"written to {path}")
