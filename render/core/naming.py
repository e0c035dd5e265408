"""Safe, unique file names derived from prompts: no path separators, no colons, bounded length."""

from __future__ import annotations

import re
import unicodedata

MAX_SLUG = 60


def slug(text: str, max_len: int = MAX_SLUG) -> str:
    """ASCII-folded, lower-case words joined by '-', at most `max_len` characters; never empty."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", folded.lower())
    out = ""
    for w in words:
        cand = f"{out}-{w}" if out else w
        if len(cand) > max_len:
            break
        out = cand
    return out or "prompt"


def artifact_stem(label: str, key: str, extra: str = "") -> str:
    """`{slug}[-{extra}]-{key[:12]}`: the key (a content hash) makes names unique for distinct content."""
    digest = key.split("-", 1)[-1][:12]
    parts = [slug(label)] + ([extra] if extra else []) + [digest]
    return "-".join(parts)
