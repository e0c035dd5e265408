"""The progress display: bars on a terminal (a real pseudo-terminal here), plain lines in a pipe or a log, quiet
with --json."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import SMALL_ARGS

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_in_pty(args: list[str]) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    p = subprocess.Popen(
        [sys.executable, "-m", "hunyuan_cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=300)
    os.close(master)
    return p.returncode, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def test_progress_on_a_terminal(tiny_model: Path, tmp_path: Path) -> None:
    code, out = _run_in_pty(
        [
            "run",
            "a prompt",
            "another prompt",
            "--model",
            str(tiny_model),
            *SMALL_ARGS,
            "--workdir",
            str(tmp_path),
        ]
    )
    assert code == 0, out
    for stage in ("encode", "render", "decode"):
        assert stage in out
    assert "done 2" in out and "cached 0" in out and "failed 0" in out


def test_quiet_with_json_plain_lines_in_a_pipe(tiny_model: Path, tmp_path: Path) -> None:
    code, out = _run_in_pty(
        [
            "run",
            "a prompt",
            "--model",
            str(tiny_model),
            *SMALL_ARGS,
            "--json",
            "--workdir",
            str(tmp_path / "j"),
        ]
    )
    assert code == 0
    assert "done 1" not in out and out.strip().startswith("{")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "hunyuan_cli",
            "run",
            "a prompt",
            "--model",
            str(tiny_model),
            *SMALL_ARGS,
            "--workdir",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "done 1" not in p.stderr  # no bars in a pipe: plain lines instead
    assert "render: 1 item(s)" in p.stderr and "decode 1/1 done" in p.stderr
