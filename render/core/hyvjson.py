"""A model's `hyv.json`, read and written in one place with one error behaviour: absent is {}, anything that is not
a JSON object is a one-line ModelNotFoundError naming the file. Sections: "defaults" (settings the model ships),
"transformer" (config a weight file cannot hold, e.g. RoPE axes), "calibration" (`hyv calibrate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from render.core.errors import ModelNotFoundError
from render.core.fsutil import dumps, write_text_atomic

NAME = "hyv.json"


def path_of(model_dir: Path) -> Path:
    return model_dir / NAME


def read(model_dir: Path) -> dict[str, Any]:
    """The whole file ({} when the model has none)."""
    p = path_of(model_dir)
    if not p.is_file():
        return {}
    try:
        found = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        found = None
    if not isinstance(found, dict):
        raise ModelNotFoundError(f"{p} is not valid JSON holding an object; fix or remove it")
    return found


def section(model_dir: Path, name: str) -> dict[str, Any]:
    """One section as an object ({} when absent)."""
    found = read(model_dir).get(name, {})
    if not isinstance(found, dict):
        raise ModelNotFoundError(f"{path_of(model_dir)}: `{name}` must be a JSON object")
    return found


def write(model_dir: Path, data: dict[str, Any]) -> Path:
    """Write the whole file atomically."""
    p = path_of(model_dir)
    write_text_atomic(p, dumps(data, indent=2) + "\n")
    return p


def write_section(model_dir: Path, name: str, value: Any) -> Path:
    """Set one section, the others kept, atomically."""
    data = read(model_dir)
    data[name] = value
    return write(model_dir, data)
