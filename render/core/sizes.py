"""Sizes in bytes as people write them, with their unit always: 24GB (10^9 bytes), 24GiB (2^30 bytes), 24000MB.
A bare number is refused (but 0): `--memory 24` meant 24 GB or 24 GiB, never 24 bytes."""

from __future__ import annotations

import re

from render.core.errors import UsageError

UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
FORMS = "e.g. 24GB (GB = 10^9 bytes), 24GiB (GiB = 2^30 bytes) or 24000MB"


def parse_size(text: str, what: str = "size") -> int:
    """Bytes of "24GB", "24 GiB", "1.5TB", "500MB" (case aside); a UsageError showing the accepted forms for a bare
    number or an unknown unit."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if m is not None and not m.group(2) and float(m.group(1)) == 0:
        return 0  # nothing is nothing in any unit
    if m is None or m.group(2).lower() not in UNITS:
        unit = "has no unit" if m is not None and not m.group(2) else "is not a size"
        raise UsageError(f"{what} {text!r} {unit}; write {FORMS}")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])
