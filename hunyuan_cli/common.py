"""What every command shares: option types, error reporting, JSON output.

Nothing heavy is imported here: `hyv --help` must stay instant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Annotated, Any

import typer

# Set by the app callback (`hyv --debug ...`) or HYV_DEBUG=1.
STATE: dict[str, Any] = {"debug": os.environ.get("HYV_DEBUG", "") not in ("", "0")}

JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print exactly one JSON object on stdout naming every artifact produced."),
]
WorkdirOpt = Annotated[
    Path, typer.Option("--workdir", help="Where artifacts are written.", file_okay=False, dir_okay=True)
]
DEFAULT_WORKDIR = Path("hyv-out")


def error_line(message: str) -> None:
    """One line on stderr, never a traceback."""
    first = " ".join(str(message).split("\n")[0].split())
    typer.echo(f"hyv: error: {first}", err=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn typed library errors into one line and their exit code (a traceback only with --debug).

    Library errors carry an `exit_code` attribute (render.errors.HyvError, rewrite.errors.RewriteError).
    """
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        if STATE["debug"]:
            raise
        error_line("interrupted; finished artifacts are kept, re-run the same command to complete the rest")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the one place that maps every failure to a line
        if STATE["debug"]:
            raise
        from render.errors import out_of_memory

        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):
            error_line(str(exc))
            raise typer.Exit(code) from None
        oom = out_of_memory(exc)
        if oom is not None:
            error_line(str(oom))
            raise typer.Exit(oom.exit_code) from None
        error_line(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        raise typer.Exit(1) from None


@contextmanager
def quiet_follower(parallel: str | None) -> Iterator[None]:
    """On a torchrun rank > 0 of a --parallel job, send stdout and stderr to /dev/null (rank 0 prints the job's
    output and its errors; an error only this rank sees goes to the real stderr, render.mirror)."""
    from render.parallel import follower_rank

    if not follower_rank(parallel):
        yield
        return
    with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
        yield


def emit_json(obj: dict[str, Any]) -> None:
    """The one JSON object a --json command prints."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def quiet_libraries() -> None:
    """Library progress bars and info logs would mix with hyv's own display."""
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
