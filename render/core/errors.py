"""Typed errors of the render library. The CLI turns each into one line and its exit code."""

from __future__ import annotations


class HyvError(Exception):
    """Base of every error hyv reports to a user. `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(HyvError):
    """Bad input from the user: a setting, a prompt, a path. Exit code 2."""

    exit_code = 2


class SettingsError(UsageError):
    """A sampling or size setting that the model cannot take (frames not 4k+1, sizes not multiples of 16…)."""


class ModelNotFoundError(UsageError):
    """A model directory that is missing, incomplete, or a hub id that cannot be fetched."""


class WeightsError(ModelNotFoundError):
    """A weight file that is truncated, corrupt, or does not fit its model's config (shapes, names)."""


class ArtifactError(UsageError):
    """A file that is not a hyv artifact of the expected kind, or is truncated or corrupt."""


class IncompatibleError(UsageError):
    """Two valid artifacts or an artifact and a model that do not fit together."""


class RuntimeFailure(HyvError):
    """The computation itself failed (NaN latents, out of memory, a failing encoder). Exit code 1."""


class NonFiniteError(RuntimeFailure):
    """NaN or Inf appeared in a tensor that must be finite."""


class BatchFailure(HyvError):
    """A batch finished but some of its items failed. Exit code 3, so scripts can tell it from a crash."""

    exit_code = 3


def out_of_memory(exc: BaseException) -> RuntimeFailure | None:
    """An out-of-memory error (torch's CPU or GPU one, or Python's) as a RuntimeFailure; None for anything else.
    Reads the exception only: no torch import, so a front end can call it on any error."""
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    text = str(exc).lower()
    if not oom and "out of memory" not in text and "not enough memory" not in text:  # CUDA's, the CPU allocator's
        return None
    return RuntimeFailure(
        f"out of memory ({type(exc).__name__}); try a smaller size, fewer frames or --device cpu"
    )
