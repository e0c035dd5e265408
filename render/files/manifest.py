"""Provenance: library versions, wall time and peak memory of a stage."""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from render.core.version import VERSION


def versions() -> dict[str, str]:
    out = {"hyv": VERSION, "python": platform.python_version()}
    for pkg in ("torch", "diffusers", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _rss_peak_bytes() -> int:
    """Peak resident set size of this process since the last reset (Linux VmHWM; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _rss_now_bytes() -> int | None:
    """Current resident set size (Linux VmRSS); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a stage's peak is its own, not the process's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class StageMeter:
    """Measures one stage: wall time, peak RSS (CPU) and peak CUDA memory when a GPU is used."""

    started: float = field(default_factory=time.perf_counter)
    rss_reset: bool = False
    rss_start: int | None = None  # RSS when the stage started (before its models load)

    @classmethod
    def start(cls) -> StageMeter:
        rss_reset = _reset_rss_peak()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        except ImportError:
            pass
        return cls(started=time.perf_counter(), rss_reset=rss_reset, rss_start=_rss_now_bytes())

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "peak_rss_bytes": _rss_peak_bytes(),
            "peak_rss_scope": "stage" if self.rss_reset else "process",
        }
        if self.rss_reset and self.rss_start is not None:  # what the stage added: its models and activations
            rec["peak_rss_delta_bytes"] = rec["peak_rss_bytes"] - self.rss_start
        try:
            import torch

            if torch.cuda.is_available():
                rec["peak_cuda_bytes"] = int(torch.cuda.max_memory_allocated())
        except ImportError:
            pass
        return rec
