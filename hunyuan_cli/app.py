"""The `hyv` application. Commands live in their own modules; nothing heavy is imported at the top."""

from __future__ import annotations

from typing import Annotated

import typer

from hunyuan_cli import admin, calibrate_cmd, plan_cmd, rewrite_cmd, serve_cmd, stages, weights_admin
from hunyuan_cli.common import STATE, run_app

app = typer.Typer(
    name="hyv",
    help="HunyuanVideo as a chain of re-usable stages: rewrite -> encode -> render -> decode, or `run` for all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        import render

        typer.echo(f"hyv {render.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """HunyuanVideo text-to-video from the terminal."""
    if debug:
        STATE["debug"] = True


rewrite_cmd.register(app)  # a stage too: rewrite -> encode -> render -> decode
app.command(rich_help_panel="Stages")(stages.encode)
app.command(rich_help_panel="Stages")(stages.render)
app.command(rich_help_panel="Stages")(stages.upscale)
app.command(rich_help_panel="Stages")(stages.decode)
app.command(rich_help_panel="Stages")(stages.run)
app.add_typer(admin.models_app, name="models", rich_help_panel="Models and artifacts")
_ = weights_admin  # registers `hyv models check | convert | prepare-text-encoder | download` on models_app
app.add_typer(admin.cache_app, name="cache", rich_help_panel="Models and artifacts")
app.command("inspect", rich_help_panel="Models and artifacts")(admin.inspect)
app.command("clean", rich_help_panel="Models and artifacts")(admin.clean)
app.command("plan", rich_help_panel="Models and artifacts")(plan_cmd.plan)
app.command("calibrate", rich_help_panel="Models and artifacts")(calibrate_cmd.calibrate)
serve_cmd.register(app)


def main() -> None:
    run_app(app)
