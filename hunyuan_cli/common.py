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
    Path,
    typer.Option("--workdir", help="Where artifacts are written.", metavar="DIR"),
]
DEFAULT_WORKDIR = Path("hyv-out")


def error_line(message: str) -> None:
    """One line on stderr, never a traceback."""
    first = " ".join(str(message).split("\n")[0].split())
    typer.echo(f"hyv: error: {first}", err=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn typed library errors into one line and their exit code (a traceback only with --debug).

    Library errors carry an `exit_code` attribute (render.core.errors.HyvError, rewrite.errors.RewriteError).
    """
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt as exc:
        if STATE["debug"]:
            raise
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        error_line(f"{how}; finished artifacts are kept, re-run the same command to complete the rest")
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    except Exception as exc:  # noqa: BLE001 - the one place that maps every failure to a line
        if STATE["debug"]:
            raise
        from render.core.errors import out_of_memory

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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, `kill`): unwound like Ctrl-C, so that no temporary file stays."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def run_app(app: typer.Typer) -> None:
    """Run the CLI; a usage error (a bad or missing option, `--steps abc`) is one line on stderr and exit 2."""
    import signal

    from typer._click import exceptions as cx  # typer's own click, whose errors it raises

    signal.signal(signal.SIGTERM, _on_sigterm)
    _quiet_library_logs()
    try:
        code = app(standalone_mode=False)
    except cx.NoArgsIsHelpError as exc:  # `hyv` or `hyv models` alone: the help
        exc.show()
        code = 0
    except cx.UsageError as exc:
        where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
        error_line(f"{exc.format_message().rstrip('.')}{where}")
        code = 2
    except cx.ClickException as exc:
        error_line(exc.format_message())
        code = exc.exit_code
    except typer.Abort:
        error_line("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def _quiet_library_logs() -> None:
    """diffusers' and transformers' info logs and progress bars would mix with hyv's own display; set through
    their environment variables, so that nothing heavy is imported for it."""
    for var, value in (
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("DIFFUSERS_VERBOSITY", "error"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(var, value)


@contextmanager
def quiet_follower(parallel: str | None) -> Iterator[None]:
    """On a torchrun rank > 0 of a --parallel job, send stdout and stderr to /dev/null (rank 0 prints the job's
    output and its errors; an error only this rank sees goes to the real stderr, render.sampling.mirror)."""
    from render.sampling.parallel import follower_rank

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


_WORDS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "path": "PATH", "Path": "PATH", "dir": "DIR",
          "file": "FILE"}  # fmt: skip


def _type_label(param: Any, ctx: Any) -> str:
    """What the help shows in the type column: the metavar, nothing for a flag, else a plain word (INTEGER,
    NUMBER, TEXT, DIR, FILE, PATH; `...` when it takes several), never a Python type such as <list[str]>."""
    from typer.core import TyperArgument

    if param.metavar is not None and not isinstance(param, TyperArgument):  # an argument's is in its name
        return str(param.metavar)
    if getattr(param, "is_flag", False):
        return ""
    inner = str(param.display_type(ctx)).strip("<>")
    many = inner.startswith("list[") or param.nargs != 1
    inner = inner.removeprefix("list[").removesuffix("]")
    return _WORDS.get(inner, inner.upper()) + ("..." if many else "")


def _argument_name(param: Any) -> str:
    """An argument's name in the help and its messages: upper case, from its metavar or parameter name (PROMPT,
    DIRECTORY)."""
    return str(param.metavar or param.name or "").upper()


def _usage_name(param: Any) -> str:
    """An argument in the usage line, one scheme for every command: NAME required, [NAME] optional, ... repeated
    (typer writes {name} for a required one)."""
    name = _argument_name(param) if param.required else f"[{_argument_name(param)}]"
    return name + ("..." if param.nargs != 1 else "")


def _plain_help_types() -> None:
    """typer's rich help shows Python types (<bool>, <list[Path]>) in its type column; hyv shows `_type_label`. Its
    argument names mix {directory}, [prompts]... and PROMPT; hyv writes them one way (`_usage_name`)."""
    from typer.core import TyperArgument, TyperOption

    TyperOption.display_type_rich = _type_label  # type: ignore[method-assign,assignment]
    TyperArgument.display_type_rich = _type_label  # type: ignore[method-assign,assignment]
    TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[assignment,method-assign]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign,assignment]


_plain_help_types()
