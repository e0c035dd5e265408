"""`hyv models download DIR`: the weights from the hub through huggingface_hub, sizes listed before anything is
fetched, resumable (an interrupted download continues where it stopped when the command is run again). What is
fetched for a layout is the family's (`Family.fetch_list`); what follows a download too (`Family.after_download`,
e.g. the text encoder extracted from a vision-language model).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from render.core.errors import ModelNotFoundError
from render.model.family import Family


@dataclass(frozen=True)
class Fetch:
    repo: str
    subdir: str  # under DIR ("" for DIR itself)
    patterns: tuple[str, ...] | None  # None: the whole repository


def planned_sizes(fetches: list[Fetch]) -> list[tuple[Fetch, int, int]]:
    """(fetch, files, bytes) of each repository's selection, from the hub's file metadata (nothing downloaded)."""
    from huggingface_hub import HfApi

    out = []
    for f in fetches:
        try:
            info = HfApi().model_info(f.repo, files_metadata=True)
        except Exception as exc:  # offline, no such repo, gated: one clear line
            reason = " ".join(str(exc).split())[:160]
            raise ModelNotFoundError(
                f"cannot reach {f.repo} on the hub ({type(exc).__name__}: {reason}); hyv models download needs a "
                "network connection"
            ) from None
        files = [s for s in info.siblings or [] if _selected(s.rfilename, f.patterns)]
        out.append((f, len(files), sum(s.size or 0 for s in files)))
    return out


def _selected(name: str, patterns: tuple[str, ...] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)


def download(directory: Path, family: Family, fetches: list[Fetch], say: Callable[[str], None]) -> None:
    """Fetch each selection into its folder (resumable), then what the family does after a download."""
    from huggingface_hub import snapshot_download

    for f in fetches:
        target = directory / f.subdir if f.subdir else directory
        say(f"fetching {f.repo} into {target}")
        try:
            snapshot_download(f.repo, local_dir=target, allow_patterns=list(f.patterns) if f.patterns else None)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:160]
            raise ModelNotFoundError(
                f"downloading {f.repo} stopped ({type(exc).__name__}: {reason}); run the same command again to "
                "continue where it stopped"
            ) from None
    family.after_download(directory, say)
