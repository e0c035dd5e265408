"""The instruction the rewrite model was tuned on, one versioned text file per mode.

An instruction is plain text with one `{input}` placeholder where the user's prompt goes (the shape:
mode title, role sentence, numbered rules, the input quoted after "Given Input:").
A new wording is a new file (`normal-v2.txt`); CURRENT names the one in use, so old rewrites stay traceable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rewrite.errors import InstructionError
from rewrite.settings import resolve_mode

PLACEHOLDER = "{input}"
CURRENT = {"normal": "normal-v1", "director": "director-v1"}


@dataclass(frozen=True)
class Instruction:
    version: str  # "normal-v1", or "file:<sha256[:12]>" for --instruction-file
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, prompt: str) -> str:
        """The full text sent to the model for one prompt."""
        # str.replace, not str.format: prompts and instructions may contain other braces.
        return self.text.replace(PLACEHOLDER, prompt)


def _checked(text: str, where: str) -> str:
    n = text.count(PLACEHOLDER)
    if n != 1:
        raise InstructionError(f"instruction {where} must contain {PLACEHOLDER} exactly once (found {n})")
    return text


def packaged_instruction(mode: str) -> Instruction:
    version = CURRENT[resolve_mode(mode)]
    text = resources.files("rewrite").joinpath("instructions", f"{version}.txt").read_text(encoding="utf-8")
    return Instruction(version=version, text=_checked(text, version))


def file_instruction(path: Path) -> Instruction:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstructionError(f"cannot read --instruction-file {path}: {exc}") from None
    text = _checked(text, str(path))
    return Instruction(version="file:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], text=text)


def load_instruction(mode: str, instruction_file: Path | None = None) -> Instruction:
    return file_instruction(instruction_file) if instruction_file is not None else packaged_instruction(mode)
