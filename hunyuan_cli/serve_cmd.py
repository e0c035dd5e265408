"""`hyv serve`: a web page and an HTTP API over one warm engine. Parses, calls serve.server, prints."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hunyuan_cli.common import DEFAULT_WORKDIR, quiet_libraries, reported_errors
from hunyuan_cli.options import OPTIONS
from serve import DEFAULT_HOST, DEFAULT_PORT

HostOpt = Annotated[
    str, typer.Option("--host", help="Address to listen on; anything but loopback needs --token.")
]
PortOpt = Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="HYV_SERVE_TOKEN",
        show_envvar=True,
        show_default=False,
        help="Every request must carry it (Authorization: Bearer TOKEN; the page: /?token=TOKEN once). "
        "Never printed or logged.",
    ),
]

# Shared with the stage commands (declared once in hunyuan_cli.options).
ModelOpt: Any = OPTIONS["model"][1]
WorkdirOpt: Any = OPTIONS["workdir"][1]
DeviceOpt: Any = OPTIONS["device"][1]
DtypeOpt: Any = OPTIONS["dtype"][1]


def register(app: typer.Typer) -> None:
    app.command("serve", rich_help_panel="Serving")(serve)


def serve(
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
    model: ModelOpt = None,
    workdir: WorkdirOpt = None,
    token: TokenOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Serve a web page and an HTTP API (docs/serve.md) over one warm engine: a queue of jobs, run stage-major
    with the DiT kept loaded, persisted in the workdir (a restarted server finishes them)."""
    with reported_errors():
        from serve.server import ServeOptions
        from serve.server import serve as run_server

        opts = ServeOptions(host, port, model, Path(workdir or DEFAULT_WORKDIR).resolve(), token, device, dtype)
        quiet_libraries()

        def ready(url: str, model_ref: Any) -> None:
            from hunyuan_cli.console import announce_model

            announce_model(model_ref)
            typer.echo(f"hyv serve: {url}  (model: {model_ref.source}; workdir: {opts.workdir})")
            sys.stdout.flush()

        def log(message: str) -> None:
            typer.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)

        run_server(opts, ready, log)
