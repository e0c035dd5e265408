"""Batch input: prompt files in .txt, .jsonl and .csv.

- .txt: one prompt a line; blank lines and lines starting with `#` are skipped.
- .jsonl: one object a line with `prompt`, an optional `name` (the file-name label) and optional per-item
  settings (`render.core.settings.ITEM_OVERRIDES`). A record written by `hyv rewrite` carries the rewritten text in
  `prompt` and the user's text in `original_prompt`.
- .csv: a `prompt` column and an optional `image` column (other columns are ignored), quoted per RFC 4180.
An `image` (a first frame, image-to-video) is a path, relative to the batch file's folder unless absolute.

A bad line never stops the batch: it becomes a `LineError` (file and line number), and the rest is read.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.core.errors import UsageError
from render.core.items import Item
from render.core.settings import ITEM_OVERRIDES

# What a .jsonl record may carry besides `prompt` and `original_prompt`, with the types.
FIELDS: dict[str, type] = {**ITEM_OVERRIDES, "name": str}


@dataclass(frozen=True)
class LineError:
    source: str
    message: str


@dataclass(frozen=True)
class PromptFile:
    path: Path
    items: list[Item]
    errors: list[LineError]


def read_prompt_file(path: Path) -> PromptFile:
    """Read a prompt file; raise UsageError only when the file as a whole cannot be read or holds no prompt."""
    if path.is_dir():
        raise UsageError(f"prompt file {path} is a directory; pass a .txt, .jsonl or .csv file to --prompts")
    if not path.is_file():
        raise UsageError(f"prompt file {path} does not exist; pass a .txt, .jsonl or .csv file to --prompts")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"prompt file {path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items, errors = _read_jsonl(path, text)
    elif suffix == ".csv":
        items, errors = _read_csv(path, text)
    elif suffix in (".txt", ""):
        items, errors = _read_txt(path, text)
    else:
        raise UsageError(f"prompt file {path}: unknown extension {suffix!r}; use .txt, .jsonl or .csv")
    if not items and not errors:
        what = "only a header" if suffix == ".csv" else "only blank lines and # comments"
        what = "it is empty" if not text.strip() else what
        raise UsageError(f"prompt file {path} has no prompts ({what}); write one prompt a line")
    return PromptFile(path=path, items=items, errors=errors)


def items_from_args(prompts: list[str]) -> tuple[list[Item], list[LineError]]:
    """Prompts given on the command line, checked like file lines."""
    items: list[Item] = []
    errors: list[LineError] = []
    for i, p in enumerate(prompts, start=1):
        src = f"argument {i}"
        if not p.strip():
            errors.append(LineError(src, "empty prompt; give a description of the video"))
        else:
            items.append(Item(prompt=p.strip(), source=src))
    return items, errors


def gather_items(prompts: list[str], prompts_file: Path | None) -> tuple[list[Item], list[LineError]]:
    """(items, line errors) from prompt arguments and/or a prompt file; a UsageError when there is nothing to do
    (no prompt at all, or a single prompt that is bad)."""
    items, errors = items_from_args(prompts)
    if prompts_file is not None:
        pf = read_prompt_file(prompts_file)
        items += pf.items
        errors += pf.errors
    if not items and not errors:
        raise UsageError("no prompt given: pass PROMPT arguments or --prompts FILE")
    if not items and len(errors) == 1:
        raise UsageError(f"{errors[0].source}: {errors[0].message}")
    return items, errors


def _read_txt(path: Path, text: str) -> tuple[list[Item], list[LineError]]:
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            items.append(Item(prompt=s, source=f"{path}:{n}"))
    return items, []


def _read_jsonl(path: Path, text: str) -> tuple[list[Item], list[LineError]]:
    items: list[Item] = []
    errors: list[LineError] = []
    for n, line in enumerate(text.splitlines(), start=1):
        src = f"{path}:{n}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(LineError(src, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        got = parse_record(rec, src, path.parent)
        if isinstance(got, LineError):
            errors.append(got)
        else:
            items.append(got)
    return items, errors


def parse_record(rec: Any, src: str, base: Path | None = None) -> Item | LineError:
    """One .jsonl record (a decoded JSON object: `prompt`, optional `name`, `original_prompt`, `image` and per-item
    settings) as an item, or the reason it is not one. `base`: where a relative image path starts (the batch file's
    folder). The server reads its requests' items with it too."""
    if not isinstance(rec, dict):
        return LineError(src, "expected a JSON object with a `prompt` field")
    if rec.get("ok") is False:
        return LineError(src, f"the rewrite of this item failed: {rec.get('error', 'no reason given')}")
    prompt = rec.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return LineError(src, "missing or empty `prompt`")
    overrides: dict[str, Any] = {}
    for key, typ in FIELDS.items():
        if key in rec and rec[key] is not None:
            val = rec[key]
            if typ is int and (isinstance(val, bool) or not isinstance(val, int)):
                return LineError(src, f"`{key}` must be an integer, got {val!r}")
            if typ is str and not isinstance(val, str):
                return LineError(src, f"`{key}` must be a string, got {val!r}")
            overrides[key] = val
    original = rec.get("original_prompt")
    name = overrides.pop("name", None)
    image = rec.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        return LineError(src, f"`image` must be a path to an image file, got {image!r}")
    found = _image_path(image, base) if image else None
    if isinstance(found, LineError):
        return LineError(src, found.message)
    return Item(
        prompt=prompt.strip(),
        source=src,
        overrides=overrides,
        name=name,
        original_prompt=original if isinstance(original, str) else None,
        image=found,
    )


def _image_path(text: str, base: Path | None) -> Path | LineError:
    """An `image` field as a path (relative ones from the batch file's folder); one pointing nowhere is a bad line."""
    p = Path(text.strip()).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    if not p.is_file():
        return LineError("", f"image {p} does not exist")
    return p


def _read_csv(path: Path, text: str) -> tuple[list[Item], list[LineError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    names = [h.strip().lower() for h in header]
    if "prompt" not in names:
        raise UsageError(f"prompt file {path} has no `prompt` column (columns: {', '.join(header)})")
    col = names.index("prompt")
    image_col = names.index("image") if "image" in names else None
    items: list[Item] = []
    errors: list[LineError] = []
    for row in reader:
        # reader.line_num is the physical line where this record ends; quoted newlines make it differ from rows.
        src = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if col >= len(row) or not row[col].strip():
            errors.append(LineError(src, "empty `prompt` cell"))
            continue
        image = row[image_col].strip() if image_col is not None and image_col < len(row) else ""
        found = _image_path(image, path.parent) if image else None
        if isinstance(found, LineError):
            errors.append(LineError(src, found.message))
            continue
        items.append(Item(prompt=row[col].strip(), source=src, image=found))
    return items, errors
